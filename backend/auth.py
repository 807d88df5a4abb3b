"""Bearer tokens for the API and a signed session cookie for the browser.

ARMSCOPE_API_TOKEN may do everything, ARMSCOPE_READ_TOKEN only read. Unset
means open (a laptop). Tokens are compared in constant time and never logged;
the cookie carries only a role and an expiry, signed with a key derived from
the API token, so changing the token logs every browser out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Literal
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse

Role = Literal["write", "read"]
COOKIE = "armscope_session"
SESSION_SECONDS = 14 * 24 * 3600
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TokenAuth:
    def __init__(self, api_token: str | None, read_token: str | None = None) -> None:
        self.api_token = api_token or None
        self.read_token = read_token or None
        secret = (self.api_token or "").encode()
        self.key = hashlib.sha256(b"armscope-session:" + secret).digest()

    @property
    def enabled(self) -> bool:
        return self.api_token is not None

    def role_of_token(self, presented: str | None) -> Role | None:
        if not self.enabled or presented is None:
            return None
        given = presented.encode()
        is_write = hmac.compare_digest(given, self.api_token.encode())  # type: ignore[union-attr]
        is_read = self.read_token is not None and hmac.compare_digest(given, self.read_token.encode())
        return "write" if is_write else "read" if is_read else None

    def session_cookie(self, role: Role, now: float | None = None) -> str:
        payload = f"{role}.{int((now or time.time()) + SESSION_SECONDS)}".encode()
        signature = hmac.new(self.key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(payload).decode() + "." + base64.urlsafe_b64encode(signature).decode()

    def role_of_cookie(self, cookie: str | None, now: float | None = None) -> Role | None:
        if not self.enabled or not cookie or cookie.count(".") != 1:
            return None
        encoded_payload, encoded_signature = cookie.split(".")
        try:
            payload = base64.urlsafe_b64decode(encoded_payload.encode())
            signature = base64.urlsafe_b64decode(encoded_signature.encode())
        except (ValueError, TypeError):
            return None
        expected = hmac.new(self.key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            return None
        role, _, expires = payload.decode().partition(".")
        if role not in ("write", "read") or not expires.isdigit() or int(expires) < (now or time.time()):
            return None
        return role  # type: ignore[return-value]

    def role_of_request(self, request: Request) -> Role | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            return self.role_of_token(token.strip())
        return self.role_of_cookie(request.cookies.get(COOKIE))


def require_access(request: Request) -> None:
    """Dependency of every /api/v1 route but /health."""
    auth: TokenAuth = request.app.state.auth
    if not auth.enabled:
        return
    role = auth.role_of_request(request)
    if role is None:
        raise HTTPException(
            401, "missing or invalid token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if role == "read" and request.method not in READ_METHODS:
        raise HTTPException(403, "this token may only read; changing runs needs ARMSCOPE_API_TOKEN")


OPEN_PREFIXES = ("/api/", "/docs", "/openapi.json", "/login", "/logout")


class BrowserGate:
    """ASGI middleware: with a token set, pages outside the API need a session cookie.

    A page request without one is sent to /login; anything else gets 401. The
    API checks its own routes (bearer token or the same cookie).
    """

    def __init__(self, app: object, auth: TokenAuth) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http" or not self.auth.enabled or scope["path"].startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        request = Request(scope)
        if self.auth.role_of_cookie(request.cookies.get(COOKIE)) is not None:
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        if request.method == "GET":
            target = quote(scope["path"] + (f"?{scope['query_string'].decode()}" if scope["query_string"] else ""))
            response = RedirectResponse(f"/login?next={target}", status_code=303)
        else:
            response = JSONResponse({"detail": "log in at /login first"}, status_code=401)
        await response(scope, receive, send)
