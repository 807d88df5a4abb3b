"""Runs: submit, list, inspect, edit, cancel, retry, delete, and their metrics and files."""

from __future__ import annotations

import csv
import io
import shutil
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi.responses import FileResponse

from armscope.config import RunConfig
from backend import deps
from backend.errors import described, fast_json, invalid
from backend.limits import csv_items
from backend.publish import publish
from backend.schemas import EventOut, RunOut, RunPage, RunPatch, Status
from backend.settings import Settings
from backend.store import SORTABLE, Store
from backend.strict_input import StrictRoute
from workers.app import queue_for

router = APIRouter(prefix="/runs", tags=["runs"], responses=described(404, 409, 503), route_class=StrictRoute)
STATUSES = get_args(Status)
MAX_ID = 2**31 - 1
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="The run's id.")]


def enqueue_or_undo(store: Store, queue: deps.Queue, runs: list[dict[str, Any]]) -> None:
    """Queue freshly stored runs; if the broker refuses, delete them all so nothing stays stored."""
    try:
        for run in runs:
            publish(store, queue.enqueue, run["id"], run["queue"])
    except Exception as exc:
        for run in runs:
            store.delete_run(run["id"])
        raise HTTPException(503, f"the task queue is not reachable, nothing was stored: {exc}") from None


def submit(store: Store, queue: deps.Queue, config: RunConfig) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    run = store.create_run(data, queue=queue_for(data))
    enqueue_or_undo(store, queue, [run])
    return run


@router.post("", response_model=RunOut, status_code=201)
def create_run(
    config: RunConfig, store: Store = Depends(deps.store), queue: deps.Queue = Depends(deps.queue)
) -> dict[str, Any]:
    return submit(store, queue, config)


@router.get("", response_model=RunPage)
def list_runs(
    status: str | None = Query(None, description="Comma-separated statuses, e.g. queued,running."),
    method: str | None = None,
    dataset: str | None = None,
    tag: str | None = None,
    sweep: int | None = Query(None, ge=1, le=MAX_ID),
    text: str | None = Query(None, max_length=200),
    sort: str = Query(
        "-created_at",
        pattern=f"^-?({'|'.join(SORTABLE)})$",
        description=f"One of {', '.join(SORTABLE)}; a leading '-' sorts descending.",
    ),
    cursor: str | None = Query(None, max_length=1000),
    limit: int = Query(50, ge=1, le=500),
    store: Store = Depends(deps.store),
) -> dict[str, Any]:
    statuses = csv_items(status, "status")
    unknown = sorted(set(statuses or []) - set(STATUSES))
    if unknown:
        raise invalid("query", "status", f"unknown {unknown}; choose from: {', '.join(STATUSES)}")
    items, next_cursor = store.list_runs(
        status=statuses, method=method, dataset=dataset, tag=tag, sweep=sweep, text=text,
        sort=sort, cursor=cursor, limit=limit,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{run_id}", response_model=RunOut)
def get_run(run_id: RunId, store: Store = Depends(deps.store)) -> dict[str, Any]:
    return store.get_run(run_id)


@router.patch("/{run_id}", response_model=RunOut)
def update_run(run_id: RunId, patch: RunPatch, store: Store = Depends(deps.store)) -> dict[str, Any]:
    return store.update_run(run_id, name=patch.name, tags=patch.tags, notes=patch.notes)


@router.delete("/{run_id}", status_code=204)
def delete_run(
    run_id: RunId, store: Store = Depends(deps.store), settings: Settings = Depends(deps.settings)
) -> Response:
    store.delete_run(run_id)
    shutil.rmtree(settings.run_dir(run_id), ignore_errors=True)
    return Response(status_code=204)


@router.post("/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: RunId, store: Store = Depends(deps.store)) -> dict[str, Any]:
    return store.cancel_run(run_id)


@router.post("/{run_id}/retry", response_model=RunOut)
def retry_run(
    run_id: RunId, store: Store = Depends(deps.store), queue: deps.Queue = Depends(deps.queue)
) -> dict[str, Any]:
    run = store.retry_run(run_id)
    publish(store, queue.enqueue, run_id, run["queue"])
    return run


@router.get("/{run_id}/metrics")
def metrics(
    run_id: RunId,
    keys: str | None = Query(None, description="Comma-separated metric keys; all when empty."),
    since_epoch: int | None = Query(None, ge=0, le=MAX_ID),
    store: Store = Depends(deps.store),
) -> Response:
    return fast_json(store.metrics(run_id, csv_items(keys, "keys"), since_epoch))


@router.get("/{run_id}/events", response_model=list[EventOut])
def events(run_id: RunId, store: Store = Depends(deps.store)) -> list[dict[str, Any]]:
    return store.events(run_id)


@router.get(
    "/{run_id}/metrics.csv",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "One row per epoch"}},
)
def metrics_csv(run_id: RunId, store: Store = Depends(deps.store)) -> Response:
    records = store.metrics(run_id)
    columns = list(dict.fromkeys(k for r in records for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(records)
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-metrics.csv"'},
    )


@router.get(
    "/{run_id}/checkpoint",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "The last checkpoint (torch.save format)"}},
)
def checkpoint(
    run_id: RunId, store: Store = Depends(deps.store), settings: Settings = Depends(deps.settings)
) -> FileResponse:
    store.get_run(run_id)
    path = settings.run_dir(run_id) / "checkpoints" / "last.pt"
    if not path.exists():
        raise HTTPException(404, f"run {run_id} has no checkpoint yet")
    return FileResponse(path, filename=f"run-{run_id}-last.pt", media_type="application/octet-stream")
