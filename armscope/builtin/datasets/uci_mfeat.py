"""``uci-mfeat``: the UCI "Multiple Features" handwritten digits, six views of 2,000 images (its options and spec).

The loader, and the data's origin and licence, are in ``armscope.data.uci_mfeat``.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator

from armscope.data.footprint import FLOAT_BYTES, LABEL_BYTES, DataFootprint
from armscope.data.options import DatasetOptions
from armscope.data.paths import check_data_path
from armscope.specs import DatasetSpec

VIEW_DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
N_CLASSES = 10
SHIPPED_ROWS = 2000


class UciMfeatOptions(DatasetOptions):
    """Options of ``uci-mfeat``."""

    model_config = ConfigDict(extra="forbid")

    views: list[str] = Field(
        default_factory=lambda: ["mor", "fou"],
        min_length=2,
        max_length=6,
        description="Views used as modalities, two or more of: fou, fac, kar, pix, zer, mor.",
    )
    val_fraction: float = Field(
        default=0.2,
        ge=0.01,
        le=0.9,
        description="Fraction of every class held out for validation (stratified, fixed by the seed).",
    )
    standardize: bool = Field(
        default=True,
        description="Z-score every feature with the mean and std of the training split only.",
    )
    file: str | None = Field(
        default=None,
        description="An .npz in the same layout to read instead of the copy shipped with armscope.",
    )

    _check_file = field_validator("file")(check_data_path)

    @field_validator("views")
    @classmethod
    def _check_views(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in VIEW_DIMS]
        if unknown:
            raise ValueError(
                f"unknown view {', '.join(map(repr, unknown))}; valid views: {', '.join(VIEW_DIMS)}"
            )
        duplicates = sorted({v for v in value if value.count(v) > 1})
        if duplicates:
            raise ValueError(f"views must be unique; repeated: {', '.join(duplicates)}")
        return value

    def modality_names(self) -> list[str]:
        return list(self.views)

    def footprint(self, batch_size: int) -> DataFootprint:
        """The chosen views of every row as float32, and the labels, held in memory."""
        features = sum(VIEW_DIMS[v] for v in self.views)
        notes: tuple[str, ...] = ()
        if self.file:
            notes = (f"dataset_options.file: its row count is only known from the file; counted as {SHIPPED_ROWS:,}",)
        return DataFootprint(
            modalities=list(self.views),
            input_shapes={v: (VIEW_DIMS[v],) for v in self.views},
            n_classes=N_CLASSES,
            memory_bytes=SHIPPED_ROWS * (FLOAT_BYTES * features + LABEL_BYTES),
            memory_formula=(
                f"{SHIPPED_ROWS:,} rows x ({features:,} features x {FLOAT_BYTES} bytes + {LABEL_BYTES} bytes of label)"
            ),
            memory_field=("dataset_options", "views"),
            notes=notes,
        )


SPECS = [
    DatasetSpec(
        "uci-mfeat",
        "armscope.data.uci_mfeat:build_uci_mfeat",
        UciMfeatOptions,
        "UCI Multiple Features: 2,000 handwritten digits, six views (real data, shipped).",
    )
]
