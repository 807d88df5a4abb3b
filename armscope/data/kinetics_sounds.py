"""``kinetics-sounds``: ARM's Kinetics-Sounds (31 classes) with precomputed spectrograms (its spec: ``armscope.builtin.datasets.kinetics_sounds``).

Layout of the folder given as ``root`` (split = train, and the validation split, ``val``)::

    <root>/image/<split>/<clip>/frame_00000.jpg   frames, used in name order
    <root>/spec/<split>/<clip>.npy                a 2-D float spectrogram / fbank
    <root>/<split>_list.txt                       rows "<clip> <label_index>"

The spectrograms are used as stored; every clip's must have the shape of the first
training clip's. Clips whose spectrogram or frame folder is missing are skipped and
reported in ``info["warnings"]``.
"""

from __future__ import annotations

from pathlib import Path

from armscope.builtin.datasets.kinetics_sounds import CLASSES, KineticsSoundsOptions
from armscope.data.audio import read_spectrogram
from armscope.data.av_folder import (
    build_bundle,
    check_clip_name,
    existing,
    find_clips,
    find_root,
    read_lines,
    require_clips,
    require_folders,
)
from armscope.data.base import DataError, DatasetBundle
from armscope.data.paths import shown


def read_list(path: Path) -> list[tuple[str, int]]:
    """(clip, label index) per row of a "<clip> <label_index>" file."""
    entries = []
    for number, line in read_lines(path, "Kinetics-Sounds split list"):
        fields = line.rsplit(maxsplit=1)
        if len(fields) != 2:
            raise DataError(f"{shown(path)}, line {number}: expected '<clip> <label_index>'")
        clip, label = fields[0].strip(), fields[1]
        check_clip_name(clip, path, number)
        try:
            index = int(label)
        except ValueError:
            raise DataError(f"{shown(path)}, line {number}: the label index is not an integer") from None
        if not 0 <= index < len(CLASSES):
            raise DataError(
                f"{shown(path)}, line {number}: the label index is out of range "
                f"(0..{len(CLASSES) - 1}, {len(CLASSES)} classes)"
            )
        entries.append((clip, index))
    return entries


def build_kinetics_sounds(options: KineticsSoundsOptions, seed: int) -> DatasetBundle:
    root = find_root(options.root)
    splits = {"train": "train", "val": options.val_split}
    require_folders(
        root, [f"{kind}/{s}" for s in splits.values() for kind in ("image", "spec")], "kinetics-sounds"
    )
    listings = {}
    for split, name in splits.items():
        source = root / f"{name}_list.txt"
        listings[split] = find_clips(
            read_list(source),
            source,
            lambda clip, name=name: existing(root / "spec" / name / f"{clip}.npy"),
            lambda clip, name=name: root / "image" / name / clip,
        )
    require_clips("kinetics-sounds", root, listings)
    first = listings["train"].clips[0].audio
    return build_bundle(
        "kinetics-sounds",
        options,
        root,
        list(CLASSES),
        listings,
        read_spectrogram,
        tuple(read_spectrogram(first).shape),
        f"the first spectrogram ({shown(first)})",
        {"val_split": options.val_split, "audio": "stored spectrograms (.npy), as they are"},
    )
