"""Serving the Dash (Flask/WSGI) app inside the FastAPI (ASGI) app, at `/`, on the API's port."""

from __future__ import annotations

from typing import Any

from a2wsgi import WSGIMiddleware
from fastapi import FastAPI
from starlette.responses import JSONResponse

from dashboard.app import create_dash
from dashboard.context import Context

API_PREFIXES = ("/api/",)


class DashboardASGI:
    """The dashboard for every path the API did not claim; unknown /api/... paths stay JSON 404s."""

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi = WSGIMiddleware(wsgi_app, workers=8)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path.startswith(API_PREFIXES) or path == "/api"):
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
            return
        await self.wsgi(scope, receive, send)


def mount_dashboard(app: FastAPI) -> None:
    """Mount the dashboard at `/`; it reads the store, settings and queue the API was built with."""
    ctx = Context(store=app.state.store, settings=app.state.settings, queue=app.state.queue, app_state=app.state)
    dash_app = create_dash(ctx)
    app.state.dashboard, app.state.dashboard_context = dash_app, ctx
    app.mount("/", DashboardASGI(dash_app.server), name="dashboard")
