"""Run budgets: a config whose model or data cannot fit is refused when it is validated.

Bounds on single fields (a hidden size, a sample count) do not bound their product, and
a run that needs a terabyte fails or hogs a worker only once it starts. So every
RunConfig is sized from its options alone, with nothing allocated and no file read: the
numbers the model would hold (parameters and buffers of every encoder and the fusion
head, with a mid-fusion head's blocks between encoder stages) and the bytes the data set
would hold in memory, from the plugins' specs alone, so nothing here imports torch. The
limits are read from the environment at each validation, so the API server, the worker
and the CLI each apply their own machine's setting (and a test may change it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from armscope.data.footprint import DataFootprint
from armscope.data.options import DatasetOptions
from armscope.models.base import ModelOptions, encoder_size, encoder_sizer
from armscope.models.sizes import ModuleSize
from armscope.specs import StagedHeadSize

MAX_PARAMETERS_VARIABLE = "ARMSCOPE_MAX_PARAMETERS"
MAX_DATA_BYTES_VARIABLE = "ARMSCOPE_MAX_DATA_BYTES"
DEFAULT_MAX_PARAMETERS = 300_000_000
DEFAULT_MAX_DATA_BYTES = 8 * 2**30


class SizedHead(Protocol):
    """A fusion head's size by modality count, feature size and class count: a method spec's ``head``, or the module class."""

    def size(self, n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize: ...


class BudgetSettingError(RuntimeError):
    """A budget variable that is not a positive whole number: the server's setting is wrong, not the config."""


@dataclass(frozen=True)
class Budget:
    """The most a run may hold: numbers in its model, and bytes of data in memory."""

    max_parameters: int = DEFAULT_MAX_PARAMETERS
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Budget:
        environ = os.environ if environ is None else environ
        return cls(
            max_parameters=_limit(environ, MAX_PARAMETERS_VARIABLE, DEFAULT_MAX_PARAMETERS),
            max_data_bytes=_limit(environ, MAX_DATA_BYTES_VARIABLE, DEFAULT_MAX_DATA_BYTES),
        )


def _limit(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise BudgetSettingError(f"{name} must be a positive whole number, got {raw!r}")
    return value


@dataclass(frozen=True)
class ModelPart:
    """One encoder or the head, with the config field that sizes it."""

    label: str
    field: tuple[str, ...]
    size: ModuleSize


@dataclass(frozen=True)
class ModelEstimate:
    """What ``build_model`` would build for this config, part by part; a lower bound when ``notes`` say so."""

    parts: tuple[ModelPart, ...]
    notes: tuple[str, ...]

    @property
    def size(self) -> ModuleSize:
        return sum((part.size for part in self.parts), ModuleSize())


@dataclass(frozen=True)
class Overrun:
    """A budget a config exceeds, with the field to lower."""

    field: tuple[str, ...]
    message: str


def data_footprint(options: DatasetOptions, batch_size: int) -> DataFootprint:
    """What the data set's options say it hands the model and holds in memory (see ``DatasetOptions.footprint``)."""
    return options.footprint(batch_size)


def stage_widths(options: ModelOptions, data: DataFootprint) -> list[tuple[int, ...]] | None:
    """Each modality's encoder stage widths, as its spec declares them; None if an encoder declares none."""
    widths = []
    for modality in data.modalities:
        choice = options.choice_for(modality)
        stages = encoder_sizer(choice.name).stages
        if stages is None:
            return None
        widths.append(stages(choice.options, data.input_shapes[modality], options.feature_dim))
    return widths


def staged_part(
    options: ModelOptions, head: StagedHeadSize, data: DataFootprint, method_options: BaseModel | None
) -> ModelPart | str:
    """What a mid-fusion head builds between the encoders' stages, or the note saying why it is not counted."""
    widths = stage_widths(options, data)
    if widths is None:
        return f"the {head.name} head's blocks between encoder stages are not counted: an encoder declares no stages"
    field = ("method_options", head.option) if head.option else ("method_options",)
    return ModelPart(f"{head.name} blocks between the encoders' stages", field, head.staged(method_options, widths))


def estimate_model(
    options: ModelOptions, head: SizedHead, data: DataFootprint, method_options: BaseModel | None = None
) -> ModelEstimate:
    """The numbers of every encoder (one per modality, as ``build_model`` makes them) and of the head.

    A mid-fusion head (``StagedHeadSize``) adds the blocks it builds between the encoders' stages, sized by
    ``method_options`` (None: the method's defaults).
    """
    parts = []
    for modality in data.modalities:
        choice = options.choice_for(modality)
        field = ("model_options", f"encoders.{modality}" if modality in options.encoders else "encoder")
        size_option = encoder_sizer(choice.name).size_option
        if size_option:
            field = (*field, size_option)
        shape = data.input_shapes[modality]
        size = encoder_size(choice, shape, options.feature_dim)
        label = f"{choice.name} encoder of {modality!r} (input {' x '.join(map(str, shape))})"
        parts.append(ModelPart(label, field, size))
    head_size = head.size(len(data.modalities), options.feature_dim, data.n_classes)
    parts.append(ModelPart("fusion head", ("model_options", "feature_dim"), head_size))
    notes = data.notes
    if isinstance(head, StagedHeadSize):
        staged = staged_part(options, head, data, method_options)
        if isinstance(staged, str):
            notes += (staged,)
        else:
            parts.append(staged)
    return ModelEstimate(tuple(parts), notes)


def run_overruns(
    dataset_options: DatasetOptions,
    model_options: ModelOptions,
    head: SizedHead,
    batch_size: int,
    budget: Budget,
    method_options: BaseModel | None = None,
) -> list[Overrun]:
    """Every budget the run exceeds, each naming the field to lower, the estimate and the limit."""
    data = data_footprint(dataset_options, batch_size)
    model = estimate_model(model_options, head, data, method_options)
    found = []
    total = model.size.total
    if total > budget.max_parameters:
        largest = max(model.parts, key=lambda part: part.size.total)
        breakdown = "; ".join(f"{part.label}: {part.size.total:,}" for part in model.parts)
        found.append(
            Overrun(
                largest.field,
                f"the model would hold {total:,} parameters and buffers ({breakdown}), over the limit of "
                f"{budget.max_parameters:,} ({MAX_PARAMETERS_VARIABLE}){_lower_bound(model.notes)}",
            )
        )
    if data.memory_bytes > budget.max_data_bytes:
        found.append(
            Overrun(
                data.memory_field,
                f"the data would take {_bytes(data.memory_bytes)} in memory ({data.memory_formula}), over "
                f"the limit of {_bytes(budget.max_data_bytes)} ({MAX_DATA_BYTES_VARIABLE}="
                f"{budget.max_data_bytes}){_lower_bound(data.notes)}",
            )
        )
    return found


def _lower_bound(notes: tuple[str, ...]) -> str:
    return f"; and that is a lower bound: {'; '.join(notes)}" if notes else ""


def _bytes(count: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count} bytes"
