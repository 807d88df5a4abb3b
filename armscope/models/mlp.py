"""MLP encoder for vector modalities (tabular views, precomputed embeddings)."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from armscope.models.base import ENCODERS


class MLPOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: list[int] = Field(default_factory=lambda: [128], description="Hidden layer sizes.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


@ENCODERS.register("mlp", options=MLPOptions, summary="Fully connected layers with ReLU.")
def build_mlp(options: MLPOptions, input_shape: tuple[int, ...], feature_dim: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for size in options.hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if options.dropout:
            layers.append(nn.Dropout(options.dropout))
        width = size
    layers += [nn.Linear(width, feature_dim), nn.ReLU()]
    return nn.Sequential(*layers)
