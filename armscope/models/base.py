"""Encoder registry and the options that choose an encoder per modality."""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from armscope.registry import Registry, prefixed_validation_error

EncoderBuilder = Callable[[BaseModel, tuple[int, ...], int], nn.Module]
ENCODERS: Registry[EncoderBuilder] = Registry("encoder")


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


def build_encoder(spec: dict[str, Any], input_shape: tuple[int, ...], feature_dim: int) -> nn.Module:
    spec = dict(spec)
    entry = ENCODERS.get(spec.pop("name"))
    return entry.factory(entry.options.model_validate(spec), input_shape, feature_dim)
