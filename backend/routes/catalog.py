"""Health and the catalog of what can be run (drives the launch form)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from backend import deps
from backend.auth import role_of_request
from backend.schemas import Health
from service import runs
from service.access import Access
from service.catalog import catalog as build_catalog
from service.db.store import Store
from service.health import health as health_report
from service.settings import Settings

router = APIRouter(tags=["catalog"])
health_router = APIRouter(tags=["catalog"])


@health_router.get(
    "/health", response_model=Health,
    responses={503: {"model": Health, "description": "Runs wait in a queue no live worker takes from, "
                                                     "or the database did not answer"}},
)
def health(
    request: Request,
    response: Response,
    settings: Settings = Depends(deps.settings),
    store: Store = Depends(deps.store),
    access: Access = Depends(deps.access),
) -> dict[str, Any]:
    """Whether what waits can be trained: 503 while runs wait in a queue no live worker takes from.

    Read from the database, so every server process, and every API server sharing it, answers the same.
    """
    report = health_report(settings, store)
    if report["status"] == "degraded":
        response.status_code = 503
    # Worker names carry host names and process ids, plugin errors the names of modules and files: only for
    # callers who may read the API.
    if access.enabled and role_of_request(access, request) is None:
        report.update(workers=None, broken_plugins=None)
    return report


@router.get("/catalog")
def catalog() -> dict[str, Any]:
    return build_catalog()


@router.get("/projects", response_model=list[str])
def projects(store: Store = Depends(deps.store)) -> list[str]:
    """The project names runs and sweeps carry, sorted: what the pages' project filters offer."""
    return runs.projects(store)
