"""``kinetics-sounds``: ARM's Kinetics-Sounds (31 classes) with precomputed spectrograms (its options and spec).

The reader is ``armscope.data.kinetics_sounds``.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator

from armscope.builtin.datasets._av import AVOptions
from armscope.specs import DatasetSpec

CLASSES = [
    "blowing_nose",
    "blowing_out_candles",
    "bowling",
    "chopping_wood",
    "dribbling_basketball",
    "finger_snapping",
    "laughing",
    "mowing_lawn",
    "playing_accordion",
    "playing_bagpipes",
    "playing_bass_guitar",
    "playing_clarinet",
    "playing_drums",
    "playing_guitar",
    "playing_harmonica",
    "playing_keyboard",
    "playing_organ",
    "playing_piano",
    "playing_saxophone",
    "playing_trombone",
    "playing_trumpet",
    "playing_violin",
    "playing_xylophone",
    "ripping_paper",
    "shoveling_snow",
    "shuffling_cards",
    "singing",
    "tap_dancing",
    "tapping_guitar",
    "tapping_pen",
    "tickling",
]


class KineticsSoundsOptions(AVOptions):
    """Options of ``kinetics-sounds``."""

    model_config = ConfigDict(extra="forbid")

    val_split: str = Field(
        default="val",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description=(
            "Split used for validation: <root>/<val_split>_list.txt, image/<val_split>, "
            "spec/<val_split>."
        ),
    )

    @field_validator("val_split")
    @classmethod
    def _not_train(cls, value: str) -> str:
        if value == "train":
            raise ValueError("the validation split must differ from 'train'")
        return value

    def class_count(self) -> int:
        return len(CLASSES)


SPECS = [
    DatasetSpec(
        "kinetics-sounds",
        "armscope.data.kinetics_sounds:build_kinetics_sounds",
        KineticsSoundsOptions,
        "Kinetics-Sounds (31 classes, ARM's layout): image/<split>/<clip>/*.jpg, spec/<split>/*.npy.",
    )
]
