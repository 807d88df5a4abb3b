"""The visual side of the audio-visual data sets: picking frames and turning them into tensors.

Written on PIL and numpy so the project needs no torchvision. The transforms are those of the
OGM-GE / ARM reference code, re-implemented:

- training: RandomResizedCrop(size) (area 8-100 %, aspect 3/4-4/3, ten tries, then a centre
  crop), bilinear, then a horizontal flip with probability 1/2; every frame of a clip draws
  its own crop and flip, as the reference's per-image transform does;
- evaluation: a straight bilinear resize to size x size (aspect ratio not kept), as the
  reference's ``Resize(size=(224, 224))``;
- both: scaled to [0, 1] and normalised with the ImageNet mean and std.

All randomness comes from the ``numpy.random.Generator`` passed in, which the caller seeds
per sample, so results do not depend on DataLoader worker count or order.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from armscope.data.base import DataError
from armscope.data.paths import confine, open_data_file, shown

FRAME_SUFFIXES = (".jpg", ".jpeg")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
CROP_TRIES = 10


def list_frames(folder: Path) -> tuple[Path, ...]:
    """The clip's jpg frames in name order; empty when the folder is missing.

    Called once per clip when a data set is built (tens of thousands of folders), so it
    uses ``scandir``, whose entries know their type without a ``stat`` per file. The folder
    is confined to the data root (each frame is again when it is opened).
    """
    real = confine(folder)
    try:
        with os.scandir(real) as entries:
            names = [
                e.name
                for e in entries
                if os.path.splitext(e.name)[1].lower() in FRAME_SUFFIXES and e.is_file()
            ]
    except (FileNotFoundError, NotADirectoryError):
        return ()
    except OSError as exc:
        raise DataError(f"{shown(folder)}: cannot list the frames ({exc.strerror or type(exc).__name__})") from None
    return tuple(folder / name for name in sorted(names))


def pick_frames(available: int, count: int, rng: np.random.Generator | None) -> list[int]:
    """Indices of the frames to use, in time order.

    Evaluation (``rng`` None) takes the centre of each of ``count`` equal segments, so one
    frame means the middle one. Training draws without replacement, or with replacement
    when the clip has fewer frames than asked for.
    """
    if rng is None:
        return [min(available - 1, int((i + 0.5) * available / count)) for i in range(count)]
    chosen = rng.choice(available, size=count, replace=count > available)
    return sorted(int(i) for i in chosen)


def random_crop_box(
    width: int, height: int, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """A RandomResizedCrop box (left, top, right, bottom) for a width x height image."""
    area = width * height
    log_lo, log_hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(CROP_TRIES):
        target = area * rng.uniform(*CROP_SCALE)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    ratio = width / height
    if ratio < CROP_RATIO[0]:
        w, h = width, int(round(width / CROP_RATIO[0]))
    elif ratio > CROP_RATIO[1]:
        w, h = int(round(height * CROP_RATIO[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def load_image(path: Path) -> Image.Image:
    """The image decoded as RGB, or a DataError naming the file.

    Decoders' messages can quote the file's header, so only the kind of failure is reported.
    """
    with open_data_file(path) as handle:
        try:
            with Image.open(handle) as image:
                return image.convert("RGB")
        except UnidentifiedImageError:
            raise DataError(f"{shown(path)}: cannot read as an image (not a JPEG or other known format)") from None
        except MemoryError:
            raise
        except Exception as exc:  # truncated or damaged data surfaces as OSError/SyntaxError/...
            raise DataError(f"{shown(path)}: cannot read as an image ({type(exc).__name__})") from None


@dataclass(frozen=True)
class FrameTransform:
    """Reads ``frames`` frames of a clip as a float32 (frames, 3, size, size) tensor."""

    frames: int
    size: int

    def __call__(self, paths: Sequence[Path], rng: np.random.Generator | None) -> torch.Tensor:
        pixels = np.empty((self.frames, self.size, self.size, 3), dtype=np.float32)
        for slot, index in enumerate(pick_frames(len(paths), self.frames, rng)):
            pixels[slot] = self._resized(load_image(paths[index]), rng)
        pixels = (pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()

    def _resized(self, image: Image.Image, rng: np.random.Generator | None) -> np.ndarray:
        target = (self.size, self.size)
        if rng is None:
            return np.asarray(image.resize(target, Image.Resampling.BILINEAR))
        box = random_crop_box(image.width, image.height, rng)
        out = image.resize(target, Image.Resampling.BILINEAR, box=box)
        if rng.random() < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.asarray(out)
