"""How long `run.log` keeps a training loop waiting, with the server up and with it down.

Starts `armscope serve --no-worker` on a temporary home, opens an external run, and times each of
``--calls`` log calls (a typical epoch record: 20 keys) with the server answering; then kills the server
(SIGKILL) and times as many more while the SDK's uploader retries in the background. Prints p50, p99
and the largest call in microseconds, and checks afterwards, with the server started again, that every
epoch reached it exactly once.

    python bench/sdk_log.py --calls 2000
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

import armscope  # noqa: E402
from bench.serving import free_port, start_server  # noqa: E402


def record(epoch: int) -> dict[str, float | str]:
    """What a two-modality loop logs per epoch: accuracies, contributions, losses, a label."""
    values: dict[str, float | str] = {"val_acc": 0.5 + epoch * 1e-5, "train_loss": 1.0 / epoch, "dominant": "audio"}
    for m in ("audio", "visual"):
        for family in ("val_acc", "confidence", "shapley", "nmi", "ncmi", "arm_score", "arm_weight", "grad_norm"):
            values[f"{family}.{m}"] = 0.25 + epoch * 1e-6
    return values


def timed(run: armscope.Run, epochs: range) -> list[float]:
    """Microseconds per log call."""
    spent = []
    for epoch in epochs:
        values = record(epoch)
        start = time.perf_counter()
        run.log(values, epoch=epoch)
        spent.append((time.perf_counter() - start) * 1e6)
    return spent


def summary(label: str, spent: list[float]) -> str:
    ordered = sorted(spent)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"| {label} | {len(spent)} | {statistics.median(spent):.0f} µs | {p99:.0f} µs | {ordered[-1]:.0f} µs |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="log calls in each phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["ARMSCOPE_HOME"] = str(home)
        port = free_port()
        server = start_server(home, port)
        url = f"http://127.0.0.1:{port}"
        run = armscope.init(name="bench-log", url=url, flush_timeout=120)
        up = timed(run, range(1, args.calls + 1))
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        down = timed(run, range(args.calls + 1, 2 * args.calls + 1))
        server = start_server(home, port)
        try:
            run.finish()
            stored = httpx.get(f"{url}/api/v1/runs/{run.id}/metrics", params={"keys": "val_acc"}, timeout=60).json()
        finally:
            server.terminate()
            server.wait()
    epochs = [r["epoch"] for r in stored]
    print(f"torch-free SDK, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print("| server | calls | p50 | p99 | max |")
    print("|---|---|---|---|---|")
    print(summary("up", up))
    print(summary("down (killed)", down))
    intact = epochs == list(range(1, 2 * args.calls + 1))
    print(f"epochs stored after the restart: {len(epochs)} of {2 * args.calls}, each once: {intact}")


if __name__ == "__main__":
    main()
