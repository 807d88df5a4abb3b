"""The FastAPI application: /api/v1 routes, the login pages, and the middleware every request passes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from armscope import __version__
from backend.auth import BrowserGate, require_access
from backend.csrf import SameOriginGuard
from backend.docs import add_docs
from backend.errors import described, install_handlers
from backend.limits import BodyLimit
from backend.routes import benchmark, catalog, compare, external, runs, session, sweeps, views
from service.access import COOKIE, Access
from service.db.store import Store
from service.queue import Queue
from service.settings import Settings

API_PREFIX = "/api/v1"


def create_api(settings: Settings, store: Store, queue: Queue, access: Access) -> FastAPI:
    """The API over what the composition root built; it mounts nothing else (see server.app)."""
    app = FastAPI(
        title="armscope",
        version=__version__,
        description="Launch ARM and comparison runs, and read each modality's contribution per epoch.",
        docs_url=None,  # served by backend.docs, from the package rather than a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    add_docs(app, "/openapi.json")
    app.state.settings, app.state.store, app.state.queue, app.state.auth = settings, store, queue, access
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(catalog.health_router)
    guarded = APIRouter(dependencies=[Depends(require_access)], responses=described(400, 401, 403, 413, 429))
    for module in (catalog, external, runs, sweeps, compare, benchmark, views):
        guarded.include_router(module.router)
    api.include_router(guarded)
    app.include_router(api)
    app.include_router(session.router)
    install_handlers(app)
    app.add_middleware(BrowserGate, auth=access)
    app.add_middleware(SameOriginGuard, session_cookie=COOKIE if access.enabled else None)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
