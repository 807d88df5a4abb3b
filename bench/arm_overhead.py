"""Step time of each method relative to baseline on the CREMA-D-shaped model.

    python bench/arm_overhead.py                      # full shapes; meant for a GPU
    python bench/arm_overhead.py --small --batches 16 # CPU-sized shapes

Audio 1 x 257 x 188 spectrograms and one 3 x 224 x 224 frame, two ResNet-18
encoders, random tensors, the training loop's own TrainingStep. ARM runs with
its per-step work eager, compiled (one torch.compile graph) and, on CUDA,
compiled and replayed from a CUDA graph; the warm-up steps absorb compiling
and capturing.

All methods of one batch size and precision are built first and then timed in
interleaved rounds: each round runs every method for a few steps back to back
(synchronising only at the end, as the training loop does), in a rotated
order. Drift in clocks or host load then hits every method alike, and each
ratio is the median of the per-round ratios to that round's baseline. ``host
ms`` is the time the host took to queue the steps: when it is close to ``ms /
step`` the step is bound by kernel launches, not by the GPU.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch._dynamo.utils import counters

from armscope.methods import build_method
from armscope.models import MultimodalModel, build_encoder
from armscope.step import TrainingStep

METHODS = [("baseline", "baseline", {}), ("ogm-ge", "ogm-ge", {"alpha": 0.5}),
           ("arm (plugin)", "arm", {"estimator": "plugin", "compile": "off"}),
           ("arm (reference)", "arm", {"estimator": "reference", "compile": "off"}),
           ("arm (plugin, compiled)", "arm", {"estimator": "plugin", "compile": "on"}),
           ("arm (reference, compiled)", "arm", {"estimator": "reference", "compile": "on"}),
           ("arm (plugin, compiled, CUDA graph)", "arm", {"estimator": "plugin", "compile": "on", "cuda_graph": "on"}),
           ("arm (reference, compiled, CUDA graph)", "arm",
            {"estimator": "reference", "compile": "on", "cuda_graph": "on"})]


@dataclass
class Timed:
    """One method's step, with what its rounds measured."""

    run: Callable[[], torch.Tensor]
    ms: list[float] = field(default_factory=list)
    host_ms: list[float] = field(default_factory=list)
    finite: torch.Tensor | None = None

    def steps(self, count: int, sync: Callable[[], None]) -> None:
        sync()
        start = time.perf_counter()
        for _ in range(count):
            ok = torch.isfinite(self.run())
            self.finite = ok if self.finite is None else self.finite & ok
        queued = time.perf_counter()
        sync()
        self.host_ms.append((queued - start) * 1000 / count)
        self.ms.append((time.perf_counter() - start) * 1000 / count)


def build(name: str, options: dict, batch: int, precision: str, shapes: dict, device: torch.device,
          total_steps: int) -> Timed:
    torch.manual_seed(0)
    method = build_method(name, options, ["audio", "visual"], 6, 512)
    encoders = {m: build_encoder({"name": "resnet18"}, shape, 512) for m, shape in shapes.items()}
    model = MultimodalModel(encoders, method.build_head()).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    step = TrainingStep(model, method, optimizer, device, precision, channels_last)
    inputs = {m: torch.randn(batch, *shape, device=device) for m, shape in shapes.items()}
    labels = torch.randint(0, 6, (batch,), device=device)
    method.begin_epoch(1, 0, total_steps, device)
    index = iter(range(total_steps))
    return Timed(lambda: step(inputs, labels, next(index))[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--small", action="store_true", help="1 x 64 x 48 audio, 3 x 64 x 64 frame (CPU)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per method (compiles here)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5, help="steps per method per round")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shapes = {"audio": (1, 64, 48), "visual": (1, 3, 64, 64)} if args.small else \
             {"audio": (1, 257, 188), "visual": (1, 3, 224, 224)}
    card = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"torch {torch.__version__} on {card}; shapes {shapes}; {args.rounds} interleaved rounds "
          f"of {args.steps} steps per method")
    print("| batch | precision | method | ms / step | host ms / step | vs baseline | loss finite |")
    print("|---|---|---|---|---|---|---|")
    total = args.warmup + args.rounds * args.steps
    for batch in args.batches:
        for precision in args.precisions:
            timed = {label: build(name, options, batch, precision, shapes, device, total)
                     for label, name, options in METHODS if device.type == "cuda" or "cuda_graph" not in options}
            for t in timed.values():
                t.steps(args.warmup, sync)
                t.ms.clear()
                t.host_ms.clear()
            graphs = counters["stats"]["unique_graphs"]
            labels = list(timed)
            for r in range(args.rounds):
                for label in labels[r % len(labels):] + labels[: r % len(labels)]:
                    timed[label].steps(args.steps, sync)
            base = timed["baseline"].ms
            for label, t in timed.items():
                ratio = statistics.median(ms / b for ms, b in zip(t.ms, base))
                print(f"| {batch} | {precision} | {label} | {statistics.median(t.ms):.1f} | "
                      f"{statistics.median(t.host_ms):.1f} | {ratio:.3f} | {bool(t.finite)} |", flush=True)
            if counters["stats"]["unique_graphs"] != graphs:
                print("warning: torch.compile recompiled during the timed rounds; the compiled rows include it")
            del timed


if __name__ == "__main__":
    main()
