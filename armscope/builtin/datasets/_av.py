"""What the audio-visual data sets' specs share: their common options, the audio options, and their footprint.

``cremad``, ``kinetics-sounds`` and ``av-folder`` stream clips from disk, so
their footprint is the batches in flight in the DataLoader workers, sized
from the options alone. Torch-free; the readers are in ``armscope.data``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from armscope.data.footprint import FLOAT_BYTES, LABEL_BYTES, DataFootprint, furthest_above_default
from armscope.data.options import DatasetOptions
from armscope.data.paths import check_data_path

if TYPE_CHECKING:
    from armscope.data.audio import WavSpectrogram

MODALITIES = ["audio", "visual"]
TYPICAL_BATCH_SIZE = 64  # RunConfig's default batch size, the yardstick for naming a field
LOADER_PREFETCH = 2  # batches each DataLoader worker keeps ready (torch's default prefetch_factor)
Factors = dict[tuple[str, ...], float]


def spectrogram_shape(n_samples: int, n_fft: int, hop_length: int) -> tuple[int, int, int]:
    """The (1, frequencies, frames) of a centred STFT of ``n_samples`` samples."""
    return (1, n_fft // 2 + 1, 1 + n_samples // hop_length)


@dataclass(frozen=True)
class AudioSizing:
    """An audio spectrogram's shape as the options give it, the options that grow it, and what is uncertain."""

    shape: tuple[int, ...]
    factors: Factors = field(default_factory=dict)
    notes: tuple[str, ...] = ()


class AudioOptions(BaseModel):
    """How raw audio becomes a spectrogram (mixed into the options of wav-reading data sets)."""

    sample_rate: int = Field(
        default=22050, ge=1000, le=192_000, description="Audio is resampled to this rate (Hz)."
    )
    seconds: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="Every clip is tiled (repeated) until this long, then cut to it.",
    )
    n_fft: int = Field(default=512, ge=16, le=8192, description="STFT window and FFT size.")
    hop_length: int = Field(default=353, ge=1, le=8192, description="STFT hop in samples.")

    @model_validator(mode="after")
    def _check_length(self) -> AudioOptions:
        if self.n_samples() <= self.n_fft // 2:
            raise ValueError(
                f"seconds * sample_rate = {self.n_samples()} samples is too short for n_fft "
                f"{self.n_fft} (needs more than n_fft / 2 = {self.n_fft // 2})"
            )
        return self

    def n_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    def wav_spectrogram(self) -> WavSpectrogram:
        """The reader of these options' spectrograms; it needs numpy, scipy and torch, imported here, when a run reads audio."""
        from armscope.data.audio import WavSpectrogram

        return WavSpectrogram(self.sample_rate, self.n_samples(), self.n_fft, self.hop_length)

    def audio_sizing(self) -> AudioSizing:
        return AudioSizing(
            spectrogram_shape(self.n_samples(), self.n_fft, self.hop_length),
            {
                ("dataset_options", "seconds"): self.seconds / _default(self, "seconds"),
                ("dataset_options", "sample_rate"): self.sample_rate / _default(self, "sample_rate"),
                ("dataset_options", "n_fft"): self.n_fft / _default(self, "n_fft"),
                ("dataset_options", "hop_length"): _default(self, "hop_length") / self.hop_length,
            },
            ("audio is sized as wav spectrograms; stored (.npy/.pkl) ones keep their own shape",),
        )


class AVOptions(DatasetOptions):
    """Options every audio-visual data set has."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(
        min_length=1,
        description=(
            "The data set folder. Required. Relative paths are read below $ARMSCOPE_DATA_ROOT when set."
        ),
    )
    frames: int = Field(
        default=1, ge=1, le=64, description="Frames per clip, stacked on a time axis."
    )
    image_size: int = Field(
        default=224, ge=8, le=1024, description="Frames are cropped/resized to this many pixels square."
    )
    num_workers: int = Field(
        default=2,
        ge=0,
        le=64,
        description="DataLoader worker processes decoding clips (0 = in the training process).",
    )
    on_bad_file: Literal["fail", "skip"] = Field(
        default="fail",
        description=(
            "An unreadable or mis-shaped file: 'fail' stops the run naming the file; 'skip' drops "
            "the clip from its batch and counts it in a warning event."
        ),
    )
    pin_memory: bool | None = Field(
        default=None,
        description=(
            "Pin batches in page-locked memory for faster GPU copies; default (null): when CUDA "
            "is available."
        ),
    )

    _check_root = field_validator("root")(check_data_path)

    def modality_names(self) -> list[str]:
        return list(MODALITIES)

    def class_count(self) -> int | None:
        """The number of classes where the layout fixes it; otherwise only the files say."""
        return None

    def audio_sizing(self) -> AudioSizing:
        return AudioSizing(
            (1, 1, 1), notes=("the audio spectrogram shape is only known from the files; counted as 1 x 1 x 1",)
        )

    def footprint(self, batch_size: int) -> DataFootprint:
        """Clips are decoded in DataLoader workers, each keeping batches ready, plus the one in use."""
        audio = self.audio_sizing()
        notes = list(audio.notes)
        visual = (self.frames, 3, self.image_size, self.image_size)
        factors: Factors = {
            ("batch_size",): batch_size / TYPICAL_BATCH_SIZE,
            ("dataset_options", "frames"): self.frames / _default(self, "frames"),
            ("dataset_options", "image_size"): (self.image_size / _default(self, "image_size")) ** 2,
            **audio.factors,
        }
        n_classes = self.class_count()
        if n_classes is None:
            n_classes = 2
            notes.append("the class count is only known from the files; counted as 2")
        batches = LOADER_PREFETCH * self.num_workers + 1
        factors[("dataset_options", "num_workers")] = batches / (LOADER_PREFETCH * _default(self, "num_workers") + 1)
        sample_values = math.prod(visual) + math.prod(audio.shape)
        sample = FLOAT_BYTES * sample_values + LABEL_BYTES
        return DataFootprint(
            modalities=list(MODALITIES),
            input_shapes={"audio": audio.shape, "visual": visual},
            n_classes=n_classes,
            memory_bytes=batches * batch_size * sample,
            memory_formula=(
                f"{batches} batches in flight (num_workers {self.num_workers} x {LOADER_PREFETCH} + 1) x "
                f"batch_size {batch_size:,} x ({sample_values:,} values x {FLOAT_BYTES} bytes + "
                f"{LABEL_BYTES} bytes of label)"
            ),
            memory_field=furthest_above_default(factors),
            notes=tuple(notes),
        )


def _default(options: BaseModel, name: str) -> float:
    return type(options).model_fields[name].default
