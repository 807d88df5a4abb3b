"""Browser sessions: a signed cookie that names a row in the database.

The signature proves the server made the cookie; the row makes logging out real.
Deleting the row refuses the cookie in every server process sharing the database,
which a signature alone (valid until it expires) could not.

The signing key is derived from the installation secret and both tokens: without
the secret a cookie says nothing about a token, and changing either token changes
the key, which logs every browser out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime, timezone
from typing import Literal

from sqlalchemy import Engine, delete, insert, select

from service.db.models import BrowserSession

Role = Literal["write", "read"]
ROLES: tuple[Role, ...] = ("write", "read")
SESSION_SECONDS = 14 * 24 * 3600


def session_key(secret: bytes, api_token: str, read_token: str | None) -> bytes:
    """The key cookies are signed with: a function of the secret and of both tokens."""
    tokens = json.dumps(["armscope-session-v2", api_token, read_token]).encode()
    return hmac.new(secret, tokens, hashlib.sha256).digest()


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


class BrowserSessions:
    def __init__(self, key: bytes, engine: Engine) -> None:
        self.key, self.engine = key, engine

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self.key, payload, hashlib.sha256).digest()

    def open(self, role: Role, now: float | None = None) -> str:
        """A new session's cookie value; expired sessions are dropped on the way."""
        now = time.time() if now is None else now
        session_id, expires = secrets.token_urlsafe(32), int(now + SESSION_SECONDS)
        with self.engine.begin() as connection:
            connection.execute(delete(BrowserSession).where(BrowserSession.expires_at <= _when(now)))
            connection.execute(insert(BrowserSession).values(
                id=session_id, role=role, created_at=_when(now), expires_at=_when(expires),
            ))
        payload = f"{session_id}.{role}.{expires}".encode()
        return _encode(payload) + "." + _encode(self._sign(payload))

    def _verified(self, cookie: str | None, now: float) -> tuple[str, Role] | None:
        """The session id and role of a cookie this installation signed and that has not expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        encoded_payload, encoded_signature = cookie.split(".")
        try:
            payload = base64.urlsafe_b64decode(encoded_payload.encode())
            signature = base64.urlsafe_b64decode(encoded_signature.encode())
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        session_id, role, expires = payload.decode().split(".")
        if role not in ROLES or int(expires) <= now:
            return None
        return session_id, role  # type: ignore[return-value]

    def role_of(self, cookie: str | None, now: float | None = None) -> Role | None:
        """The role of a live session: signed here, not expired, not logged out."""
        now = time.time() if now is None else now
        verified = self._verified(cookie, now)
        if verified is None:
            return None
        session_id, role = verified
        with self.engine.connect() as connection:
            stored = connection.execute(
                select(BrowserSession.role).where(
                    BrowserSession.id == session_id, BrowserSession.expires_at > _when(now)
                )
            ).scalar_one_or_none()
        return role if stored == role else None

    def close(self, cookie: str | None) -> None:
        """Log a session out everywhere; a cookie that is not ours changes nothing."""
        verified = self._verified(cookie, time.time())
        if verified is not None:
            with self.engine.begin() as connection:
                connection.execute(delete(BrowserSession).where(BrowserSession.id == verified[0]))
