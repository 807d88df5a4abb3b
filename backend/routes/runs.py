"""Runs: submit, list, inspect, edit, cancel, retry, delete, and their metrics and files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import FileResponse

from armscope.config import RunConfig
from backend import deps
from backend.errors import described
from backend.limits import csv_items
from backend.responses import fast_json
from backend.schemas import EventOut, RunOut, RunPage, RunPatch
from backend.strict_input import StrictRoute
from service import runs
from service.db.store import SORTABLE, Store
from service.queue import Queue
from service.settings import Settings

router = APIRouter(prefix="/runs", tags=["runs"], responses=described(404, 409, 503), route_class=StrictRoute)
RunId = Annotated[int, Path(ge=1, le=runs.MAX_RUN_ID, description="The run's id.")]


@router.post("", response_model=RunOut, status_code=201)
def create_run(config: RunConfig, store: Store = Depends(deps.store), queue: Queue = Depends(deps.queue)) -> dict[str, Any]:
    return runs.submit(store, queue, config)


@router.get("", response_model=RunPage)
def list_runs(
    status: str | None = Query(None, description="Comma-separated statuses, e.g. queued,running."),
    method: str | None = None,
    dataset: str | None = None,
    tag: str | None = None,
    sweep: int | None = Query(None, ge=1, le=runs.MAX_RUN_ID),
    text: str | None = Query(None, max_length=200),
    project: str | None = Query(None, max_length=100, description="Only the runs of this project."),
    sort: str = Query(
        "-created_at",
        pattern=f"^-?({'|'.join(SORTABLE)})$",
        description=f"One of {', '.join(SORTABLE)}; a leading '-' sorts descending.",
    ),
    cursor: str | None = Query(None, max_length=1000),
    limit: int = Query(50, ge=1, le=500),
    store: Store = Depends(deps.store),
) -> dict[str, Any]:
    items, next_cursor = runs.list_runs(
        store, status=csv_items(status, "status"), method=method, dataset=dataset, tag=tag, sweep=sweep,
        text=text, project=project, sort=sort, cursor=cursor, limit=limit,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{run_id}", response_model=RunOut)
def get_run(run_id: RunId, store: Store = Depends(deps.store)) -> dict[str, Any]:
    return store.get_run(run_id)


@router.patch("/{run_id}", response_model=RunOut)
def update_run(run_id: RunId, patch: RunPatch, store: Store = Depends(deps.store)) -> dict[str, Any]:
    return runs.update(store, run_id, name=patch.name, tags=patch.tags, notes=patch.notes, project=patch.project)


@router.delete("/{run_id}", status_code=204)
def delete_run(run_id: RunId, store: Store = Depends(deps.store), settings: Settings = Depends(deps.settings)) -> Response:
    runs.delete(store, settings, run_id)
    return Response(status_code=204)


@router.post("/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: RunId, store: Store = Depends(deps.store)) -> dict[str, Any]:
    return runs.cancel(store, run_id)


@router.post("/{run_id}/retry", response_model=RunOut)
def retry_run(run_id: RunId, store: Store = Depends(deps.store), queue: Queue = Depends(deps.queue)) -> dict[str, Any]:
    return runs.retry(store, queue, run_id)


@router.get("/{run_id}/metrics")
def metrics(
    run_id: RunId,
    keys: str | None = Query(
        None, description="Comma-separated metric keys; all when empty. A key the run neither logged nor declares "
                          "is a 422 naming it."),
    since_epoch: int | None = Query(None, ge=0, le=runs.MAX_RUN_ID),
    store: Store = Depends(deps.store),
) -> Response:
    return fast_json(runs.metrics(store, run_id, csv_items(keys, "keys"), since_epoch))


@router.get("/{run_id}/events", response_model=list[EventOut])
def events(run_id: RunId, store: Store = Depends(deps.store)) -> list[dict[str, Any]]:
    return store.events(run_id)


@router.get(
    "/{run_id}/metrics.csv",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "One row per epoch"}},
)
def metrics_csv(run_id: RunId, store: Store = Depends(deps.store)) -> Response:
    return Response(
        runs.metrics_csv(store, run_id),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-metrics.csv"'},
    )


@router.get(
    "/{run_id}/checkpoint",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "The last checkpoint (torch.save format)"}},
)
def checkpoint(run_id: RunId, store: Store = Depends(deps.store), settings: Settings = Depends(deps.settings)) -> FileResponse:
    path = runs.checkpoint(store, settings, run_id)
    return FileResponse(path, filename=f"run-{run_id}-last.pt", media_type="application/octet-stream")
