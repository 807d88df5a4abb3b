"""The options that choose an encoder per modality, and the encoder's size and builder by name.

Torch-free: a config's model options are validated and sized in the API
process; only ``build_encoder`` loads an encoder's training code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from armscope.models.sizes import ModuleSize
from armscope.plugins import ENCODERS
from armscope.registry import prefixed_validation_error
from armscope.specs import EncoderSpec

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class EncoderChoice:
    """An encoder by name with its options validated: what ``build_encoder`` builds and ``encoder_size`` sizes."""

    name: str
    options: BaseModel

    def as_json(self) -> dict[str, Any]:
        """The stored form: ``{"name": ..., **options}`` with defaults filled in."""
        return {"name": self.name, **self.options.model_dump(mode="json")}


class ModelOptions(BaseModel):
    """Encoders are chosen per modality so image/spectrogram encoders can sit beside MLPs.

    The fields hold the stored JSON (defaults filled in); the validated encoder choices are kept
    beside them, so the engine builds from typed options instead of parsing the dicts again.
    """

    model_config = ConfigDict(extra="forbid")
    _default_choice: EncoderChoice = PrivateAttr()
    _choices: dict[str, EncoderChoice] = PrivateAttr(default_factory=dict)

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
        self._default_choice = _parse_encoder_spec(self.encoder, "encoder")
        self._choices = {m: _parse_encoder_spec(spec, f"encoders.{m}") for m, spec in self.encoders.items()}
        self.encoder = self._default_choice.as_json()
        self.encoders = {m: choice.as_json() for m, choice in self._choices.items()}
        return self

    def choice_for(self, modality: str) -> EncoderChoice:
        """The encoder ``modality`` gets: its override, else the default."""
        return self._choices.get(modality, self._default_choice)


def _parse_encoder_spec(spec: Mapping[str, Any], field: str) -> EncoderChoice:
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
    return EncoderChoice(name, options)


def as_choice(encoder: EncoderChoice | Mapping[str, Any]) -> EncoderChoice:
    """A choice as given, or one parsed from its stored form (``{"name": ..., options...}``)."""
    return encoder if isinstance(encoder, EncoderChoice) else _parse_encoder_spec(encoder, "encoder")


def encoder_sizer(name: str) -> EncoderSpec:
    """The spec that sizes encoder ``name`` (``count``) and names the option that grows it (``size_option``)."""
    return ENCODERS.get(name)


def encoder_size(
    encoder: EncoderChoice | Mapping[str, Any], input_shape: tuple[int, ...], feature_dim: int
) -> ModuleSize:
    """What ``build_encoder`` with the same arguments would hold, without building it."""
    choice = as_choice(encoder)
    return ENCODERS.get(choice.name).count(choice.options, input_shape, feature_dim)


def build_encoder(
    encoder: EncoderChoice | Mapping[str, Any], input_shape: tuple[int, ...], feature_dim: int
) -> nn.Module:
    choice = as_choice(encoder)
    return ENCODERS.get(choice.name).factory(choice.options, input_shape, feature_dim)
