"""No cross-site request forgery: a state-changing request must come from this server's own pages.

A browser attaches the session cookie to requests any page sends, including a
page on another port of the same host. Browsers also say where a request comes
from (Origin, or at least Referer) and pages cannot forge those headers, so a
cookie-carrying POST, PUT, PATCH or DELETE (API routes and Dash callbacks alike)
must name this server; one naming another site is refused even without a
cookie, which protects an open server on a laptop too. Scripts send neither
header and no cookie, and bearer tokens are never attached by a browser, so
both are unaffected.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_PATHS = "/api/"


def _origin_host(url: str) -> str | None:
    """host[:port] of an http(s) URL, as a browser writes it in Origin and Host."""
    parts = urlsplit(url)
    return parts.netloc.lower() if parts.scheme in ("http", "https") and parts.netloc else None


def cross_site_refusal(headers: Headers, carries_session: bool) -> str | None:
    """Why a state-changing request must be refused, or None when it may go on."""
    host = headers.get("host", "").lower()
    for name in ("origin", "referer"):
        value = headers.get(name)
        if value is None:
            continue
        if _origin_host(value) == host:
            return None
        return (f"cross-site request refused: its {name.capitalize()} is not this server ({host}); "
                "act from the dashboard itself, or send 'Authorization: Bearer <token>'")
    if carries_session:
        return ("a request with the session cookie must carry an Origin or Referer header naming this server "
                f"({host}); scripts should send 'Authorization: Bearer <token>' instead")
    return None


def _authenticated_by_bearer(path: str, headers: Headers) -> bool:
    """The API takes a bearer token over the cookie; the dashboard never reads one."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return path.startswith(API_PATHS) and scheme.lower() == "bearer" and bool(token.strip())


class SameOriginGuard:
    """ASGI middleware: 403 for a state-changing request a browser sent on another site's behalf."""

    def __init__(self, app: Any, session_cookie: str | None) -> None:
        """``session_cookie`` is the cookie's name, or None when the server is open (no tokens)."""
        self.app, self.session_cookie = app, session_cookie

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if _authenticated_by_bearer(scope["path"], headers):
            await self.app(scope, receive, send)
            return
        carries_session = self.session_cookie is not None and self.session_cookie in cookie_parser(
            headers.get("cookie", "")
        )
        refusal = cross_site_refusal(headers, carries_session)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse({"detail": refusal}, status_code=403)(scope, receive, send)
