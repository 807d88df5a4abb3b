"""Step time of each method relative to baseline on the CREMA-D-shaped model.

    python bench/arm_overhead.py                      # full shapes; meant for a GPU
    python bench/arm_overhead.py --small --batches 16 # CPU-sized shapes

Audio 1 x 257 x 188 spectrograms and one 3 x 224 x 224 frame, two ResNet-18
encoders, random tensors, the training loop's own TrainingStep. Prints median ms
per step and each method's ratio to baseline, per batch size and precision. ARM
runs with its per-step terms eager and compiled (one torch.compile graph; the
warm-up steps absorb the compilation).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from armscope.methods import build_method
from armscope.models import MultimodalModel, build_encoder
from armscope.step import TrainingStep

METHODS = [("baseline", "baseline", {}), ("ogm-ge", "ogm-ge", {"alpha": 0.5}),
           ("arm (plugin)", "arm", {"estimator": "plugin", "compile": "off"}),
           ("arm (reference)", "arm", {"estimator": "reference", "compile": "off"}),
           ("arm (plugin, compiled)", "arm", {"estimator": "plugin", "compile": "on"}),
           ("arm (reference, compiled)", "arm", {"estimator": "reference", "compile": "on"})]


def step_ms(name: str, options: dict, batch: int, precision: str, shapes: dict, device: torch.device,
            warmup: int, repeats: int) -> tuple[float, bool]:
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
    method.begin_epoch(1, 0, warmup + repeats, device)
    times, finite = [], torch.ones((), dtype=torch.bool, device=device)
    for index in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss, _ = step(inputs, labels, index)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index >= warmup:
            times.append((time.perf_counter() - start) * 1000)
        finite &= torch.isfinite(loss)
    return statistics.median(times), bool(finite)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--small", action="store_true", help="1 x 64 x 48 audio, 3 x 64 x 64 frame (CPU)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shapes = {"audio": (1, 64, 48), "visual": (1, 3, 64, 64)} if args.small else \
             {"audio": (1, 257, 188), "visual": (1, 3, 224, 224)}
    card = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {card}; shapes {shapes}")
    print("| batch | precision | method | ms / step | vs baseline | loss finite |\n|---|---|---|---|---|---|")
    for batch in args.batches:
        for precision in args.precisions:
            baseline = None
            for label, name, options in METHODS:
                ms, finite = step_ms(name, options, batch, precision, shapes, device, args.warmup, args.repeats)
                baseline = baseline or ms
                print(f"| {batch} | {precision} | {label} | {ms:.1f} | {ms / baseline:.3f} | {finite} |", flush=True)


if __name__ == "__main__":
    main()
