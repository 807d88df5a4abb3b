"""Encoders (registered by name, one file each) and fusion heads."""

from armscope.models import mlp, resnet  # noqa: F401  (registration)
from armscope.models.base import ENCODERS, ModelOptions, build_encoder
from armscope.models.heads import ARMHead, ConcatHead, FusionHead, MultimodalModel

__all__ = [
    "ENCODERS",
    "ARMHead",
    "ConcatHead",
    "FusionHead",
    "ModelOptions",
    "MultimodalModel",
    "build_encoder",
]
