"""The method interface (its step, epoch pass, sampler, state and prediction), and building a registered method."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel
from torch import Tensor
from torch.nn import functional as F

from armscope.epoch_pass import TrainingData
from armscope.models.heads import ConcatHead, FusionHead, MultimodalModel
from armscope.plugins import METHODS
from armscope.step import Batch, StepContext


@dataclass
class EpochSummary:
    """A method's own per-epoch metrics (tensors, read once) and events."""

    metrics: dict[str, Tensor] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


class Method:
    """How a run trains; this base class is plain joint training, cross-entropy on the fused logits.

    A simple method overrides hooks of the default step (``train_step``):
    ``build_head`` (the fusion head, of the class ``head_type``, declared on
    the class so that a config's model can be sized before the method is
    built), ``encoded_modalities``, ``loss``, and ``after_backward`` (the
    gradients before the update), with ``begin_epoch`` and ``end_epoch`` around
    each epoch. A method that needs more overrides the capability itself:

    - ``train_step``: the whole step, with any number of forward and backward
      passes, per-modality gradients and gradient surgery, and updates of the
      parameters it chooses;
    - ``epoch_pass``: a pass over the training data before each epoch's steps;
    - ``sample_order``: the epoch's samples (per-sample weights, resampling),
      drawn from the run's checkpointed generator;
    - ``state_dict`` and ``load_state_dict``: what it keeps across epochs,
      checkpointed with the run;
    - ``predict``: its evaluation-time fused prediction, which every
      per-epoch measure uses;
    - ``encode``: the features from the inputs, where the encoders cannot run
      one by one (mid-fusion between their stages); the default step, the
      per-epoch measures and the FLOP count encode through it.

    Each epoch the loop calls ``epoch_pass``, ``sample_order``,
    ``begin_epoch``, ``train_step`` per batch, ``predict`` inside the
    measures, ``end_epoch``, then ``state_dict`` for the checkpoint. A method
    never touches the data pipeline, the optimiser's settings or the measures.
    """

    head_type: type[FusionHead] = ConcatHead

    def __init__(
        self, options: BaseModel, modalities: list[str], n_classes: int, feature_dim: int
    ) -> None:
        self.options = options
        self.modalities = list(modalities)
        self.n_classes = n_classes
        self.feature_dim = feature_dim

    def build_head(self) -> FusionHead:
        return self.head_type(self.modalities, self.feature_dim, self.n_classes)

    def encoded_modalities(self) -> list[str]:
        return self.modalities

    def encode(
        self, model: MultimodalModel, inputs: dict[str, Tensor], modalities: list[str] | None = None
    ) -> dict[str, Tensor]:
        """Each modality's features (B x d); by default every encoder on its own input."""
        return model.encode(inputs, modalities)

    def epoch_pass(self, data: TrainingData) -> None:
        """Called first in each epoch, before its order is drawn: iterate ``data.batches()`` to prepare it."""

    def sample_order(self, epoch: int, size: int, generator: torch.Generator) -> Tensor | None:
        """Epoch ``epoch``'s samples, int64 indices into the training split (repeats allowed), or None to shuffle.

        Draw on the CPU from ``generator``, the run's own shuffle generator: it
        is checkpointed, so a resumed run draws the same orders. The epoch has
        as many steps as the order fills batches, and steps then see their
        samples' indices (``Batch.index``). Called after ``epoch_pass`` and
        before ``begin_epoch``.
        """
        return None

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        self.epoch = epoch

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        """One training step; returns its loss, detached, for the epoch's ``train_loss``.

        The default: one forward pass under the run's precision and the
        method's ``loss``, one backward pass, ``after_backward``, and one update
        of every parameter. The step must not read values back to the host
        (no ``.item()``, ``bool()`` of a tensor, or ``.cpu()``): on a GPU that
        stalls the pipeline, and the meta-device test refuses it.
        """
        model = step.model
        with step.autocast():
            feats = self.encode(model, batch.inputs, self.encoded_modalities())
            loss = self.loss(model, feats, batch.labels, batch.step)
        step.zero_grad()
        loss.backward()
        self.after_backward(model, batch.step)
        step.update()
        return loss.detach()

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        return F.cross_entropy(model.head(feats), labels)

    def after_backward(self, model: MultimodalModel, step: int) -> None:
        """Called after backward and before the optimiser step."""

    def predict(self, model: MultimodalModel, feats: dict[str, Tensor]) -> Tensor:
        """Fused logits at evaluation, from every modality's features (zeros for a masked one).

        Validation loss, accuracy and F1, the masked accuracies and the Shapley
        values all use it, so a test-time fusion rule is measured as it predicts.
        """
        return model.head(feats)

    def end_epoch(self) -> EpochSummary:
        return EpochSummary()

    def state_dict(self) -> dict[str, Any]:
        """What the method keeps across epochs, saved in every checkpoint.

        Tensors and plain values (numbers, strings, booleans, None, and lists,
        tuples and dicts of them) only: checkpoints are read back with torch's
        weights-only unpickler, and anything else fails the save.
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``'s value on resume, its tensors on the CPU, before the first epoch."""
        if state:
            raise ValueError(
                f"{type(self).__name__} keeps no state, but the checkpoint holds {', '.join(sorted(state))}; "
                "a method with a state_dict must load it too"
            )


def build_method(
    name: str, options: BaseModel | Mapping[str, Any], modalities: list[str], n_classes: int, feature_dim: int
) -> Method:
    """The registered method ``name`` for a run of these modalities and classes; options given as a mapping
    are validated first, options a RunConfig validated are used as they are."""
    parsed = METHODS.parse_options(name, options, "method_options")
    return METHODS.get(name).factory(parsed, modalities, n_classes, feature_dim)
