"""The API's side of access (service.access): reading a token or cookie from a request, the 401/403/429
every /api/v1 route but /health answers, and the login gate in front of the pages."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from backend.docs import DOCS_PATHS
from service.access import COOKIE, Access
from service.db.rate_limit import TooManyFailures
from service.db.sessions import Role

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token else None


def authenticate(access: Access, request: Request) -> Role | None:
    """The role of the request's bearer token or session cookie; raises TooManyFailures past the limit."""
    return access.role_of(_bearer(request), request.cookies.get(COOKIE), client_address(request))


def role_of_request(access: Access, request: Request) -> Role | None:
    """As authenticate, for routes open to all: the least role instead of an error."""
    return access.best_role_of(_bearer(request), request.cookies.get(COOKIE), client_address(request))


def require_access(request: Request) -> None:
    """Dependency of every /api/v1 route but /health."""
    access: Access = request.app.state.auth
    if not access.enabled:
        return
    try:
        role = authenticate(access, request)
    except TooManyFailures as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    if role is None:
        raise HTTPException(
            401, "missing or invalid token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if role == "read" and request.method not in READ_METHODS:
        raise HTTPException(403, "this token may only read; changing runs needs ARMSCOPE_API_TOKEN")


OPEN_PATHS = frozenset({*DOCS_PATHS, "/openapi.json", "/login", "/logout"})
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

    def __init__(self, app: object, auth: Access) -> None:
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
