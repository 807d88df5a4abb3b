"""``features``: bring your own precomputed embeddings.

Layout of the folder given as ``root``::

    <root>/train.npz     one 2-D float array per modality (named after it) and `labels`
    <root>/val.npz       the same arrays
    <root>/test.npz      optional, the same arrays
    <root>/classes.txt   optional, one class name per line (line i names label i)

Every array of a split has the same number of rows N; ``labels`` holds N integers in
``0..K-1``. Without ``classes.txt`` the classes are ``"0".."K-1"`` with K = the largest
label over all splits + 1. A relative ``root`` is taken below ``$ARMSCOPE_DATA_ROOT`` when
that variable is set, else below the current directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from armscope.builtin.datasets.features import LABELS, FeaturesOptions
from armscope.data.base import DataError, DatasetBundle, TensorSplit
from armscope.data.paths import open_data_file, read_data_text, resolve_data_path, shown

SPLIT_FILES = {"train": "train.npz", "val": "val.npz", "test": "test.npz"}


def resolve_root(root: str) -> Path:
    try:
        return resolve_data_path(root)
    except ValueError as exc:
        raise DataError(f"root: {exc}") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an npz file, or a DataError naming the file.

    A reader's own message can quote the file (numpy prints a bad header), so only the
    kind of failure is reported.
    """
    with open_data_file(path) as handle:
        try:
            loaded = np.load(handle, allow_pickle=False)
        except MemoryError:
            raise
        except Exception as exc:  # numpy/zipfile raise many kinds for a damaged file
            raise DataError(f"{shown(path)}: cannot read as .npz ({type(exc).__name__})") from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{shown(path)}: not an .npz archive (it holds a single .npy array)")
        try:
            return {name: loaded[name] for name in loaded.files}
        except MemoryError:
            raise
        except Exception as exc:  # e.g. zlib.error, BadZipFile (CRC), ValueError (bad header)
            raise DataError(f"{shown(path)}: cannot read as .npz ({type(exc).__name__})") from None
        finally:
            loaded.close()


def check_labels(values: np.ndarray, where: str) -> np.ndarray:
    """Labels as int64, or a DataError: 1-D, whole numbers, not negative."""
    if values.ndim != 1:
        raise DataError(f"{where}: 'labels' must be 1-D, got shape {values.shape}")
    if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.number):
        raise DataError(f"{where}: 'labels' must be integers, got dtype {values.dtype}")
    if not np.issubdtype(values.dtype, np.integer):
        if np.issubdtype(values.dtype, np.complexfloating):
            raise DataError(f"{where}: 'labels' must be integers, got dtype {values.dtype}")
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{where}: 'labels' must be whole numbers; row {row} is not")
    if values.size and values.min() < 0:
        row = int(np.argmin(values))
        raise DataError(f"{where}: negative label at row {row}")
    if values.size and values.max() > np.iinfo(np.int64).max // 2:
        row = int(np.argmax(values))
        raise DataError(f"{where}: the label at row {row} is too large")
    return values.astype(np.int64)


def check_features(values: np.ndarray, name: str, n_rows: int, where: str) -> np.ndarray:
    """A modality's features as float32 (N, d), or a DataError."""
    if values.dtype == np.bool_:
        values = values.astype(np.float32)
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(
        values.dtype, np.complexfloating
    ):
        raise DataError(f"{where}: {name!r} must hold real numbers, got dtype {values.dtype}")
    if values.ndim != 2:
        raise DataError(
            f"{where}: {name!r} must be 2-D (rows x features), got shape {values.shape}"
        )
    if values.shape[0] != n_rows:
        raise DataError(f"{where}: {name!r} has {values.shape[0]} rows but 'labels' has {n_rows}")
    if values.shape[1] == 0:
        raise DataError(f"{where}: {name!r} has no feature columns (shape {values.shape})")
    with np.errstate(over="ignore", invalid="ignore"):
        out = values.astype(np.float32)
    finite = np.isfinite(out)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        raise DataError(
            f"{where}: {name!r} has {int((~finite).sum())} non-finite values (NaN, inf, or "
            f"beyond float32 range), first in row {int(bad_rows[0])}"
        )
    return out


def standardize_splits(
    train: dict[str, np.ndarray], others: list[dict[str, np.ndarray]]
) -> dict[str, dict[str, list[float]]]:
    """Z-score every feature in place with train mean/std (std 0 -> 1); returns the stats."""
    stats: dict[str, dict[str, list[float]]] = {}
    for name, x in train.items():
        mean = x.mean(axis=0, dtype=np.float64)
        std = x.std(axis=0, dtype=np.float64)
        std = np.where(std > 1e-12, std, 1.0)
        for split in [train, *others]:
            split[name] = ((split[name] - mean) / std).astype(np.float32)
        stats[name] = {"mean": mean.tolist(), "std": std.tolist()}
    return stats


def read_classes(path: Path) -> list[str]:
    """One class name per non-blank line; errors give line numbers, not the names."""
    first_line: dict[str, int] = {}
    for number, line in enumerate(read_data_text(path).splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if name in first_line:
            raise DataError(
                f"{shown(path)}, line {number}: repeats the class name of line {first_line[name]}"
            )
        first_line[name] = number
    if not first_line:
        raise DataError(f"{shown(path)}: no class names (expected one per line)")
    return list(first_line)


def build_features(options: FeaturesOptions, seed: int) -> DatasetBundle:
    root = resolve_root(options.root)
    if not root.is_dir():
        raise DataError(f"root: folder {shown(root)} not found")

    raw: dict[str, dict[str, np.ndarray]] = {}
    paths: dict[str, Path] = {}
    for split, filename in SPLIT_FILES.items():
        path = root / filename
        if split == "test" and not path.exists():
            continue
        if not path.is_file():
            raise DataError(f"{shown(path)}: file not found (the {split} split is required)")
        paths[split] = path
        raw[split] = read_npz(path)

    train_path = paths["train"]
    available = sorted(name for name in raw["train"] if name != LABELS)
    if options.modalities is None:
        modalities = available
    else:
        missing = [m for m in options.modalities if m not in raw["train"]]
        if missing:
            raise DataError(
                f"{shown(train_path)}: no array for modality {', '.join(map(repr, missing))}; "
                f"arrays there: {', '.join(available) or '(none)'}"
            )
        modalities = list(options.modalities)
    if len(modalities) < 2:
        raise DataError(
            f"{shown(train_path)}: needs at least two modality arrays besides 'labels', found "
            f"{len(modalities)} ({', '.join(modalities) or 'none'})"
        )

    labels: dict[str, np.ndarray] = {}
    features: dict[str, dict[str, np.ndarray]] = {}
    for split, arrays in raw.items():
        path = paths[split]
        if LABELS not in arrays:
            raise DataError(
                f"{shown(path)}: no 'labels' array (arrays there: {', '.join(sorted(arrays)) or 'none'})"
            )
        y = check_labels(arrays[LABELS], shown(path))
        if y.shape[0] == 0:
            raise DataError(f"{shown(path)}: empty split (0 rows)")
        labels[split] = y
        features[split] = {}
        for m in modalities:
            if m not in arrays:
                raise DataError(
                    f"{shown(path)}: no array {m!r} ({train_path.name} has it); arrays there: "
                    f"{', '.join(sorted(arrays))}"
                )
            x = check_features(arrays[m], m, y.shape[0], shown(path))
            if split != "train" and x.shape[1] != features["train"][m].shape[1]:
                raise DataError(
                    f"{shown(path)}: {m!r} has {x.shape[1]} features per row but {train_path.name} "
                    f"has {features['train'][m].shape[1]}"
                )
            features[split][m] = x

    classes_path = root / "classes.txt"
    if classes_path.exists():
        class_names = read_classes(classes_path)
        for split, y in labels.items():
            if y.max() >= len(class_names):
                row = int(np.argmax(y >= len(class_names)))
                raise DataError(
                    f"{shown(paths[split])}: the label at row {row} is outside the class list "
                    f"({classes_path.name} names {len(class_names)} classes, labels 0..{len(class_names) - 1})"
                )
        classes_from = str(classes_path)
    else:
        k = max(int(y.max()) for y in labels.values()) + 1
        if k < 2:
            raise DataError(
                f"{shown(train_path)}: all labels are 0; at least two classes are needed "
                "(or name the classes in classes.txt)"
            )
        if k > 100_000:
            raise DataError(f"{shown(train_path)}: the largest label implies more than 100,000 classes")
        class_names = [str(i) for i in range(k)]
        classes_from = "labels (no classes.txt)"

    stats = None
    if options.standardize:
        others = [features[s] for s in features if s != "train"]
        standardize_splits(features["train"], others)
        stats = "train mean/std per feature"

    splits = {
        split: TensorSplit(
            features={
                m: torch.from_numpy(np.ascontiguousarray(features[split][m])) for m in modalities
            },
            labels=torch.from_numpy(labels[split]),
        )
        for split in features
    }
    info: dict[str, object] = {
        "root": str(root),
        "files": {split: str(path) for split, path in paths.items()},
        "dims": {m: int(features["train"][m].shape[1]) for m in modalities},
        "classes_from": classes_from,
        "standardized": stats or False,
        **{f"n_{split}": len(s) for split, s in splits.items()},
    }
    return DatasetBundle(
        name="features",
        modalities=modalities,
        class_names=class_names,
        input_shapes={m: (int(features["train"][m].shape[1]),) for m in modalities},
        train=splits["train"],
        val=splits["val"],
        test=splits.get("test"),
        info=info,
    )
