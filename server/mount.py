"""Serving the Dash (Flask/WSGI) app inside the FastAPI (ASGI) app, at `/`, on the API's port."""

from __future__ import annotations

import re
from typing import Any

from a2wsgi import WSGIMiddleware
from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.routing import compile_path

from dashboard.app import create_dash
from dashboard.context import Context

API_PREFIXES = ("/api/",)


class DashboardASGI:
    """The dashboard for every path the API did not claim.

    A catch-all mount at `/` would otherwise swallow API paths: an unknown
    /api/... path stays a JSON 404, and a known one asked with the wrong method
    a 405 naming the allowed methods.
    """

    def __init__(self, wsgi_app: Any, api: FastAPI) -> None:
        self.wsgi = WSGIMiddleware(wsgi_app, workers=8)
        self.api = api
        self._patterns: list[tuple[re.Pattern[str], list[str]]] | None = None

    def allowed_methods(self, path: str) -> list[str]:
        """The methods the API serves at ``path``, read from its OpenAPI document."""
        if self._patterns is None:
            self._patterns = [
                (compile_path(template)[0], sorted(m.upper() for m in operations))
                for template, operations in self.api.openapi()["paths"].items()
            ]
        return sorted({m for pattern, methods in self._patterns if pattern.match(path) for m in methods})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path.startswith(API_PREFIXES) or path == "/api"):
            allowed = self.allowed_methods(path)
            response = (
                JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": ", ".join(allowed)})
                if allowed
                else JSONResponse({"detail": "Not Found"}, status_code=404)
            )
            await response(scope, receive, send)
            return
        await self.wsgi(scope, receive, send)


def mount_dashboard(app: FastAPI, ctx: Context) -> None:
    """Mount the dashboard at `/`, after the API's routes so they win; ``app.state`` keeps both for tests."""
    dash_app = create_dash(ctx)
    app.state.dashboard, app.state.dashboard_context = dash_app, ctx
    app.mount("/", DashboardASGI(dash_app.server, app), name="dashboard")
