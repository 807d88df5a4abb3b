"""``resnet18``: ResNet-18 for images (frames averaged over time) or spectrograms, sized without torch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from armscope.data.paths import check_data_path
from armscope.models.sizes import ModuleSize, linear_size
from armscope.specs import EncoderSpec

RESNET18_WIDTH = 512
STAGE_WIDTHS = (64, 128, 256, 512)


class ResNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(
        None, description="Path to a local state dict (.pt/.pth) to start from; empty means random init."
    )

    _check_weights = field_validator("weights")(check_data_path)


def conv_size(inputs: int, outputs: int, kernel: int) -> ModuleSize:
    """An ``nn.Conv2d`` without bias."""
    return ModuleSize(parameters=outputs * inputs * kernel * kernel)


def batch_norm_size(channels: int) -> ModuleSize:
    """An ``nn.BatchNorm2d``: weight and bias; running mean, variance and the batch count."""
    return ModuleSize(parameters=2 * channels, buffers=2 * channels + 1)


def block_size(inplanes: int, planes: int, stride: int) -> ModuleSize:
    size = conv_size(inplanes, planes, 3) + batch_norm_size(planes)
    size += conv_size(planes, planes, 3) + batch_norm_size(planes)
    if stride != 1 or inplanes != planes:
        size += conv_size(inplanes, planes, 1) + batch_norm_size(planes)
    return size


def resnet18_size(options: ResNetOptions, input_shape: tuple[int, ...], feature_dim: int) -> ModuleSize:
    """Depends only on the input channels and the projection, not on the image size."""
    channels = input_shape[-3] if len(input_shape) >= 3 else 1
    size = conv_size(channels, 64, 7) + batch_norm_size(64)
    inplanes = 64
    for index, width in enumerate(STAGE_WIDTHS, start=1):
        size += block_size(inplanes, width, 1 if index == 1 else 2) + block_size(width, width, 1)
        inplanes = width
    if feature_dim != RESNET18_WIDTH:
        size += linear_size(RESNET18_WIDTH, feature_dim)
    return size


def resnet18_stages(options: ResNetOptions, input_shape: tuple[int, ...], feature_dim: int) -> tuple[int, ...]:
    """layer2, layer3 and layer4 are the stages: the stem and layer1 run before the first, the pooling and any
    projection after the last (where Wu et al. place their mid-fusion blocks)."""
    return STAGE_WIDTHS[1:]


SPECS = [
    EncoderSpec(
        "resnet18",
        "armscope.models.resnet:build_resnet18",
        ResNetOptions,
        "ResNet-18 for images (T x 3 x H x W frames, averaged over time) or spectrograms (1 x F x T).",
        count=resnet18_size,
        stages=resnet18_stages,
    )
]
