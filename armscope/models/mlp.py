"""The MLP encoder's module (its spec: ``armscope.builtin.encoders.mlp``)."""

from __future__ import annotations

import math

from torch import nn

from armscope.builtin.encoders.mlp import MLPOptions


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
