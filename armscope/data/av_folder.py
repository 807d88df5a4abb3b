"""``av-folder``: any audio-visual set (AVE, VGGSound, your own) in one generic layout.

Layout of the folder given as ``root``::

    <root>/manifest.csv                 header "clip,label,split"; split in train | val | test
    <root>/frames/<clip>/*.jpg          the clip's frames, used in name order
    <root>/audio/<clip>.wav             raw audio (any rate, mono or stereo), or
    <root>/audio/<clip>.npy | .pkl      a stored 2-D spectrogram (frequency x time)

Labels are class names; the classes are the sorted distinct labels of the whole manifest.
All clips hold raw audio, or all hold spectrograms (which then share one shape). When a
clip has several audio files, .wav wins over .npy over .pkl.

This module also holds what the three audio-visual data sets' readers share (``cremad`` and
``kinetics-sounds`` are fixed layouts of the same idea): the clip dataset read by
``LoaderSplit``, the skipped-clip accounting and the bundle assembly. Their options and
specs are in ``armscope.builtin.datasets``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from armscope.builtin.datasets._av import MODALITIES, AudioOptions, AVOptions
from armscope.builtin.datasets.av_folder import AVFolderOptions
from armscope.data.audio import read_spectrogram
from armscope.data.base import DataError, DatasetBundle
from armscope.data.features import resolve_root
from armscope.data.frames import FrameTransform, list_frames
from armscope.data.loader_split import LoaderSplit, LoadFailure, Sample, SampleKey
from armscope.data.paths import read_data_text, shown

SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}
SKIPPED_EXAMPLES = 5
AUDIO_SUFFIXES = (".wav", ".npy", ".pkl")
MANIFEST_COLUMNS = ("clip", "label", "split")

AudioReader = Callable[[Path], torch.Tensor]


@dataclass(frozen=True)
class Clip:
    name: str
    audio: Path
    frames: tuple[Path, ...]
    label: int


@dataclass
class Listing:
    """The clips of one split that have their files, and the names of those that do not."""

    source: Path
    clips: list[Clip]
    skipped: list[str]

    @property
    def listed(self) -> int:
        return len(self.clips) + len(self.skipped)


class ClipDataset(Dataset):
    """One clip per ``(index, seed)`` key: audio (1, F, T), frames (frames, 3, size, size).

    The seed (None in evaluation) drives the frame choice and augmentation, so a clip's
    sample does not depend on which process loads it.
    """

    def __init__(
        self,
        clips: list[Clip],
        read_audio: AudioReader,
        audio_shape: tuple[int, ...],
        audio_shape_from: str,
        visual: FrameTransform,
    ) -> None:
        self.clips = clips
        self.read_audio = read_audio
        self.audio_shape = audio_shape
        self.audio_shape_from = audio_shape_from
        self.visual = visual

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: SampleKey) -> Sample | LoadFailure:
        index, seed = key
        clip = self.clips[index]
        rng = None if seed is None else np.random.default_rng([seed, index])
        try:
            audio = self.read_audio(clip.audio)
            if tuple(audio.shape) != self.audio_shape:
                raise DataError(
                    f"{shown(clip.audio)}: spectrogram has shape {_shape(audio.shape)} but "
                    f"{self.audio_shape_from} has {_shape(self.audio_shape)}; all clips need one shape"
                )
            visual = self.visual(clip.frames, rng)
        except DataError as exc:
            return LoadFailure(str(exc))
        return {"audio": audio, "visual": visual}, clip.label


def _shape(shape: tuple[int, ...] | torch.Size) -> str:
    return " x ".join(str(n) for n in shape[1:])


def find_root(root: str) -> Path:
    path = resolve_root(root)
    if not path.is_dir():
        raise DataError(f"root: folder {shown(path)} not found")
    return path


def require_folders(root: Path, names: list[str], name: str) -> None:
    for folder in names:
        if not (root / folder).is_dir():
            raise DataError(f"{shown(root / folder)}: folder not found (the {name} layout needs it)")


def read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; a BOM is dropped.

    Messages about a list's lines give the line number and the rule broken, never the
    line itself: what a file holds is not for error messages (which read-only users see).
    """
    if not path.is_file():
        raise DataError(f"{shown(path)}: file not found (the {what})")
    text = read_data_text(path)
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_csv_rows(path: Path, what: str) -> list[tuple[int, list[str]]]:
    rows = []
    for number, line in read_lines(path, what):
        try:
            fields = next(csv.reader(io.StringIO(line)))
        except csv.Error as exc:
            raise DataError(f"{shown(path)}, line {number}: cannot parse as CSV ({exc})") from None
        rows.append((number, [f.strip() for f in fields]))
    return rows


def check_clip_name(name: str, path: Path, number: int) -> None:
    """Clip names become file names: refuse ones that would leave their folder."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise DataError(
            f"{shown(path)}, line {number}: the clip name is not usable (empty, '.', '..', or holding "
            "a slash, backslash or NUL)"
        )


def find_clips(
    entries: list[tuple[str, int]],
    source: Path,
    audio_of: Callable[[str], Path | None],
    frames_of: Callable[[str], Path],
) -> Listing:
    """Keep the clips whose audio file and non-empty frame folder exist."""
    listing = Listing(source, [], [])
    for name, label in entries:
        audio = audio_of(name)
        frames = list_frames(frames_of(name))
        if audio is None or not frames:
            listing.skipped.append(name)
        else:
            listing.clips.append(Clip(name, audio, frames, label))
    return listing


def existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def require_clips(name: str, root: Path, listings: dict[str, Listing]) -> None:
    """An empty split is an error naming the split, the root and the list it came from."""
    for split, listing in listings.items():
        if not listing.clips:
            raise DataError(
                f"{name}: the {SPLIT_WORDS[split]} split under {shown(root)} is empty "
                f"({listing.listed} clips listed in {shown(listing.source)}"
                + (", all missing their audio or frames)" if listing.listed else ")")
            )


def build_bundle(
    name: str,
    options: AVOptions,
    root: Path,
    class_names: list[str],
    listings: dict[str, Listing],
    read_audio: AudioReader,
    audio_shape: tuple[int, ...],
    audio_shape_from: str,
    info: dict[str, object],
) -> DatasetBundle:
    """Splits over ``LoaderSplit`` plus the skipped-clip report (``info["warnings"]``).

    Every listing must hold clips (``require_clips``).
    """
    visual = FrameTransform(options.frames, options.image_size)
    pin_memory = torch.cuda.is_available() if options.pin_memory is None else options.pin_memory
    splits = {
        split: LoaderSplit(
            ClipDataset(listing.clips, read_audio, audio_shape, audio_shape_from, visual),
            augment=split == "train",
            num_workers=options.num_workers,
            skip_bad=options.on_bad_file == "skip",
            pin_memory=pin_memory,
        )
        for split, listing in listings.items()
    }
    warnings = [
        f"{name}: skipped {len(listing.skipped)} of {listing.listed} {SPLIT_WORDS[split]} clips "
        f"whose audio or frames are missing (e.g. {', '.join(listing.skipped[:3])})"
        for split, listing in listings.items()
        if listing.skipped
    ]
    examples = [clip for listing in listings.values() for clip in listing.skipped]
    report: dict[str, object] = {
        "root": str(root),
        **{f"n_{split}": len(listing.clips) for split, listing in listings.items()},
        "skipped": {split: len(listing.skipped) for split, listing in listings.items()},
        "skipped_examples": examples[:SKIPPED_EXAMPLES],
        "warnings": warnings,
        "visual": {
            "frames": options.frames,
            "image_size": options.image_size,
            "train": "RandomResizedCrop(scale 0.08-1, ratio 3/4-4/3) + horizontal flip",
            "eval": "bilinear resize to image_size x image_size",
            "normalize": "ImageNet mean/std",
        },
        "num_workers": options.num_workers,
        "pin_memory": pin_memory,
        **info,
    }
    return DatasetBundle(
        name=name,
        modalities=list(MODALITIES),
        class_names=class_names,
        input_shapes={
            "audio": audio_shape,
            "visual": (options.frames, 3, options.image_size, options.image_size),
        },
        train=splits["train"],
        val=splits["val"],
        test=splits.get("test"),
        info=report,
    )


def wav_info(options: AudioOptions) -> str:
    return (
        f"wav -> mono {options.sample_rate} Hz, tiled/cut to {options.seconds} s, clipped to "
        f"[-1, 1] -> log(|STFT| + 1e-7), n_fft {options.n_fft}, hop {options.hop_length}"
    )


# ---------------------------------------------------------------- av-folder


def read_manifest(path: Path) -> list[tuple[str, str, str]]:
    """(clip, label, split) for every row of manifest.csv."""
    rows = read_csv_rows(path, "manifest of the av-folder layout")
    if not rows:
        raise DataError(f"{shown(path)}: empty (expected the header {','.join(MANIFEST_COLUMNS)} and rows)")
    header_line, header = rows[0]
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{shown(path)}, line {header_line}: the header must name the columns "
            f"{','.join(MANIFEST_COLUMNS)}; missing {', '.join(missing)}"
        )
    where = {c: header.index(c) for c in MANIFEST_COLUMNS}
    out = []
    for number, fields in rows[1:]:
        if len(fields) != len(header):
            raise DataError(
                f"{shown(path)}, line {number}: {len(fields)} fields, but the header has {len(header)}"
            )
        clip, label, split = (fields[where[c]] for c in MANIFEST_COLUMNS)
        check_clip_name(clip, path, number)
        if not label:
            raise DataError(f"{shown(path)}, line {number}: empty label")
        if split not in SPLIT_WORDS:
            raise DataError(f"{shown(path)}, line {number}: the split is not one of train, val, test")
        out.append((clip, label, split))
    return out


def _audio_file(folder: Path, clip: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        path = folder / f"{clip}{suffix}"
        if path.is_file():
            return path
    return None


def build_av_folder(options: AVFolderOptions, seed: int) -> DatasetBundle:
    root = find_root(options.root)
    require_folders(root, ["frames", "audio"], "av-folder")
    manifest = root / "manifest.csv"
    rows = read_manifest(manifest)
    class_names = sorted({label for _, label, _ in rows})
    index = {name: i for i, name in enumerate(class_names)}
    by_split = {
        split: [(clip, index[label]) for clip, label, s in rows if s == split]
        for split in SPLIT_WORDS
    }
    val_source = options.val_split
    if val_source == "auto":
        val_source = "val" if by_split["val"] else "test"
    for split in ("train", val_source):
        if not by_split[split]:
            raise DataError(f"{shown(manifest)}: no rows with split {split!r}")
    wanted = {"train": "train", "val": val_source}
    if val_source == "val" and by_split["test"]:
        wanted["test"] = "test"
    listings = {
        split: find_clips(
            by_split[source],
            manifest,
            lambda clip: _audio_file(root / "audio", clip),
            lambda clip: root / "frames" / clip,
        )
        for split, source in wanted.items()
    }
    require_clips("av-folder", root, listings)
    clips = [clip for listing in listings.values() for clip in listing.clips]
    kinds = {clip.audio.suffix == ".wav" for clip in clips}
    if len(kinds) > 1:
        raw = next(c.audio for c in clips if c.audio.suffix == ".wav")
        stored = next(c.audio for c in clips if c.audio.suffix != ".wav")
        raise DataError(
            f"{shown(root / 'audio')}: mixes raw audio and spectrograms (e.g. {raw.name} and "
            f"{stored.name}); use one kind for every clip"
        )
    read_audio: AudioReader
    audio_shape: tuple[int, ...]
    if kinds == {True}:
        wav = options.wav_spectrogram()
        read_audio, audio_shape = wav, wav.shape
        shape_from, audio_info = "the audio options", wav_info(options)
    else:
        first = listings["train"].clips[0].audio
        read_audio = read_spectrogram
        audio_shape = tuple(read_spectrogram(first).shape)
        shape_from, audio_info = f"the first spectrogram ({shown(first)})", "stored spectrograms, as they are"
    val_name = val_source if options.val_split != "auto" else f"{val_source} (auto)"
    return build_bundle(
        "av-folder",
        options,
        root,
        class_names,
        listings,
        read_audio,
        audio_shape,
        shape_from,
        {"val_split": val_name, "audio": audio_info},
    )
