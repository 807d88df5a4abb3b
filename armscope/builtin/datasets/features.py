"""``features``: bring your own precomputed embeddings (its options and spec; the reader is ``armscope.data.features``)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator

from armscope.data.options import DatasetOptions
from armscope.data.paths import check_data_path
from armscope.specs import DatasetSpec

LABELS = "labels"


class FeaturesOptions(DatasetOptions):
    """Options of ``features``."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(
        min_length=1,
        description=(
            "Folder holding train.npz, val.npz (optionally test.npz and classes.txt). Required. "
            "Relative paths are read below $ARMSCOPE_DATA_ROOT when set."
        ),
    )
    modalities: list[str] | None = Field(
        default=None,
        min_length=2,
        max_length=16,
        description="Arrays to use as modalities (two or more); default: every array but 'labels', sorted.",
    )
    standardize: bool = Field(
        default=False,
        description="Z-score every feature with the mean and std of the training split.",
    )

    _check_root = field_validator("root")(check_data_path)

    @field_validator("modalities")
    @classmethod
    def _check_modalities(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if LABELS in value:
            raise ValueError("'labels' holds the labels and cannot be a modality")
        if any(not name for name in value):
            raise ValueError("modality names must not be empty")
        duplicates = sorted({n for n in value if value.count(n) > 1})
        if duplicates:
            raise ValueError(f"modality names must be unique; repeated: {', '.join(duplicates)}")
        return value

    def modality_names(self) -> list[str] | None:
        return list(self.modalities) if self.modalities is not None else None


SPECS = [
    DatasetSpec(
        "features",
        "armscope.data.features:build_features",
        FeaturesOptions,
        "Your own precomputed features: train.npz / val.npz with one array per modality.",
    )
]
