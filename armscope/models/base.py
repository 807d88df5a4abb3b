"""Encoder registry and the options that choose an encoder per modality."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from armscope.registry import Registry, prefixed_validation_error

EncoderBuilder = Callable[[BaseModel, tuple[int, ...], int], nn.Module]
ENCODERS: Registry[EncoderBuilder] = Registry("encoder")


@dataclass(frozen=True)
class ModuleSize:
    """The numbers a module holds: its parameters and its buffers (running statistics, fixed probes).

    Computed from the options alone, so that a config can be refused before
    anything is allocated.
    """

    parameters: int = 0
    buffers: int = 0

    @property
    def total(self) -> int:
        return self.parameters + self.buffers

    def __add__(self, other: ModuleSize) -> ModuleSize:
        return ModuleSize(self.parameters + other.parameters, self.buffers + other.buffers)


def linear_size(inputs: int, outputs: int) -> ModuleSize:
    """An ``nn.Linear`` with bias."""
    return ModuleSize(parameters=inputs * outputs + outputs)


EncoderCounter = Callable[[Any, tuple[int, ...], int], ModuleSize]


@dataclass(frozen=True)
class EncoderSizer:
    """How to size an encoder without building it, and which option grows it (named when over budget)."""

    count: EncoderCounter
    size_option: str | None


ENCODER_SIZES: dict[str, EncoderSizer] = {}


def sizes_encoder(name: str, size_option: str | None = None) -> Callable[[EncoderCounter], EncoderCounter]:
    """Register the size function of encoder ``name``; every registered encoder needs one."""

    def register(count: EncoderCounter) -> EncoderCounter:
        ENCODER_SIZES[name] = EncoderSizer(count, size_option)
        return count

    return register


class ModelOptions(BaseModel):
    """Encoders are chosen per modality so image/spectrogram encoders can sit beside MLPs."""

    model_config = ConfigDict(extra="forbid")

    feature_dim: int = Field(
        64, ge=2, le=8192, description="Size of every modality's feature (the fusion input)."
    )
    encoder: dict[str, Any] = Field(
        default_factory=lambda: {"name": "mlp"},
        description="Default encoder for every modality: {'name': ..., options...}.",
    )
    encoders: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Per-modality overrides of `encoder`, by modality name, e.g. '
        '{"visual": {"name": "resnet18", "weights": "resnet18.pt"}}.',
    )

    @model_validator(mode="after")
    def _validate_encoders(self) -> "ModelOptions":
        self.encoder = _parse_encoder_spec(self.encoder, "encoder")
        self.encoders = {
            m: _parse_encoder_spec(spec, f"encoders.{m}") for m, spec in self.encoders.items()
        }
        return self

    def spec_for(self, modality: str) -> dict[str, Any]:
        return self.encoders.get(modality, self.encoder)


def _parse_encoder_spec(spec: dict[str, Any], field: str) -> dict[str, Any]:
    spec = dict(spec)
    name = spec.pop("name", "mlp")
    entry = ENCODERS.get(name)
    try:
        options = entry.options.model_validate(spec)
    except ValidationError as exc:
        raise prefixed_validation_error(exc, field, entry.options) from None
    return {"name": name, **options.model_dump(mode="json")}


def encoder_sizer(name: str) -> EncoderSizer:
    try:
        return ENCODER_SIZES[name]
    except KeyError:
        raise LookupError(f"encoder {name!r} registers no size function (see sizes_encoder)") from None


def encoder_size(spec: dict[str, Any], input_shape: tuple[int, ...], feature_dim: int) -> ModuleSize:
    """What ``build_encoder`` with the same arguments would hold, without building it."""
    spec = dict(spec)
    name = spec.pop("name")
    options = ENCODERS.get(name).options.model_validate(spec)
    return encoder_sizer(name).count(options, input_shape, feature_dim)


def build_encoder(spec: dict[str, Any], input_shape: tuple[int, ...], feature_dim: int) -> nn.Module:
    spec = dict(spec)
    entry = ENCODERS.get(spec.pop("name"))
    return entry.factory(entry.options.model_validate(spec), input_shape, feature_dim)
