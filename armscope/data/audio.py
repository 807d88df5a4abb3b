"""The audio side of the audio-visual data sets: wav files and stored spectrograms.

Raw audio follows the OGM-GE / ARM CREMA-D recipe so numbers stay comparable with the
papers: mono at 22,050 Hz, tiled to 3 s, clipped to [-1, 1], STFT (n_fft 512, hop 353,
periodic Hann window, ``center=True`` with reflect padding as librosa < 0.10 did), then
log(|S| + 1e-7), giving one 257 x 188 "image" per clip. Stored spectrograms (.npy / .pkl)
are taken as they are. Every failure is a ``DataError`` naming the file; a reader's own
message can quote the file's first bytes (scipy prints an unknown header), so only the kind
of failure is reported.
"""

from __future__ import annotations

import math
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly

from armscope.builtin.datasets._av import spectrogram_shape
from armscope.data.errors import DataError
from armscope.data.paths import open_data_file, shown

LOG_FLOOR = 1e-7
SPECTROGRAM_SUFFIXES = (".npy", ".pkl")

# What a pickled numpy array may reference (numpy 1.x and 2.x module names); anything
# else in a .pkl is refused, so a spectrogram file cannot run code when loaded.
_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how pickle protocols 0-2 store bytes
    }
)


@dataclass(frozen=True)
class WavSpectrogram:
    """A picklable wav -> log-magnitude spectrogram reader, so DataLoader workers can hold it."""

    sample_rate: int
    n_samples: int
    n_fft: int
    hop_length: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return spectrogram_shape(self.n_samples, self.n_fft, self.hop_length)

    def __call__(self, path: Path) -> torch.Tensor:
        samples, rate = read_wav(path)
        samples = resample(samples, rate, self.sample_rate)
        samples = np.clip(tile(samples, self.n_samples), -1.0, 1.0)
        return log_spectrogram(torch.from_numpy(samples), self.n_fft, self.hop_length)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] (full scale) and the file's sample rate."""
    with open_data_file(path) as handle:
        try:
            with warnings.catch_warnings():
                # Unknown chunks (LIST, cue, ...) are skipped by scipy; not worth a warning per clip.
                warnings.simplefilter("ignore", wavfile.WavFileWarning)
                rate, data = wavfile.read(handle)
        except MemoryError:
            raise
        except Exception as exc:  # scipy raises ValueError, EOFError, struct.error, OSError ...
            raise DataError(f"{shown(path)}: cannot read as a WAV file ({type(exc).__name__})") from None
    samples = _to_float(data, path)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.size == 0:
        raise DataError(f"{shown(path)}: the WAV file holds no samples")
    if not np.isfinite(samples).all():
        raise DataError(f"{shown(path)}: the WAV file holds NaN or infinite samples")
    return samples.astype(np.float32, copy=False), int(rate)


def _to_float(data: np.ndarray, path: Path) -> np.ndarray:
    """Integer PCM scaled to [-1, 1); float data kept as it is."""
    if data.dtype.kind == "f":
        return data
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype.kind == "i":
        return data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    raise DataError(f"{shown(path)}: unsupported WAV sample type {data.dtype}")


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling by the reduced ratio target / rate."""
    if rate == target:
        return samples
    g = math.gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype(np.float32, copy=False)


def tile(samples: np.ndarray, length: int) -> np.ndarray:
    """Repeat a short clip until it reaches ``length`` samples, then cut (long clips are just cut)."""
    repeats = math.ceil(length / samples.shape[0])
    return np.tile(samples, repeats)[:length]


def log_spectrogram(samples: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """log(|STFT| + 1e-7) as float32 (1, n_fft // 2 + 1, 1 + len // hop)."""
    spec = torch.stft(
        samples.float(),
        n_fft=n_fft,
        hop_length=hop_length,
        window=torch.hann_window(n_fft),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    return torch.log(spec.abs() + LOG_FLOOR).unsqueeze(0)


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle naming something besides numpy array parts; its message quotes nothing of the file."""


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _PICKLE_GLOBALS:
            raise _RefusedGlobal("holds an object other than a numpy array (refused: only those are read)")
        return super().find_class(module, name)


def read_spectrogram(path: Path) -> torch.Tensor:
    """A stored 2-D spectrogram (.npy, or a pickled numpy array in .pkl) as float32 (1, F, T)."""
    with open_data_file(path) as handle:
        try:
            if path.suffix == ".pkl":
                values = _ArrayUnpickler(handle).load()
            else:
                values = np.lib.format.read_array(handle, allow_pickle=False)
        except _RefusedGlobal as exc:
            raise DataError(f"{shown(path)}: {exc}") from None
        except MemoryError:
            raise
        except Exception as exc:  # damaged header, truncated data, pickle of something else ...
            kind = "a pickled numpy array" if path.suffix == ".pkl" else "a .npy array"
            raise DataError(f"{shown(path)}: cannot read as {kind} ({type(exc).__name__})") from None
    return check_spectrogram(values, path)


def check_spectrogram(values: object, path: Path) -> torch.Tensor:
    if not isinstance(values, np.ndarray):
        raise DataError(f"{shown(path)}: holds a {type(values).__name__}, not a numpy array")
    if values.dtype == np.bool_ or values.dtype.kind not in "iuf":
        raise DataError(f"{shown(path)}: spectrogram must hold real numbers, got dtype {values.dtype}")
    if values.ndim != 2:
        raise DataError(
            f"{shown(path)}: spectrogram must be 2-D (frequency x time), got shape {values.shape}"
        )
    if values.size == 0:
        raise DataError(f"{shown(path)}: spectrogram is empty (shape {values.shape})")
    with np.errstate(over="ignore", invalid="ignore"):
        out = values.astype(np.float32)
    bad = int((~np.isfinite(out)).sum())
    if bad:
        raise DataError(f"{shown(path)}: spectrogram holds {bad} non-finite values (NaN or inf)")
    return torch.from_numpy(np.ascontiguousarray(out)).unsqueeze(0)
