"""One modality alone: the line a modality's masked accuracy inside a fused model is judged against."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch.nn import functional as F

from armscope.methods.base import METHODS, Method
from armscope.models.heads import MultimodalModel


class UnimodalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modality: str | None = Field(
        None, description="The modality to train on; empty means the data set's first modality."
    )

    def check_modalities(self, modalities: list[str]) -> tuple[tuple[str, ...], str] | None:
        if self.modality is not None and self.modality not in modalities:
            return ("modality",), (
                f"{self.modality!r} is not a modality of this data set; "
                f"choose from: {', '.join(modalities)}"
            )
        return None


@METHODS.register(
    "unimodal",
    options=UnimodalOptions,
    summary="Train one modality alone (the others are zeroed at the fusion input).",
)
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
