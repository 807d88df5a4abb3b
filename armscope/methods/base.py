"""The hooks a method plugs into the training step, and the method registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from pydantic import BaseModel
from torch import Tensor
from torch.nn import functional as F

from armscope.models.heads import ConcatHead, FusionHead, MultimodalModel
from armscope.registry import Registry


@dataclass(frozen=True)
class LensSettings:
    """How the ARM terms are estimated for the per-epoch measures."""

    estimator: str = "plugin"
    nmi_bins: int = 30
    ncmi_bins: int = 2
    w_min: float = 0.1
    w_max: float = 10.0


@dataclass
class EpochSummary:
    """A method's own per-epoch metrics (tensors, read once) and events."""

    metrics: dict[str, Tensor] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


class Method:
    """Joint training with cross-entropy on the fused logits; subclasses change the step.

    A method may choose the fusion head, which modalities are encoded, the
    loss, and what happens to gradients after backward. It never touches the
    data pipeline, the optimiser or the measures. ``head_type`` is the head
    ``build_head`` makes, declared on the class so that a config's model can be
    sized before the method is built.
    """

    head_type: type[FusionHead] = ConcatHead

    def __init__(
        self, options: BaseModel, modalities: list[str], n_classes: int, feature_dim: int
    ) -> None:
        self.options = options
        self.modalities = list(modalities)
        self.n_classes = n_classes
        self.feature_dim = feature_dim

    @property
    def lens_settings(self) -> LensSettings:
        return LensSettings()

    def build_head(self) -> FusionHead:
        return self.head_type(self.modalities, self.feature_dim, self.n_classes)

    def encoded_modalities(self) -> list[str]:
        return self.modalities

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        self.epoch = epoch

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        return F.cross_entropy(model.head(feats), labels)

    def after_backward(self, model: MultimodalModel, step: int) -> None:
        """Called after backward and before the optimiser step."""

    def end_epoch(self) -> EpochSummary:
        return EpochSummary()


MethodFactory = Callable[[BaseModel, list[str], int, int], Method]
METHODS: Registry[MethodFactory] = Registry("method")
