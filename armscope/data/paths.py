"""Where data may be read from: below ARMSCOPE_DATA_ROOT when it is set.

Paths are resolved with symlinks followed, so a link inside the data root
cannot point a run at files outside it. Checked when a config is validated
and again when the data is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_PATH_LENGTH = 4096
DATA_ROOT_VARIABLE = "ARMSCOPE_DATA_ROOT"


def data_root() -> Path | None:
    root = os.environ.get(DATA_ROOT_VARIABLE)
    return Path(root).expanduser().resolve() if root else None


def resolve_data_path(value: str) -> Path:
    """The real path ``value`` names; relative paths are taken below the data root (else the cwd)."""
    if len(value) > MAX_PATH_LENGTH:
        raise ValueError(f"path is longer than {MAX_PATH_LENGTH} characters")
    if "\x00" in value:
        raise ValueError("path contains a NUL character")
    root = data_root()
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (root or Path.cwd()) / path
    resolved = path.resolve()
    if root is not None and not resolved.is_relative_to(root):
        raise ValueError(f"{value!r} resolves to {resolved}, which is outside ARMSCOPE_DATA_ROOT ({root})")
    return resolved


def check_data_path(value: str | None) -> str | None:
    """A pydantic field validator: reject paths outside the data root, keep the value as given."""
    if value is not None:
        resolve_data_path(value)
    return value
