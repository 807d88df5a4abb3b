"""A held-out part of the training split, for methods that estimate something on samples they never train on.

G-Blending's loss weights, LFM's weight update and Re-learning's diagnosis each compare what a
model does on data it trained on with data it did not; the held-out part always comes from the
training split (never the validation or test split). It is drawn once, from torch's global
generator, which the run seeded and its checkpoint holds, so a seed always holds out the same
samples; the method keeps it in its state and each epoch's order shuffles the rest.
"""

from __future__ import annotations

import torch
from torch import Tensor


def held_out_count(size: int, fraction: float) -> int:
    """round(fraction x size) samples, at least one held out and at least one left to train on."""
    if size < 2:
        raise ValueError(f"holding out part of the training split needs at least 2 samples, not {size}")
    return min(max(round(fraction * size), 1), size - 1)


def draw_held_out(size: int, count: int) -> Tensor:
    """``count`` of ``size`` training indices, sorted, drawn from torch's global generator."""
    return torch.randperm(size)[:count].sort().values


def kept_indices(held_out: Tensor, size: int) -> Tensor:
    """The training indices outside ``held_out``, in increasing order."""
    kept = torch.ones(size, dtype=torch.bool)
    kept[held_out] = False
    return torch.arange(size)[kept]


def shuffled(indices: Tensor, generator: torch.Generator) -> Tensor:
    """An epoch's order of ``indices``, drawn from the run's shuffle generator."""
    return indices[torch.randperm(indices.numel(), generator=generator)]
