"""Bearer tokens for the API and a session cookie for the browser.

ARMSCOPE_API_TOKEN may do everything, ARMSCOPE_READ_TOKEN only read. Unset
means open (a laptop). Tokens are compared in constant time, never logged, and
wrong ones are rate-limited per client address. The cookie names a server-side
session and is signed with a key derived from the installation secret and both
tokens (backend.sessions), so it reveals nothing about a token, and changing a
token logs every browser out.
"""

from __future__ import annotations

import hmac
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from backend.rate_limit import FailureLimiter, TooManyFailures
from backend.secret_key import installation_secret
from backend.sessions import BrowserSessions, Role, session_key
from backend.settings import Settings

COOKIE = "armscope_session"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class TokenAuth:
    def __init__(
        self,
        api_token: str | None,
        read_token: str | None = None,
        *,
        sessions: BrowserSessions | None = None,
        limiter: FailureLimiter | None = None,
    ) -> None:
        self.api_token = api_token or None
        self.read_token = read_token or None
        if self.api_token is not None and (sessions is None or limiter is None):
            raise ValueError("token authentication needs browser sessions and a failure limiter")
        self.sessions, self.limiter = sessions, limiter

    @classmethod
    def for_settings(cls, settings: Settings, engine: Engine) -> TokenAuth:
        """Reads (or makes) the installation secret only when a token turns authentication on."""
        if not settings.api_token:
            return cls(None)
        key = session_key(installation_secret(settings), settings.api_token, settings.read_token)
        return cls(
            settings.api_token,
            settings.read_token,
            sessions=BrowserSessions(key, engine),
            limiter=FailureLimiter(engine, settings.auth_failures_per_minute),
        )

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

    def limited_role_of_token(self, presented: str | None, client: str) -> Role | None:
        """role_of_token, counted against ``client``'s failures; raises TooManyFailures past the limit."""
        return self.limiter.attempt(client, lambda: self.role_of_token(presented))  # type: ignore[union-attr]

    def session_cookie(self, role: Role, now: float | None = None) -> str:
        return self.sessions.open(role, now)  # type: ignore[union-attr]

    def role_of_cookie(self, cookie: str | None, now: float | None = None) -> Role | None:
        if not self.enabled:
            return None
        return self.sessions.role_of(cookie, now)  # type: ignore[union-attr]

    def end_session(self, cookie: str | None) -> None:
        if self.enabled:
            self.sessions.close(cookie)  # type: ignore[union-attr]

    def authenticate(self, request: Request) -> Role | None:
        """The role of a bearer token or session cookie; raises TooManyFailures for a client past the limit."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            return self.limited_role_of_token(token.strip(), client_address(request))
        return self.role_of_cookie(request.cookies.get(COOKIE))

    def role_of_request(self, request: Request) -> Role | None:
        """As authenticate, for routes open to all that show more to those who may read: a client
        past the limit, or a database that does not answer, gets the least."""
        try:
            return self.authenticate(request)
        except (TooManyFailures, SQLAlchemyError):
            return None


def require_access(request: Request) -> None:
    """Dependency of every /api/v1 route but /health."""
    auth: TokenAuth = request.app.state.auth
    if not auth.enabled:
        return
    try:
        role = auth.authenticate(request)
    except TooManyFailures as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    if role is None:
        raise HTTPException(
            401, "missing or invalid token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if role == "read" and request.method not in READ_METHODS:
        raise HTTPException(403, "this token may only read; changing runs needs ARMSCOPE_API_TOKEN")


OPEN_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/login", "/logout"})
API_PATHS = "/api/"


def is_open(path: str) -> bool:
    """Pages anyone may fetch, by exact path; /api/ paths check their own access (and stay
    inside the API: no `..` segment may step out of it)."""
    return path in OPEN_PATHS or (path.startswith(API_PATHS) and ".." not in path.split("/"))


class BrowserGate:
    """ASGI middleware: with a token set, pages outside the API need a session cookie.

    A page request without one is sent to /login; anything else gets 401. The
    API checks its own routes (bearer token or the same cookie).
    """

    def __init__(self, app: object, auth: TokenAuth) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http" or not self.auth.enabled or is_open(scope["path"]):
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        request = Request(scope)
        cookie = request.cookies.get(COOKIE)
        if cookie and await run_in_threadpool(self.auth.role_of_cookie, cookie) is not None:
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        if request.method == "GET":
            target = quote(scope["path"] + (f"?{scope['query_string'].decode()}" if scope["query_string"] else ""))
            response = RedirectResponse(f"/login?next={target}", status_code=303)
        else:
            response = JSONResponse({"detail": "log in at /login first"}, status_code=401)
        await response(scope, receive, send)
