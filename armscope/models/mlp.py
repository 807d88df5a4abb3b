"""MLP encoder for vector modalities (tabular views, precomputed embeddings)."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from armscope.models.base import ENCODERS, ModuleSize, linear_size, sizes_encoder

MAX_LAYERS = 64
MAX_WIDTH = 65_536


class MLPOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field(
        default_factory=lambda: [128],
        max_length=MAX_LAYERS,
        description=f"Hidden layer sizes (at most {MAX_LAYERS} layers of 1..{MAX_WIDTH} units).",
    )
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


@sizes_encoder("mlp", size_option="hidden")
def mlp_size(options: MLPOptions, input_shape: tuple[int, ...], feature_dim: int) -> ModuleSize:
    widths = [math.prod(input_shape), *options.hidden, feature_dim]
    return sum((linear_size(a, b) for a, b in zip(widths, widths[1:])), ModuleSize())
