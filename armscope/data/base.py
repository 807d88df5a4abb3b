"""What every data set builder returns, and building a registered data set."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

import torch
from pydantic import BaseModel

from armscope.data.errors import DataError
from armscope.plugins import DATASETS

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]


class Split(Protocol):
    """A train/val/test split the loop can iterate in batches.

    Vector data sets hold tensors in memory (``TensorSplit``); data sets read
    from disk can implement the same two methods over a DataLoader.

    ``shuffle`` marks a training pass: a random order (and augmentation, where a
    split has it) drawn from ``generator``. ``order``, where given, is the pass's
    samples by index, repeats allowed (a method's sampler chose them), in place
    of the split's own order; the split draws nothing else for the order.
    """

    def __len__(self) -> int: ...

    def batches(
        self,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None = None,
        order: torch.Tensor | None = None,
    ) -> Iterator[Batch]: ...


@dataclass
class TensorSplit:
    """An in-memory split: one float tensor per modality and integer labels."""

    features: dict[str, torch.Tensor]
    labels: torch.Tensor

    def __post_init__(self) -> None:
        n = self.labels.shape[0]
        for name, values in self.features.items():
            if values.shape[0] != n:
                raise DataError(
                    f"modality {name!r} has {values.shape[0]} rows but there are {n} labels"
                )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(
        self,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None = None,
        order: torch.Tensor | None = None,
    ) -> Iterator[Batch]:
        if order is None:
            n = len(self)
            order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield {m: x[idx] for m, x in self.features.items()}, self.labels[idx]


@dataclass
class DatasetBundle:
    """A built data set: its splits and what the model needs to know about them."""

    name: str
    modalities: list[str]
    class_names: list[str]
    input_shapes: dict[str, tuple[int, ...]]
    train: Split
    val: Split
    test: Split | None = None
    info: dict[str, object] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def build_dataset(name: str, options: BaseModel | Mapping[str, Any], seed: int) -> DatasetBundle:
    """The registered data set ``name`` built for ``seed``; options given as a mapping are validated first."""
    parsed = DATASETS.parse_options(name, options, "dataset_options")
    return DATASETS.get(name).factory(parsed, seed)
