"""Tiny audio-visual data sets on disk, in exactly the layouts of DATA.md.

Every maker writes wav tones or noise (or stored spectrograms), a few small random-colour
jpg frames per clip and the split lists, and returns the clip names per split so a test
can delete or damage particular files.
"""

from __future__ import annotations

import csv
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import wavfile

CREMAD_CLASSES = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]


@dataclass
class Fixture:
    root: Path
    clips: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, list[str | int]] = field(default_factory=dict)


def write_wav(
    path: Path,
    *,
    seconds: float = 1.0,
    rate: int = 16000,
    channels: int = 1,
    seed: int = 0,
    dtype: str = "int16",
) -> None:
    """A tone plus a little noise; int16 PCM, or float32 with dtype='float32'."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    tone = 0.5 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.05 * rng.standard_normal(t.size)
    signal = np.repeat(tone[:, None], channels, axis=1) if channels > 1 else tone
    if dtype == "int16":
        data = (signal * 32767).astype(np.int16)
    else:
        data = signal.astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, data)


def write_frames(
    folder: Path, count: int = 3, size: tuple[int, int] = (40, 30), seed: int = 0, prefix: str = "frame_"
) -> None:
    """``count`` jpg frames of random blocks of colour (width x height = ``size``)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    for i in range(count):
        blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(blocks).resize((width, height), Image.Resampling.NEAREST)
        image.save(folder / f"{prefix}{i:05d}.jpg", quality=90)


def write_spectrogram(path: Path, shape: tuple[int, ...] = (24, 30), seed: int = 0) -> None:
    """A float32 array as .npy, or pickled when the name ends in .pkl."""
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pkl":
        with open(path, "wb") as handle:
            pickle.dump(values, handle)
    else:
        np.save(path, values)


def corrupt(path: Path) -> None:
    """Keep the name, replace the content with bytes no reader accepts."""
    path.write_bytes(b"\x00not really a " + path.suffix.encode() + b" file\xff" * 3)


def make_cremad(
    root: Path,
    n_train: int = 12,
    n_test: int = 6,
    *,
    frames: int = 3,
    frame_size: tuple[int, int] = (40, 30),
    seconds: float = 1.0,
    rate: int = 16000,
    without_audio: tuple[str, ...] = (),
    without_frames: tuple[str, ...] = (),
) -> Fixture:
    """CREMA-D: AudioWAV/<clip>.wav, Image-01-FPS/<clip>/*.jpg, train.csv and test.csv."""
    fixture = Fixture(root)
    (root / "AudioWAV").mkdir(parents=True, exist_ok=True)
    (root / "Image-01-FPS").mkdir(parents=True, exist_ok=True)
    for split, count, offset in (("train", n_train, 1001), ("test", n_test, 1091)):
        labels = [CREMAD_CLASSES[i % len(CREMAD_CLASSES)] for i in range(count)]
        clips = [f"{offset + i}_DFA_{label}_XX" for i, label in enumerate(labels)]
        with open(root / f"{split}.csv", "w", newline="") as handle:
            csv.writer(handle).writerows(zip(clips, labels))
        for i, clip in enumerate(clips):
            seed = offset + i
            if clip not in without_audio:
                write_wav(root / "AudioWAV" / f"{clip}.wav", seconds=seconds, rate=rate, seed=seed)
            if clip not in without_frames:
                write_frames(root / "Image-01-FPS" / clip, frames, frame_size, seed=seed)
        fixture.clips[split], fixture.labels[split] = clips, list(labels)
    return fixture


def make_kinetics_sounds(
    root: Path,
    n_train: int = 10,
    n_val: int = 5,
    *,
    frames: int = 3,
    spec_shape: tuple[int, int] = (24, 30),
    without_audio: tuple[str, ...] = (),
    without_frames: tuple[str, ...] = (),
) -> Fixture:
    """Kinetics-Sounds: image/<split>/<clip>/frame_*.jpg, spec/<split>/<clip>.npy, <split>_list.txt."""
    fixture = Fixture(root)
    for split, count in (("train", n_train), ("val", n_val)):
        labels = [(7 * i) % 31 for i in range(count)]
        clips = [f"ks_{split}_{i:04d}" for i in range(count)]
        (root / "image" / split).mkdir(parents=True, exist_ok=True)
        (root / "spec" / split).mkdir(parents=True, exist_ok=True)
        lines = [f"{clip} {label}\n" for clip, label in zip(clips, labels)]
        (root / f"{split}_list.txt").write_text("".join(lines))
        for i, clip in enumerate(clips):
            if clip not in without_audio:
                write_spectrogram(root / "spec" / split / f"{clip}.npy", spec_shape, seed=i)
            if clip not in without_frames:
                write_frames(root / "image" / split / clip, frames, seed=i)
        fixture.clips[split], fixture.labels[split] = clips, list(labels)
    return fixture


def make_av_folder(
    root: Path,
    counts: dict[str, int] | None = None,
    *,
    audio: str = "wav",
    labels: tuple[str, ...] = ("dog", "cat", "car"),
    frames: int = 2,
    spec_shape: tuple[int, int] = (24, 30),
    rate: int = 44100,
    seconds: float = 1.5,
    without_audio: tuple[str, ...] = (),
    without_frames: tuple[str, ...] = (),
) -> Fixture:
    """av-folder: manifest.csv, frames/<clip>/*.jpg, audio/<clip>.<audio> (wav, npy or pkl)."""
    counts = counts if counts is not None else {"train": 9, "val": 3, "test": 3}
    fixture = Fixture(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for split, count in counts.items():
        names = [labels[i % len(labels)] for i in range(count)]
        clips = [f"{split}-{i:03d}" for i in range(count)]
        for i, (clip, label) in enumerate(zip(clips, names)):
            rows.append((clip, label, split))
            path = root / "audio" / f"{clip}.{audio}"
            if clip not in without_audio:
                if audio == "wav":
                    write_wav(path, seconds=seconds, rate=rate, channels=2, seed=i)
                else:
                    write_spectrogram(path, spec_shape, seed=i)
            if clip not in without_frames:
                write_frames(root / "frames" / clip, frames, seed=i, prefix="")
        fixture.clips[split], fixture.labels[split] = clips, list(names)
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip", "label", "split"])
        writer.writerows(rows)
    return fixture


def link(path: Path, target: Path) -> None:
    """Replace ``path`` (a file or a folder) with a symbolic link to ``target``."""
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)
