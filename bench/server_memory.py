"""The memory of each `armscope serve` process: idle, and after comparing many runs through the API and the dashboard.

    python bench/server_memory.py [--runs 200] [--epochs 100] [--processes 2] [--compared 200]
                                  [--browser-runs 50] [--rounds 20]

Fills a temporary home with finished runs through the store (no training), starts the real
`armscope serve --no-worker --processes N` on it, and reads every process of the server from
/proc: its resident memory (VmRSS), its peak (VmHWM), and whether torch, numpy or scipy is
loaded (their shared libraries in /proc/<pid>/maps). Measured once the server answers and has
served one catalog (idle); then after the dashboard's compare page drew --browser-runs runs in
headless Chromium, as a person compares (--browser-runs 0 skips it); then after --rounds of the
largest comparison the API allows, --compared runs with every metric and every epoch, through
`GET /api/v1/compare` and `/compare/seeds` from 2N clients at once (so that every server process
takes some). Each reading is taken a second after the last answer, since a server process hands
freed memory back once idle (server/memory.py). Only 127.0.0.1 is contacted.

With --processes 1 the serving process is the one `armscope serve` started; with more, uvicorn
starts that many server processes beside it and the first keeps the reaper and the queue
client. The target (issue 13): under 200 MB per server process, idle and after a compare.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dashboard_compare import PROBE, seed_store, time_once  # noqa: E402  (after the path is set)
from bench.serving import free_port, start_server  # noqa: E402

HEAVY = ("torch", "numpy", "scipy")
SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Sample:
    pid: int
    role: str
    rss_mb: float
    peak_mb: float
    heavy: tuple[str, ...]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {field}")


def loaded(pid: int) -> tuple[str, ...]:
    """Which of torch, numpy and scipy the process has loaded: their compiled libraries are mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return tuple(name for name in HEAVY if f"/{name}/" in maps or f"/{name}.libs/" in maps)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def server_processes(main: int, count: int) -> list[tuple[int, str]]:
    """(pid, role) of every process of the server but multiprocessing's resource tracker."""
    if count == 1:
        return [(main, "serve: HTTP, reaper, queue client")]
    servers = []
    for pid in children(main):
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if "resource_tracker" not in command:
            servers.append((pid, f"server process {len(servers) + 1}: HTTP"))
    return [(main, "serve: reaper, queue client"), *servers]


def sample(processes: list[tuple[int, str]]) -> list[Sample]:
    """Each process's memory, a moment after the last answer: a server process trims once it is idle."""
    time.sleep(SETTLE_SECONDS)
    return [
        Sample(pid, role, status_kb(pid, "VmRSS") / 1024, status_kb(pid, "VmHWM") / 1024, loaded(pid))
        for pid, role in processes
    ]


def compare_rounds(base: str, ids: list[int], rounds: int, clients: int) -> int:
    """``rounds`` comparisons of ``ids`` (curves and seed-set summaries) from ``clients`` at once; the bytes read."""
    runs = ",".join(map(str, ids))

    def one(_: int) -> int:
        with httpx.Client(base_url=f"{base}/api/v1", timeout=120) as client:
            size = 0
            for path in ("/compare", "/compare/seeds"):
                response = client.get(path, params={"runs": runs})
                response.raise_for_status()
                size += len(response.content)
            return size

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(one, range(rounds)))


def browse_compare(base: str, ids: list[int]) -> float:
    """Seconds until the dashboard's compare page drew every run (two modalities each)."""
    from tests.browser_support import chromium, quit_browser

    traces = 2 * len(ids)
    driver = chromium()
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE % traces})
        return time_once(driver, f"{base}/compare?runs={','.join(map(str, ids))}", traces, timeout=120)
    finally:
        quit_browser(driver)


def report(title: str, samples: list[Sample]) -> None:
    print(title)
    for s in samples:
        heavy = ", ".join(s.heavy) or "none"
        print(f"  pid {s.pid:>7}  {s.role:<36} RSS {s.rss_mb:6.1f} MB  peak {s.peak_mb:6.1f} MB  torch/numpy/scipy: {heavy}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="finished runs stored")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of metrics per run")
    parser.add_argument("--processes", type=int, default=2, help="armscope serve --processes")
    parser.add_argument("--compared", type=int, default=200, help="runs in each API comparison (at most 200)")
    parser.add_argument("--browser-runs", type=int, default=50, help="runs on the dashboard's compare page; 0: none")
    parser.add_argument("--rounds", type=int, default=20, help="API comparisons, from 2 x processes clients")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="armscope-bench-") as tmp:
        home = Path(tmp)
        started = time.perf_counter()
        ids = seed_store(home, args.runs, args.epochs)
        print(f"stored {args.runs} runs x {args.epochs} epochs in {time.perf_counter() - started:.1f} s")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(home, port, "--processes", str(args.processes), wait=90)
        try:
            processes = server_processes(server.pid, args.processes)
            httpx.get(f"{base}/api/v1/catalog", timeout=30).raise_for_status()
            report(f"idle (served /health and /catalog), --processes {args.processes}:", sample(processes))
            if args.browser_runs:
                try:
                    drawn = f"drew {args.browser_runs} runs ({browse_compare(base, ids[: args.browser_runs]):.1f} s)"
                except TimeoutError as exc:
                    drawn = f"was asked for {args.browser_runs} runs ({exc})"
                report(f"after the dashboard's compare page {drawn}:", sample(processes))
            size = compare_rounds(base, ids[: args.compared], args.rounds, 2 * args.processes)
            report(
                f"after {args.rounds} API comparisons of {min(args.compared, len(ids))} runs x {args.epochs} epochs, "
                f"every metric ({size / 2**20:.0f} MiB of JSON), from {2 * args.processes} clients at once:",
                sample(processes),
            )
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
