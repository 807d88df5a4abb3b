"""What a run costs besides its time: the model's size, a prediction's FLOPs and the memory a run peaks at.

BalanceBenchmark compares methods by performance, imbalance and complexity; these are the
complexity measures, logged every epoch beside ``epoch_seconds`` so any run can be placed on a
cost axis. FLOPs come from torch's own counter (``torch.utils.flop_counter``), which counts a
multiply-add as two FLOPs (BalanceMM's thop counts it as one MAC), over one evaluation-time
forward pass: the encoders and the method's own prediction.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from armscope.data.base import Split
from armscope.models.heads import MultimodalModel
from armscope.step import autocast

Predict = Callable[[dict[str, Tensor]], Tensor]
Encode = Callable[[dict[str, Tensor], "list[str] | None"], dict[str, Tensor]]


def parameter_count(model: MultimodalModel) -> int:
    """Every number the model learns, frozen ones included (a UMT teacher is the method's, not the model's)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def flops_per_sample(
    model: MultimodalModel,
    split: Split,
    predict: Predict,
    device: torch.device,
    precision: str,
    samples: int = 2,
    encode: Encode | None = None,
) -> float:
    """FLOPs of one evaluation-time prediction per sample, counted on the first ``samples`` of ``split``.

    ``encode`` is the method's encoding (``Method.encode``), else each encoder on its own input.
    """
    encode = encode or model.encode
    was_training = model.training
    model.eval()
    try:
        inputs, _ = next(iter(split.batches(samples, shuffle=False)))
        inputs = {m: x.to(device) for m, x in inputs.items()}
        size = next(iter(inputs.values())).shape[0]
        with FlopCounterMode(display=False) as counter, autocast(device, precision):
            predict(encode(inputs, None))
        return counter.get_total_flops() / size
    finally:
        model.train(was_training)


def start_peak_memory(device: torch.device) -> None:
    """Begin an epoch's peak: on CUDA the allocator's peak is reset; the CPU's process peak cannot be."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """On CUDA the epoch's peak of allocated memory; on the CPU the process's peak resident size so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
