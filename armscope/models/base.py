"""The options that choose an encoder per modality, and the encoder's size and builder by name.

Torch-free: a config's model options are validated and sized in the API
process; only ``build_encoder`` loads an encoder's training code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from armscope.models.sizes import ModuleSize
from armscope.plugins import ENCODERS
from armscope.registry import prefixed_validation_error
from armscope.specs import EncoderSpec

if TYPE_CHECKING:
    from torch import nn


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
    if not isinstance(name, str) or name not in ENCODERS:
        error = PydanticCustomError(
            "unknown_name", "unknown encoder '{name}'; choose from: {choices}",
            {"name": name, "choices": ", ".join(ENCODERS.names())},
        )
        raise ValidationError.from_exception_data(
            "ModelOptions", [InitErrorDetails(type=error, loc=(field, "name"), input=name)]
        )
    entry = ENCODERS.get(name)
    try:
        options = entry.options.model_validate(spec)
    except ValidationError as exc:
        raise prefixed_validation_error(exc, field, entry.options) from None
    return {"name": name, **options.model_dump(mode="json")}


def encoder_sizer(name: str) -> EncoderSpec:
    """The spec that sizes encoder ``name`` (``count``) and names the option that grows it (``size_option``)."""
    return ENCODERS.get(name)


def encoder_size(spec: dict[str, Any], input_shape: tuple[int, ...], feature_dim: int) -> ModuleSize:
    """What ``build_encoder`` with the same arguments would hold, without building it."""
    spec = dict(spec)
    entry = ENCODERS.get(spec.pop("name"))
    return entry.count(entry.options.model_validate(spec), input_shape, feature_dim)


def build_encoder(spec: dict[str, Any], input_shape: tuple[int, ...], feature_dim: int) -> nn.Module:
    spec = dict(spec)
    entry = ENCODERS.get(spec.pop("name"))
    return entry.factory(entry.options.model_validate(spec), input_shape, feature_dim)
