"""``cremad``: CREMA-D emotion clips in the OGM-GE / ARM layout (its options and spec; the reader is ``armscope.data.cremad``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import ConfigDict, Field

from armscope.builtin.datasets._av import AudioOptions, AudioSizing, AVOptions
from armscope.specs import DatasetSpec

CLASSES = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]


class CremadOptions(AudioOptions, AVOptions):
    """Options of ``cremad``."""

    model_config = ConfigDict(extra="forbid")

    val_split: Literal["test"] = Field(
        default="test",
        description="CREMA-D's common split has no validation part: test.csv is used for validation.",
    )

    def class_count(self) -> int:
        return len(CLASSES)

    def audio_sizing(self) -> AudioSizing:
        """Every clip is a wav file, so the options give the spectrogram's shape exactly."""
        return replace(super().audio_sizing(), notes=())


SPECS = [
    DatasetSpec(
        "cremad",
        "armscope.data.cremad:build_cremad",
        CremadOptions,
        "CREMA-D (6 emotions): AudioWAV/*.wav + Image-01-FPS/<clip>/*.jpg, train.csv / test.csv.",
    )
]
