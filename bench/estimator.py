"""The information estimators side by side: bias on independent inputs, stability on a fixed dependence, time.

    python bench/estimator.py [--repeats 30]

Independent inputs (a normal, an exponential, a post-ReLU normal) at 1,024 .. 131,072 elements:
the plug-in's NMI/NCMI and the debiased ones (about 0 is right). A fixed dependence (x, z independent,
f = x + z + noise) at 4,096, 16,384 and 65,536 elements: each estimator's score and its spread,
(max - min) / min. Then the time of ARM's fused call (``arm_information``, two modalities, B x d
elements) per estimator, the median of --repeats calls interleaved, and the median of the paired ratios, on the CPU and on CUDA when there is one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from armscope.information import arm_information, ncmi, nmi  # noqa: E402  (after the path is set)

ESTIMATORS = ("plugin", "debiased")


def independent(n: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(n)
    return torch.randn(n, generator=g), torch.empty(n).exponential_(generator=g), torch.relu(torch.randn(n, generator=g))


def dependent(n: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(7)
    x, z, noise = (torch.randn(n, generator=g) for _ in range(3))
    return x, x + z + noise, z


def paired_times(calls: dict[str, object], repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Each call's time in ms, the calls interleaved so that a slower spell of the machine hits them alike."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            call()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"torch {torch.__version__}")
    print("independent inputs: NMI (30 bins) and NCMI (2 bins), plug-in vs debiased")
    for n in (1024, 4096, 16384, 65536, 131072):
        x, y, z = independent(n)
        cells = [f"{nmi(x, y, estimator=e).item():+.4f} / {ncmi(x, y, z, estimator=e).item():+.4f}" for e in ESTIMATORS]
        print(f"  N={n:>7}  plug-in {cells[0]}   debiased {cells[1]}")
    print("fixed dependence at 4,096 / 16,384 / 65,536 elements: score each, spread (max-min)/min")
    for name, score in (("NMI", lambda e, x, f, z: nmi(x, f, estimator=e)),
                        ("NCMI (5 bins)", lambda e, x, f, z: ncmi(x, f, z, bins=5, estimator=e))):
        for estimator in ESTIMATORS:
            values = [score(estimator, *dependent(n)).item() for n in (4096, 16384, 65536)]
            spread = (max(values) - min(values)) / min(values)
            print(f"  {name:<14} {estimator:<9} " + " ".join(f"{v:.4f}" for v in values) + f"   spread {spread:.1%}")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"arm_information, two modalities, median of {args.repeats} interleaved calls (ms), median paired ratio:")
    for device in devices:
        for batch, dim in ((64, 64), (64, 512), (512, 512)):
            g = torch.Generator().manual_seed(0)
            h_a, h_v, fused = (torch.relu(torch.randn(batch, dim, generator=g)).to(device) for _ in range(3))
            calls = {e: (lambda e=e: arm_information([h_a, h_v], fused, [h_v, h_a], estimator=e)) for e in ESTIMATORS}
            times = paired_times(calls, args.repeats, device)
            ms = {e: statistics.median(t) for e, t in times.items()}
            ratio = statistics.median(d / p for d, p in zip(times["debiased"], times["plugin"]))
            print(f"  {device.type:<4} B={batch:<4} d={dim:<4} plug-in {ms['plugin']:7.3f}  debiased {ms['debiased']:7.3f}"
                  f"  ratio {ratio:.2f}x")

if __name__ == "__main__":
    main()
