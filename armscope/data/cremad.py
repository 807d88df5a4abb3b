"""``cremad``: CREMA-D emotion clips in the OGM-GE / ARM layout, 6 classes (its spec: ``armscope.builtin.datasets.cremad``).

Layout of the folder given as ``root``::

    <root>/AudioWAV/<clip>.wav
    <root>/Image-01-FPS/<clip>/<frame>.jpg     frames at 1 fps; any names, used in name order
    <root>/train.csv, <root>/test.csv          rows "<clip>,<LABEL>", no header

The common split has no validation part, so test.csv is the validation split, as in the
papers whose numbers armscope is compared with. Clips whose audio or frame folder is
missing are skipped and reported in ``info["warnings"]``.
"""

from __future__ import annotations

from pathlib import Path

from armscope.builtin.datasets.cremad import CLASSES, CremadOptions
from armscope.data.av_folder import (
    build_bundle,
    check_clip_name,
    existing,
    find_clips,
    find_root,
    read_csv_rows,
    require_clips,
    require_folders,
    wav_info,
)
from armscope.data.base import DataError, DatasetBundle
from armscope.data.paths import shown

AUDIO_DIR = "AudioWAV"
FRAMES_DIR = "Image-01-FPS"
SPLIT_FILES = {"train": "train.csv", "val": "test.csv"}


def read_split_csv(path: Path) -> list[tuple[str, int]]:
    """(clip, class index) per row of a "<clip>,<LABEL>" file."""
    entries = []
    for number, fields in read_csv_rows(path, "CREMA-D split list"):
        if len(fields) != 2:
            raise DataError(
                f"{shown(path)}, line {number}: expected '<clip>,<LABEL>', got {len(fields)} fields"
            )
        clip, label = fields
        check_clip_name(clip, path, number)
        if label not in CLASSES:
            raise DataError(
                f"{shown(path)}, line {number}: the label is not a CREMA-D class ({' '.join(CLASSES)})"
            )
        entries.append((clip, CLASSES.index(label)))
    return entries


def build_cremad(options: CremadOptions, seed: int) -> DatasetBundle:
    root = find_root(options.root)
    require_folders(root, [AUDIO_DIR, FRAMES_DIR], "cremad")
    listings = {
        split: find_clips(
            read_split_csv(root / filename),
            root / filename,
            lambda clip: existing(root / AUDIO_DIR / f"{clip}.wav"),
            lambda clip: root / FRAMES_DIR / clip,
        )
        for split, filename in SPLIT_FILES.items()
    }
    require_clips("cremad", root, listings)
    wav = options.wav_spectrogram()
    return build_bundle(
        "cremad",
        options,
        root,
        list(CLASSES),
        listings,
        wav,
        wav.shape,
        "the audio options",
        {"val_split": "test.csv", "audio": wav_info(options)},
    )
