"""The FastAPI application: /api/v1 routes, error mapping, and what they share."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from armscope import __version__
from backend.auth import COOKIE, BrowserGate, TokenAuth, require_access
from backend.csrf import SameOriginGuard
from backend.deps import Queue
from backend.errors import described, invalid
from backend.limits import BodyLimit
from backend.routes import catalog, compare, runs, session, sweeps
from backend.settings import Settings, get_settings
from backend.store import BadCursor, IllegalTransition, RunNotFound, Store
from dashboard import mount_dashboard

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, store: Store | None = None, queue: Queue | None = None) -> FastAPI:
    """Build the app; tests pass their own store or queue, a server takes them from settings."""
    settings = settings or get_settings()
    settings.ensure_home()
    if store is None:
        store = Store(settings.resolved_database_url)
        store.upgrade()
    if queue is None:
        from backend.queue import CeleryQueue

        queue = CeleryQueue(settings)
    app = FastAPI(
        title="armscope",
        version=__version__,
        description="Launch ARM and comparison runs, and read each modality's contribution per epoch.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings, app.state.store, app.state.queue = settings, store, queue
    app.state.auth = auth = TokenAuth.for_settings(settings, store.engine)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(catalog.health_router)
    guarded = APIRouter(dependencies=[Depends(require_access)], responses=described(400, 401, 403, 413, 429))
    for module in (catalog, runs, sweeps, compare):
        guarded.include_router(module.router)
    api.include_router(guarded)
    app.include_router(api)
    app.include_router(session.router)
    _error_handlers(app)
    mount_dashboard(app)  # the Dash dashboard at `/`, after the API routes so they win
    app.add_middleware(BrowserGate, auth=auth)
    app.add_middleware(SameOriginGuard, session_cookie=COOKIE if auth.enabled else None)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RunNotFound)
    async def not_found(_: Request, exc: RunNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(IllegalTransition)
    async def conflict(_: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(BadCursor)
    async def bad_cursor(_: Request, exc: BadCursor) -> JSONResponse:
        error = invalid("query", "cursor", str(exc))
        return JSONResponse({"detail": error.detail}, status_code=422)
