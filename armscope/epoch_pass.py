"""The training data as a method sees it in its pass at the start of an epoch.

Prototypes, clusters and per-sample values are computed from the training
split before the epoch's steps (``Method.epoch_pass``). The pass reads the
split in its own order, without augmentation, and draws nothing from the
run's shuffle generator, so it changes neither the epoch's order nor a
resumed run's; what the method draws itself comes from torch's global
generator, which the checkpoint holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from armscope.data.base import Split
from armscope.indexed import indexed_batches
from armscope.models.heads import MultimodalModel
from armscope.step import Batch, autocast, to_device


class TrainingData:
    """The training split, batched on the run's device, each batch with its samples' indices.

    ``model`` is the run's model in the state the previous epoch left; the
    method chooses its mode (``eval()`` for fixed features) and gradients
    (usually ``torch.no_grad()``); the loop sets train mode again afterwards.
    Batches carry ``step``, the step the epoch's training starts at. A long
    pass says how far it is with ``progress`` (shown beside the run's progress
    bar); its time counts in the epoch's ``epoch_seconds``.
    """

    def __init__(
        self,
        split: Split,
        model: MultimodalModel,
        *,
        epoch: int,
        step: int,
        batch_size: int,
        device: torch.device,
        precision: str,
        channels_last: bool,
        report: Callable[[str, int, int], None] | None = None,
        run_folder: Callable[[int], Path] | None = None,
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.split, self.model, self.epoch, self.step = split, model, epoch, step
        self.batch_size, self.device = batch_size, device
        self.precision, self.channels_last = precision, channels_last
        self.report = report
        self._run_folder = run_folder
        # This run's config as stored (JSON values), to check what an earlier run it builds on was trained on.
        self.run_config: dict[str, Any] = dict(run_config or {})

    def run_folder(self, run_id: int) -> Path:
        """The folder of the stored run ``run_id`` (its config and checkpoint), for a method that builds on it."""
        if self._run_folder is None:
            raise LookupError(f"this run cannot read other runs (run {run_id} was asked for): it was started "
                              "without the service's runs folder")
        return self._run_folder(run_id)

    def progress(self, what: str, done: int, total: int) -> None:
        """``done`` of ``total`` units of the pass ``what`` (say "prototypes", 3, 9) are finished."""
        if self.report is not None:
            self.report(what, done, total)

    def __len__(self) -> int:
        return len(self.split)

    def autocast(self) -> AbstractContextManager[object]:
        """The run's precision for forward passes."""
        return autocast(self.device, self.precision)

    def batches(self, batch_size: int | None = None, order: Tensor | None = None) -> Iterator[Batch]:
        """The training samples in ``order`` (int64 indices; every sample once, in the split's order, unless
        given), cut into batches of the run's batch size unless given: a held-out subset, a reshuffled pass."""
        size = batch_size or self.batch_size
        order = torch.arange(len(self.split)) if order is None else order
        for inputs, labels, index in indexed_batches(self.split, size, order, shuffle=False):
            yield Batch(
                to_device(inputs, self.device, self.channels_last),
                labels.to(self.device, non_blocking=True),
                self.step,
                index.to(self.device, non_blocking=True),
            )
