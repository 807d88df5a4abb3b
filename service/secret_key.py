"""The installation's secret: the key browser sessions are signed with.

A random 256-bit key made once per ARMSCOPE_HOME (or given as ARMSCOPE_SECRET_KEY),
so a session cookie says nothing about the tokens: whoever holds a cookie cannot
test guesses of a token offline. Every server process, and every API server
sharing the home, reads the same file, so each accepts the others' cookies.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path

from service.settings import Settings

FILE_NAME = "secret_key"
KEY_BYTES = 32


class SecretKeyError(RuntimeError):
    """The secret file exists but cannot be trusted or read."""


def installation_secret(settings: Settings) -> bytes:
    """ARMSCOPE_SECRET_KEY if set, else the home's secret file, made on first use."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.home / FILE_NAME
    if not path.exists():
        _create(path)
    return _read(path)


def _create(path: Path) -> None:
    """Write the key to a private temporary file, then link it into place.

    The link either creates the file with its full content or fails because another
    process got there first: processes starting together all end up reading one key,
    and none can read a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{FILE_NAME}.")  # mode 0600
    try:
        with os.fdopen(handle, "w") as file:
            file.write(secrets.token_hex(KEY_BYTES) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


def _read(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretKeyError(
            f"{path} may be read by other users (mode {mode:04o}): anyone who reads it can forge a "
            f"session; run chmod 600 {path}"
        )
    try:
        text = path.read_text().strip()
    except PermissionError:
        raise SecretKeyError(
            f"{path} belongs to another user: run every server as its owner, or give all the same "
            "ARMSCOPE_SECRET_KEY"
        ) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise SecretKeyError(
            f"{path} is not {2 * KEY_BYTES} hexadecimal characters: delete it to make a new key "
            "(which logs every browser out) or set ARMSCOPE_SECRET_KEY"
        )
    return key
