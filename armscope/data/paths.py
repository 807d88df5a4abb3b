"""Where data may be read from: below ARMSCOPE_DATA_ROOT when it is set.

The data root is shared storage that others can write to, so it confines more than the
folders a config names: a symbolic link inside a data set (a manifest, a spectrogram, a
frame folder) must not lead a run to files outside it. Config paths are checked when a
config is validated (``check_data_path``); every file or folder a loader reads goes
through ``open_data_file`` / ``confine`` here and nowhere else, so the rule lives in one
place. Paths are resolved with symbolic links followed; messages name a path relative
to the data root and never the target a link resolved to, so an error cannot reveal
what lies outside the root. Without ARMSCOPE_DATA_ROOT any path is read, as given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from armscope.data.errors import DataError

MAX_PATH_LENGTH = 4096
DATA_ROOT_VARIABLE = "ARMSCOPE_DATA_ROOT"
OUTSIDE = f"leads outside {DATA_ROOT_VARIABLE} (symbolic links followed)"
# The data armscope ships (uci-mfeat's default file) is the product's own, readable under any root.
SHIPPED_DATA = Path(__file__).resolve().parent / "files"


class OutsideDataRoot(DataError):
    """A path that resolves outside the data root, typically through a symbolic link."""


def data_root() -> Path | None:
    root = os.environ.get(DATA_ROOT_VARIABLE)
    return Path(root).expanduser().resolve() if root else None


def shown(path: Path) -> str:
    """How messages name ``path``: relative to the data root when one is set."""
    root = data_root()
    if root is None:
        return str(path)
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _real(path: Path, name: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a loop of symbolic links (Python < 3.13)
        raise DataError(f"{name}: cannot be resolved (a loop of symbolic links?)") from None


def _allowed(real: Path, root: Path) -> bool:
    return real.is_relative_to(root) or real.is_relative_to(SHIPPED_DATA)


def resolve_data_path(value: str) -> Path:
    """The real path a config value names; relative values are taken below the data root (else the cwd)."""
    if len(value) > MAX_PATH_LENGTH:
        raise ValueError(f"path is longer than {MAX_PATH_LENGTH} characters")
    if "\x00" in value:
        raise ValueError("path contains a NUL character")
    root = data_root()
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (root or Path.cwd()) / path
    resolved = _real(path, "path")
    if root is not None and not resolved.is_relative_to(root):
        raise OutsideDataRoot(f"the path {OUTSIDE}; give a path below the data root")
    return resolved


def check_data_path(value: str | None) -> str | None:
    """A pydantic field validator: reject paths outside the data root, keep the value as given."""
    if value is not None:
        resolve_data_path(value)
    return value


def confine(path: Path) -> Path:
    """The real path of a file or folder a loader is about to read; refused outside the data root."""
    root = data_root()
    if root is None:
        return path
    real = _real(path, shown(path))
    if not _allowed(real, root):
        raise OutsideDataRoot(f"{shown(path)}: refused, it {OUTSIDE}")
    return real


def _opened_path(handle: BinaryIO) -> Path | None:
    """What an open file really is, where the system says (Linux's /proc/self/fd)."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{handle.fileno()}"))
    except OSError:
        return None


def open_data_file(path: Path) -> BinaryIO:
    """``path`` opened for binary reading, once it is known to lie below the data root.

    The opened file is checked again where the system can say what was opened, so a link
    swapped in between the check and the open is refused too. OS errors name the file as
    ``shown`` does, never the resolved target.
    """
    root = data_root()
    real = confine(path)
    try:
        handle = open(real, "rb")
    except FileNotFoundError:
        raise DataError(f"{shown(path)}: file not found") from None
    except OSError as exc:
        raise DataError(f"{shown(path)}: cannot open ({exc.strerror or type(exc).__name__})") from None
    if root is not None:
        opened = _opened_path(handle)
        if opened is not None and not _allowed(opened, root):
            handle.close()
            raise OutsideDataRoot(f"{shown(path)}: refused, it {OUTSIDE}")
    return handle


def read_data_text(path: Path) -> str:
    """A UTF-8 text file below the data root (a leading BOM dropped); errors quote none of it."""
    with open_data_file(path) as handle:
        try:
            data = handle.read()
        except OSError as exc:
            raise DataError(f"{shown(path)}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{shown(path)}: not UTF-8 text (byte {exc.start} is not valid UTF-8)") from None
