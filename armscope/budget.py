"""Run budgets: a config whose model or data cannot fit is refused when it is validated.

Bounds on single fields (a hidden size, a sample count) do not bound their product, and
a run that needs a terabyte fails or hogs a worker only once it starts. So every
RunConfig is sized from its options alone, with nothing allocated and no file read: the
numbers the model would hold (parameters and buffers of every encoder and the fusion
head) and the bytes the data set would hold in memory. The limits are read from the
environment at each validation, so the API server, the worker and the CLI each apply
their own machine's setting (and a test may change it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from armscope.data.audio import AudioOptions
from armscope.data.av_folder import AVOptions
from armscope.data.base import DatasetOptions
from armscope.data.cremad import CLASSES as CREMAD_CLASSES
from armscope.data.cremad import CremadOptions
from armscope.data.footprint import FLOAT_BYTES, LABEL_BYTES, DataFootprint, furthest_above_default
from armscope.data.kinetics_sounds import CLASSES as KINETICS_CLASSES
from armscope.data.kinetics_sounds import KineticsSoundsOptions
from armscope.models.base import ModelOptions, ModuleSize, encoder_size, encoder_sizer
from armscope.models.heads import FusionHead

MAX_PARAMETERS_VARIABLE = "ARMSCOPE_MAX_PARAMETERS"
MAX_DATA_BYTES_VARIABLE = "ARMSCOPE_MAX_DATA_BYTES"
DEFAULT_MAX_PARAMETERS = 300_000_000
DEFAULT_MAX_DATA_BYTES = 8 * 2**30
TYPICAL_BATCH_SIZE = 64  # RunConfig's default batch size, the yardstick for naming a field
LOADER_PREFETCH = 2  # batches each DataLoader worker keeps ready (torch's default prefetch_factor)
AV_CLASSES: dict[type[AVOptions], int] = {
    CremadOptions: len(CREMAD_CLASSES),
    KineticsSoundsOptions: len(KINETICS_CLASSES),
}


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
    """A data set's own footprint where it gives one; the audio-visual sets and unknown data otherwise."""
    own = getattr(options, "footprint", None)
    if own is not None:
        return own(batch_size)
    if isinstance(options, AVOptions):
        return streamed_av_footprint(options, batch_size)
    return unknown_footprint(options)


def streamed_av_footprint(options: AVOptions, batch_size: int) -> DataFootprint:
    """Clips are decoded in DataLoader workers, each keeping batches ready, plus the one in use."""
    notes: list[str] = []
    visual = (options.frames, 3, options.image_size, options.image_size)
    factors = {
        ("batch_size",): batch_size / TYPICAL_BATCH_SIZE,
        ("dataset_options", "frames"): options.frames / _default(options, "frames"),
        ("dataset_options", "image_size"): (options.image_size / _default(options, "image_size")) ** 2,
    }
    if isinstance(options, AudioOptions):
        audio = options.wav_spectrogram().shape
        factors |= {
            ("dataset_options", "seconds"): options.seconds / _default(options, "seconds"),
            ("dataset_options", "sample_rate"): options.sample_rate / _default(options, "sample_rate"),
            ("dataset_options", "n_fft"): options.n_fft / _default(options, "n_fft"),
            ("dataset_options", "hop_length"): _default(options, "hop_length") / options.hop_length,
        }
        if not isinstance(options, CremadOptions):
            notes.append("audio is sized as wav spectrograms; stored (.npy/.pkl) ones keep their own shape")
    else:
        audio = (1, 1, 1)
        notes.append("the audio spectrogram shape is only known from the files; counted as 1 x 1 x 1")
    n_classes = AV_CLASSES.get(type(options))
    if n_classes is None:
        n_classes = 2
        notes.append("the class count is only known from the files; counted as 2")
    batches = LOADER_PREFETCH * options.num_workers + 1
    factors[("dataset_options", "num_workers")] = batches / (LOADER_PREFETCH * _default(options, "num_workers") + 1)
    sample_values = math.prod(visual) + math.prod(audio)
    sample = FLOAT_BYTES * sample_values + LABEL_BYTES
    return DataFootprint(
        modalities=["audio", "visual"],
        input_shapes={"audio": audio, "visual": visual},
        n_classes=n_classes,
        memory_bytes=batches * batch_size * sample,
        memory_formula=(
            f"{batches} batches in flight (num_workers {options.num_workers} x {LOADER_PREFETCH} + 1) x "
            f"batch_size {batch_size:,} x ({sample_values:,} values x {FLOAT_BYTES} bytes + "
            f"{LABEL_BYTES} bytes of label)"
        ),
        memory_field=furthest_above_default(factors),
        notes=tuple(notes),
    )


def unknown_footprint(options: DatasetOptions) -> DataFootprint:
    """Data whose sizes are only in its files: a lower bound, saying so."""
    named = options.modality_names()
    modalities = named or ["<modality 1>", "<modality 2>"]
    return DataFootprint(
        modalities=modalities,
        input_shapes={m: (1,) for m in modalities},
        n_classes=2,
        memory_bytes=0,
        memory_formula="the data's size is only known from its files",
        memory_field=("dataset_options",),
        notes=(
            "input sizes, class count and data size are only known from the data files; "
            "counted as 1 feature per modality and 2 classes" + ("" if named else ", for 2 modalities"),
        ),
    )


def _default(options: AVOptions, name: str) -> float:
    return type(options).model_fields[name].default


def estimate_model(options: ModelOptions, head: type[FusionHead], data: DataFootprint) -> ModelEstimate:
    """The numbers of every encoder (one per modality, as ``build_model`` makes them) and of the head."""
    parts = []
    for modality in data.modalities:
        spec = options.spec_for(modality)
        field = ("model_options", f"encoders.{modality}" if modality in options.encoders else "encoder")
        size_option = encoder_sizer(spec["name"]).size_option
        if size_option:
            field = (*field, size_option)
        shape = data.input_shapes[modality]
        size = encoder_size(spec, shape, options.feature_dim)
        label = f"{spec['name']} encoder of {modality!r} (input {' x '.join(map(str, shape))})"
        parts.append(ModelPart(label, field, size))
    head_size = head.size(len(data.modalities), options.feature_dim, data.n_classes)
    parts.append(ModelPart("fusion head", ("model_options", "feature_dim"), head_size))
    return ModelEstimate(tuple(parts), data.notes)


def run_overruns(
    dataset_options: DatasetOptions,
    model_options: ModelOptions,
    head: type[FusionHead],
    batch_size: int,
    budget: Budget,
) -> list[Overrun]:
    """Every budget the run exceeds, each naming the field to lower, the estimate and the limit."""
    data = data_footprint(dataset_options, batch_size)
    model = estimate_model(model_options, head, data)
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
