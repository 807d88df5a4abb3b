"""Sweeps: one config crossed with methods, seeds and a search over its fields, stored all or nothing; a stored
sweep read back with its runs' final numbers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from backend import deps
from backend.errors import described
from backend.schemas import SweepDetailOut, SweepIn, SweepOut, SweepPlanOut, SweepRecord
from backend.strict_input import StrictRoute
from service import sweeps
from service.db.store import INT32_MAX, Store
from service.queue import Queue

router = APIRouter(tags=["sweeps"], responses=described(503), route_class=StrictRoute)
SweepId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The sweep's id.")]


@router.post("/sweeps", response_model=SweepOut, status_code=201)
def create_sweep(sweep: SweepIn, store: Store = Depends(deps.store), queue: Queue = Depends(deps.queue)) -> dict[str, Any]:
    return sweeps.submit(store, queue, sweep)


# Not /sweeps/plan, where GET /sweeps/{sweep_id}'s path would shadow it.
@router.post("/sweep-plan", response_model=SweepPlanOut)
def plan_sweep(sweep: SweepIn) -> dict[str, Any]:
    """What POST /sweeps would store, storing nothing: the run count and every run's validated config."""
    return sweeps.plan(sweep)


@router.get("/sweeps", response_model=list[SweepRecord])
def list_sweeps(
    project: str | None = Query(None, max_length=100),
    limit: int = Query(50, ge=1, le=500),
    store: Store = Depends(deps.store),
) -> list[dict[str, Any]]:
    """The newest sweeps first, each with its spec and its runs counted by status."""
    return sweeps.list_sweeps(store, project=project, limit=limit)


@router.get("/sweeps/{sweep_id}", response_model=SweepDetailOut, responses=described(404))
def get_sweep(
    sweep_id: SweepId,
    metric: str = Query(sweeps.DEFAULT_METRIC, max_length=200, description="The final metric to rank runs by."),
    store: Store = Depends(deps.store),
) -> dict[str, Any]:
    """The sweep with its runs (each with its swept values and final metric) and the best run by that metric."""
    return sweeps.get(store, sweep_id, metric)
