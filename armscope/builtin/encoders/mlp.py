"""``mlp``: fully connected layers with ReLU, for vector modalities (tabular views, precomputed embeddings)."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from armscope.models.sizes import ModuleSize, linear_size
from armscope.specs import EncoderSpec

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


def mlp_size(options: MLPOptions, input_shape: tuple[int, ...], feature_dim: int) -> ModuleSize:
    widths = [math.prod(input_shape), *options.hidden, feature_dim]
    return sum((linear_size(a, b) for a, b in zip(widths, widths[1:])), ModuleSize())


def mlp_stages(options: MLPOptions, input_shape: tuple[int, ...], feature_dim: int) -> tuple[int, ...]:
    """Each Linear+ReLU layer is a stage: its widths are the hidden sizes, then the feature size."""
    return (*options.hidden, feature_dim)


SPECS = [
    EncoderSpec(
        "mlp",
        "armscope.models.mlp:build_mlp",
        MLPOptions,
        "Fully connected layers with ReLU.",
        count=mlp_size,
        size_option="hidden",
        stages=mlp_stages,
    )
]
