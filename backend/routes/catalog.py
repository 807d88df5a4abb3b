"""Health and the catalog of what can be run (drives the launch form)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from armscope import __version__
from armscope.config import run_config_schema
from armscope.data import DATASETS
from armscope.methods import METHODS
from armscope.models import ENCODERS
from backend import deps
from backend.schemas import Health
from backend.settings import Settings

router = APIRouter(tags=["catalog"])
health_router = APIRouter(tags=["catalog"])


@health_router.get("/health", response_model=Health)
def health(settings: Settings = Depends(deps.settings)) -> dict[str, Any]:
    broker = settings.resolved_broker_url.split(":", 1)[0]
    return {
        "status": "ok",
        "version": __version__,
        "auth": "token" if settings.api_token else "open",
        "database": settings.resolved_database_url.split(":", 1)[0].split("+")[0],
        "broker": "embedded" if broker.startswith("sqla") else broker,
    }


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
