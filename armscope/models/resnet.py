"""The ResNet-18 encoder's modules, written here so no torchvision is needed (its spec: ``armscope.builtin.encoders.resnet``).

Parameter names follow the common ResNet layout (conv1, bn1, layer1.0.conv1, ...), so a
local ImageNet state dict can be loaded by path; weights are never downloaded. Several
frames per sample are encoded independently and averaged over time, as in the ARM and
OGM-GE audio-visual models.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from armscope.builtin.encoders.resnet import RESNET18_WIDTH, STAGE_WIDTHS, ResNetOptions
from armscope.data.paths import open_data_file, resolve_data_path, shown


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """The ResNet-18 trunk up to global average pooling: B x C x H x W -> B x 512."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for index, width in enumerate(STAGE_WIDTHS, start=1):
            stride = 1 if index == 1 else 2
            layer = nn.Sequential(BasicBlock(inplanes, width, stride), BasicBlock(width, width, 1))
            self.add_module(f"layer{index}", layer)
            inplanes = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def load_weights(trunk: ResNet18, path: str) -> None:
    """Load a local state dict; a classifier head is ignored and RGB kernels are summed
    for a one-channel input, so ImageNet weights can start a spectrogram encoder.

    The file is opened as the data loaders open theirs (confined to the data root), and
    messages quote nothing it holds, not even its keys."""
    file = resolve_data_path(path)
    if not file.is_file():
        raise FileNotFoundError(f"encoder weights: {shown(file)} does not exist")
    with open_data_file(file) as handle:
        try:
            state = torch.load(handle, map_location="cpu", weights_only=True)
        except MemoryError:
            raise
        except Exception as exc:  # not a torch file, damaged, or refused by weights_only
            raise ValueError(
                f"encoder weights {shown(file)}: cannot read as a state dict ({type(exc).__name__})"
            ) from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(f"encoder weights {shown(file)}: not a state dict (parameter names to tensors)")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
    expected = trunk.conv1.weight
    given = state.get("conv1.weight")
    if given is not None and given.shape[1] != expected.shape[1] and expected.shape[1] == 1:
        state["conv1.weight"] = given.sum(dim=1, keepdim=True)
    missing, unexpected = trunk.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"encoder weights {shown(file)} do not fit ResNet-18: missing {missing[:5]}, "
            f"{len(unexpected)} unexpected entries"
        )


class FrameEncoder(nn.Module):
    """Encodes B x C x H x W, or B x T x C x H x W averaged over the T frames."""

    def __init__(self, trunk: ResNet18, feature_dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.project: nn.Module = nn.Identity()
        if feature_dim != RESNET18_WIDTH:
            self.project = nn.Sequential(nn.Linear(RESNET18_WIDTH, feature_dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        batch, frames = x.shape[0], (x.shape[1] if x.dim() == 5 else 1)
        if x.dim() == 5:
            x = x.flatten(0, 1)
        if self.trunk.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        pooled = self.trunk(x).view(batch, frames, -1).mean(1)
        return self.project(pooled)


def build_resnet18(options: ResNetOptions, input_shape: tuple[int, ...], feature_dim: int) -> nn.Module:
    if len(input_shape) not in (3, 4):
        raise ValueError(
            f"resnet18 needs C x H x W or T x C x H x W inputs, got a sample shape of {input_shape}"
        )
    trunk = ResNet18(in_channels=input_shape[-3])
    if options.weights:
        load_weights(trunk, options.weights)
    return FrameEncoder(trunk, feature_dim)

