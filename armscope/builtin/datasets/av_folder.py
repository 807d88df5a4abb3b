"""``av-folder``: any audio-visual set in one generic layout (its options and spec; the reader is ``armscope.data.av_folder``)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from armscope.builtin.datasets._av import AudioOptions, AVOptions
from armscope.specs import DatasetSpec


class AVFolderOptions(AudioOptions, AVOptions):
    """Options of ``av-folder``; the audio options apply to raw (.wav) audio only."""

    model_config = ConfigDict(extra="forbid")

    val_split: Literal["auto", "val", "test"] = Field(
        default="auto",
        description=(
            "Manifest rows used for validation: 'val', 'test', or 'auto' (val when the manifest "
            "has val rows, else test). With val used, test rows become the test split."
        ),
    )


SPECS = [
    DatasetSpec(
        "av-folder",
        "armscope.data.av_folder:build_av_folder",
        AVFolderOptions,
        "Any audio-visual set: manifest.csv, frames/<clip>/*.jpg, audio/<clip>.wav|.npy|.pkl.",
    )
]
