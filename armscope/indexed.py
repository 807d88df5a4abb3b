"""A split's batches in a given order, each with the indices of its samples.

A method that chose the epoch's samples (``Method.sample_order``) or passes
over the training data needs to know which samples a batch holds. The indices
are the order cut into batches, so they are right only if the split loads
every sample; a split that drops unreadable files (a disk data set's
``skip_bad``) is refused rather than misaligned.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from armscope.data.base import DataError, Split

SKIPPED = (
    "this run's method needs every sample of the epoch's order, but the training split skipped "
    "unreadable files; fix or remove them, or turn skip_bad off"
)


def check_order(order: Tensor, size: int, method: str) -> None:
    """Refuse a method's order that is not a 1-D CPU tensor of indices into a split of ``size`` samples."""
    if order.dim() != 1 or order.dtype != torch.int64 or order.device.type != "cpu":
        raise ValueError(
            f"{method}'s sample_order must return a 1-D int64 CPU tensor, not a {order.dim()}-D "
            f"{order.dtype} tensor on {order.device.type}"
        )
    if order.numel() and (int(order.min()) < 0 or int(order.max()) >= size):
        raise ValueError(f"{method}'s sample_order holds indices outside the training split's 0..{size - 1}")


def indexed_batches(
    split: Split,
    batch_size: int,
    order: Tensor,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[dict[str, Tensor], Tensor, Tensor]]:
    """``split.batches`` over ``order``, as (inputs, labels, indices) triples."""
    chunks = iter(order.split(batch_size))
    for inputs, labels in split.batches(batch_size, shuffle, generator, order):
        index = next(chunks, None)
        if index is None or index.shape[0] != labels.shape[0]:
            raise DataError(SKIPPED)
        yield inputs, labels, index
    if next(chunks, None) is not None:
        raise DataError(SKIPPED)
