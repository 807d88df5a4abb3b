"""RunConfig: the one description of a training run shared by CLI, API, UI and worker.

Validated from the plugins' specs alone (options, modalities, run budget), so the API
validates a config without importing torch.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from armscope.budget import Budget, run_overruns
from armscope.models.base import ModelOptions
from armscope.plugins import DATASETS, METHODS
from armscope.registry import prefixed_validation_error


class ConfigError(ValueError):
    """A config file that cannot be read or parsed; the message names the file."""


PROJECT_CHARACTERS = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 _./+-]{0,98}[A-Za-z0-9_./+-])?")


def project_name(value: str) -> str:
    """A project name goes into URLs and dropdowns: 1-100 letters, digits, spaces and _ . / + -, starting with a
    letter or digit and not ending in a space."""
    if not PROJECT_CHARACTERS.fullmatch(value):
        raise PydanticCustomError(
            "project_name",
            "a project name is 1-100 letters, digits, spaces and _ . / + -, starting with a letter or digit and "
            "not ending in a space",
        )
    return value


ProjectName = Annotated[str, AfterValidator(project_name)]


class RunConfig(BaseModel):
    """A complete, validated description of one training run.

    Option dictionaries are validated against the registered data set, method
    and encoder and stored with their defaults filled in, so a stored config
    alone reproduces the run.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    _parsed_dataset_options: BaseModel = PrivateAttr()
    _parsed_method_options: BaseModel = PrivateAttr()
    _parsed_model_options: ModelOptions = PrivateAttr()

    name: str | None = Field(
        None, max_length=200,
        description="Display name; generated when empty. Unique: a name another run has gets a suffix (-2, -3...).",
    )
    project: ProjectName | None = Field(
        None, description="The project the run belongs to: a name grouping the runs of one study, to filter by."
    )
    tags: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=list, max_length=50, description="Free-form labels for filtering."
    )
    dataset: str = Field("synthetic-shift", description="Registered data set name.")
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    method: str = Field("arm", description="Registered method name.")
    method_options: dict[str, Any] = Field(default_factory=dict)
    model_options: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    lr: float = Field(0.01, gt=0, le=10)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 runs the step under autocast.")
    channels_last: bool = Field(False, description="Channels-last memory format for convolutional encoders.")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        return _known(DATASETS, name)

    @field_validator("method")
    @classmethod
    def _known_method(cls, name: str) -> str:
        return _known(METHODS, name)

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(t.strip() for t in tags if t.strip()))

    @model_validator(mode="after")
    def _validate_options(self) -> "RunConfig":
        dataset_opts = DATASETS.parse_options(self.dataset, self.dataset_options, "dataset_options")
        method_opts = METHODS.parse_options(self.method, self.method_options, "method_options")
        try:
            model_opts = ModelOptions.model_validate(self.model_options)
        except ValidationError as exc:
            raise prefixed_validation_error(exc, "model_options", ModelOptions) from None
        modalities = dataset_opts.modality_names()
        if modalities is not None:
            self._check_encoder_modalities(model_opts, modalities)
        check = getattr(method_opts, "check_modalities", None)
        if modalities is not None and check is not None:
            problem = check(modalities)
            if problem:
                raise _field_error(("method_options", *problem[0]), problem[1], self.method_options)
        self._check_budget(dataset_opts, model_opts, method_opts)
        self._parsed_dataset_options, self._parsed_method_options = dataset_opts, method_opts
        self._parsed_model_options = model_opts
        self.dataset_options = dataset_opts.model_dump(mode="json")
        self.method_options = method_opts.model_dump(mode="json")
        self.model_options = model_opts.model_dump(mode="json")
        return self

    def _check_encoder_modalities(self, model_opts: ModelOptions, modalities: list[str]) -> None:
        """Refuse an encoder override for a modality the data set does not have (a typo would otherwise be
        accepted and fail on the worker, or be silently ignored)."""
        unknown = [m for m in model_opts.encoders if m not in modalities]
        if unknown:
            near = {m: difflib.get_close_matches(m, modalities, n=1) for m in unknown}
            named = ", ".join(f"'{m}'" + (f" (did you mean '{near[m][0]}'?)" if near[m] else "") for m in unknown)
            message = f"unknown modality {named}; the data set {self.dataset} has: {', '.join(modalities)}"
            raise _field_error(("model_options", "encoders"), message, self.model_options)

    def _check_budget(self, dataset_opts: Any, model_opts: ModelOptions, method_opts: Any) -> None:
        """Refuse a run whose model or data would not fit this machine's budget (see armscope.budget)."""
        head = METHODS.get(self.method).head
        overruns = run_overruns(dataset_opts, model_opts, head, self.batch_size, Budget.from_environment(),
                                method_opts)
        if overruns:
            raise ValidationError.from_exception_data(
                "RunConfig",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("over_budget", "{problem}", {"problem": o.message}),
                        loc=o.field,
                        input=getattr(self, o.field[0]),
                    )
                    for o in overruns
                ],
            )

    @property
    def parsed_dataset_options(self) -> BaseModel:
        """The data set's options as validated: its spec's options model, not the stored dict."""
        return self._parsed_dataset_options

    @property
    def parsed_method_options(self) -> BaseModel:
        """The method's options as validated: its spec's options model, not the stored dict."""
        return self._parsed_method_options

    @property
    def parsed_model_options(self) -> ModelOptions:
        """The encoders and feature size as validated, each encoder's options typed."""
        return self._parsed_model_options

    def display_name(self) -> str:
        return self.name or f"{self.method}-{self.dataset}-s{self.seed}"


def _known(registry: Any, name: str) -> str:
    if name not in registry:
        near = difflib.get_close_matches(name, registry.names(), n=1)
        raise PydanticCustomError(
            "unknown_name",
            "unknown {kind} '{name}'{hint}; choose from: {choices}",
            {"kind": registry.kind, "name": name, "choices": ", ".join(registry.names()),
             "hint": f" (did you mean '{near[0]}'?)" if near else ""},
        )
    return name


def _field_error(loc: tuple[str, ...], message: str, value: Any) -> ValidationError:
    error = PydanticCustomError("invalid_option", message)
    return ValidationError.from_exception_data(
        "RunConfig", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


def run_config_schema() -> dict[str, Any]:
    return RunConfig.model_json_schema()


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a JSON or YAML mapping; validation happens later, together with CLI overrides."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid JSON/YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of RunConfig fields")
    return data


def set_dotted(target: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` override; the value is JSON when it parses, else a string."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects dotted.key=value, got {assignment!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    parts = key.strip().split(".")
    node = target
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a mapping")
        node = child
    node[parts[-1]] = value
