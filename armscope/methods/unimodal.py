"""The unimodal method's training: one modality alone (its spec: ``armscope.builtin.methods.unimodal``)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from armscope.builtin.methods.unimodal import UnimodalOptions
from armscope.methods.base import Method
from armscope.models.heads import MultimodalModel


class Unimodal(Method):
    options: UnimodalOptions

    def __init__(self, options: UnimodalOptions, modalities: list[str], n_classes: int, feature_dim: int) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        problem = options.check_modalities(modalities)
        if problem:
            raise ValueError(f"method_options.{problem[0][0]}: {problem[1]}")
        self.modality = options.modality or modalities[0]

    def encoded_modalities(self) -> list[str]:
        return [self.modality]

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        h = feats[self.modality]
        masked = {m: feats.get(m, torch.zeros_like(h)) for m in self.modalities}
        return F.cross_entropy(model.head(masked), labels)
