"""External runs: what the SDK (``armscope.init``) calls while a researcher's own script trains."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from backend import deps
from backend.errors import described
from backend.schemas import ExternalLogged, RunOut
from backend.strict_input import StrictRoute
from service import external, runs
from service.db.store import Store

# Created at /external-runs rather than /runs/external, where it would shadow GET /runs/{run_id}'s path.
router = APIRouter(tags=["external runs"], responses=described(404, 409), route_class=StrictRoute)
RunId = Annotated[int, Path(ge=1, le=runs.MAX_RUN_ID, description="The run's id.")]


@router.post("/external-runs", response_model=RunOut, status_code=201,
             responses={200: {"model": RunOut, "description": "The run made by an earlier request with this key"}})
def start_external(spec: external.ExternalRunIn, response: Response, store: Store = Depends(deps.store)) -> dict[str, Any]:
    run, new = external.start(store, spec)
    if not new:
        response.status_code = 200
    return run


@router.post("/runs/{run_id}/log", response_model=ExternalLogged)
def log_external(run_id: RunId, body: external.ExternalLog, store: Store = Depends(deps.store)) -> dict[str, Any]:
    return external.log(store, run_id, body)


@router.post("/runs/{run_id}/end", response_model=RunOut)
def end_external(run_id: RunId, body: external.ExternalEnd, store: Store = Depends(deps.store)) -> dict[str, Any]:
    return external.end(store, run_id, body)
