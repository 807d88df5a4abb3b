"""Host time of each part of ARM's step: where ARM's extra cost comes from when a step is launch-bound.

    python bench/arm_host.py [--batch 64] [--calls 200]

Where the host takes as long to queue a training step as the GPU takes to run
it (on the lent H100 at batch 64: bench/arm_overhead.py's "host ms" column),
every host call that ARM adds shows in the step time. This prints, per call,
the host microseconds to queue and the microseconds to finish (queue + run)
of: one tiny kernel (the unit), arm_step eager, compiled, and (on CUDA)
replayed from a CUDA graph of either (armscope.graphed.GraphedCall, as
``cuda_graph: on`` runs it: the inputs copied into the graph's buffers, then
one replay), and ARM's fusion, loss and backward beside the baseline head's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch.nn import functional as F

from armscope.arm_terms import STEP_STATS, arm_step
from armscope.graphed import GraphedCall
from armscope.models.heads import ARMHead, ConcatHead

SETTINGS = dict(ema_decay=0.99, estimator="plugin", nmi_bins=30, ncmi_bins=2, w_min=0.1, w_max=10.0)


def per_call_us(run: Callable[[], object], calls: int, sync: Callable[[], None]) -> tuple[float, float]:
    """(host µs to queue, µs until done) per call, after three untimed calls."""
    for _ in range(3):
        run()
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        run()
    queued = time.perf_counter()
    sync()
    done = time.perf_counter()
    return (queued - start) * 1e6 / calls, (done - start) * 1e6 / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    card = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"torch {torch.__version__} on {card}; B={args.batch}, d={args.dim}, 2 modalities, {args.calls} calls each")
    print("| precision | part | host µs / call | µs / call until done |\n|---|---|---|---|")
    names = ["audio", "visual"]
    for precision in args.precisions:
        torch.manual_seed(0)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        feats = {m: torch.relu(torch.randn(args.batch, args.dim, device=device)).to(dtype) for m in names}
        labels = torch.randint(0, 6, (args.batch,), device=device)
        arm_head, concat_head = ARMHead(names, args.dim, 6).to(device), ConcatHead(names, args.dim, 6).to(device)
        step_stats = torch.zeros(STEP_STATS, 2, dtype=torch.float64, device=device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False) \
            if precision == "bf16" else nullcontext()
        unit = torch.zeros(1, device=device)
        leaves = {m: h.detach().requires_grad_() for m, h in feats.items()}
        weight = torch.ones(2, device=device, dtype=dtype)

        def step(compiled: bool) -> Callable[[], object]:
            return lambda: arm_step(feats, arm_head, labels, step_stats, compiled=compiled, **SETTINGS)

        def graphed(compiled: bool) -> Callable[[], object]:
            call = GraphedCall(
                lambda a, v, y: arm_step({"audio": a, "visual": v}, arm_head, y, step_stats, compiled=compiled,
                                         **SETTINGS),
                [arm_head.eval_weights, step_stats],
            )
            return lambda: call(feats["audio"], feats["visual"], labels)

        parts: list[tuple[str, Callable[[], object]]] = [
            ("one tiny kernel (x.add_(1))", lambda: unit.add_(1)),
            ("arm_step, eager", step(False)),
            ("arm_step, compiled", step(True)),
            ("ARM fusion + loss + backward", lambda: F.cross_entropy(arm_head.fuse(leaves, weight), labels).backward()),
            ("baseline head + loss + backward", lambda: F.cross_entropy(concat_head(leaves), labels).backward()),
        ]
        with autocast:
            if cuda:
                parts[3:3] = [("arm_step, CUDA graph of eager", graphed(False)),
                              ("arm_step, CUDA graph of compiled", graphed(True))]
            for label, run in parts:
                host, done = per_call_us(run, args.calls, sync)
                print(f"| {precision} | {label} | {host:.0f} | {done:.0f} |", flush=True)


if __name__ == "__main__":
    main()
