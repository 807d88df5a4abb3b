"""Health and the catalog of what can be run (drives the launch form)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from armscope import __version__
from armscope.config import run_config_schema
from armscope.data import DATASETS
from armscope.methods import METHODS
from armscope.models import ENCODERS
from backend import deps
from backend.auth import TokenAuth
from backend.schemas import Health
from backend.settings import Settings
from backend.store import Store

router = APIRouter(tags=["catalog"])
health_router = APIRouter(tags=["catalog"])


@health_router.get(
    "/health", response_model=Health,
    responses={503: {"model": Health, "description": "Runs wait in a queue no live worker takes from, "
                                                     "or the database did not answer"}},
)
def health(
    request: Request, response: Response, settings: Settings = Depends(deps.settings), store: Store = Depends(deps.store)
) -> dict[str, Any]:
    """Whether what waits can be trained: 503 while runs wait in a queue no live worker takes from.

    Read from the database, so every server process, and every API server sharing it, answers the same.
    """
    broker = settings.resolved_broker_url.split(":", 1)[0]
    body: dict[str, Any] = {
        "status": "ok",
        "version": __version__,
        "auth": "token" if settings.api_token else "open",
        "database": settings.resolved_database_url.split(":", 1)[0].split("+")[0],
        "broker": "embedded" if broker.startswith("sqla") else broker,
        "workers": None,
        "queued": {},
        "unserved_queues": [],
    }
    try:
        workers = store.known_workers(settings.heartbeat_timeout)
        queued = store.queued_per_queue()
    except SQLAlchemyError as exc:
        response.status_code = 503
        failure = getattr(exc, "orig", None) or exc
        return {**body, "status": "degraded", "detail": f"the database did not answer ({type(failure).__name__})"}
    served = {queue for worker in workers if worker["alive"] for queue in worker["queues"]}
    unserved = sorted(queue for queue in queued if queue not in served)
    # Worker names carry host names and process ids: only for callers who may read the API.
    auth: TokenAuth = request.app.state.auth
    shown = None if auth.enabled and auth.role_of_request(request) is None else workers
    body.update(workers=shown, queued=queued, unserved_queues=unserved)
    if unserved:
        response.status_code = 503
        waiting = ", ".join(f"queue {queue!r} ({queued[queue]} waiting)" for queue in unserved)
        body.update(status="degraded", detail=f"no live worker takes runs from {waiting}")
    return body


@router.get("/catalog")
def catalog() -> dict[str, Any]:
    def entries(registry: Any) -> dict[str, Any]:
        return {e.name: {"summary": e.summary, "options": e.options_schema()} for e in registry.entries()}

    return {
        "methods": entries(METHODS),
        "datasets": entries(DATASETS),
        "encoders": entries(ENCODERS),
        "run_config": run_config_schema(),
    }
