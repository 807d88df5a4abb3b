"""Use cases on runs: submit, list, edit, cancel, retry, delete, and a run's metrics as CSV and its checkpoint.

Reading one run, its metrics or its events is one store call, which faces make directly.
"""

from __future__ import annotations

import csv
import difflib
import io
import shutil
from pathlib import Path
from typing import Any, Literal, Sequence, get_args

from armscope.config import RunConfig
from armscope.metrics import Metric, declared_order, find
from armscope.plugins import DATASETS
from service.catalog import all_metrics, metrics_of
from service.db.store import INT32_MAX, Store
from service.errors import InvalidInput, NotFound, QueueUnavailable
from service.publish import publish
from service.queue import Queue, queue_for
from service.settings import Settings

# crashed: an external run whose script stopped heartbeating (service.external).
Status = Literal["queued", "running", "succeeded", "failed", "cancelled", "crashed"]
STATUSES: tuple[str, ...] = get_args(Status)
MAX_RUN_ID = INT32_MAX  # ids are 32-bit integers on PostgreSQL


def enqueue_or_undo(store: Store, queue: Queue, runs: Sequence[dict[str, Any]]) -> None:
    """Queue freshly stored runs; if the broker refuses, delete them all so nothing stays stored."""
    try:
        for run in runs:
            publish(store, queue.enqueue, run["id"], run["queue"])
    except Exception as exc:  # whatever the broker's client raises: the runs must not stay stored
        for run in runs:
            store.delete_run(run["id"])
        raise QueueUnavailable(f"the task queue is not reachable, nothing was stored: {exc}") from None


def submit(store: Store, queue: Queue, config: RunConfig) -> dict[str, Any]:
    """Store a validated config (with its defaults filled in) as a queued run and send it to its queue."""
    run = store.create_run(config.model_dump(mode="json"), queue=queue_for(config))
    enqueue_or_undo(store, queue, [run])
    return run


def list_runs(
    store: Store,
    *,
    status: Sequence[str] | None = None,
    method: str | None = None,
    dataset: str | None = None,
    tag: str | None = None,
    sweep: int | None = None,
    text: str | None = None,
    project: str | None = None,
    sort: str = "-created_at",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of runs and the cursor of the next; an unknown status, sort or cursor is InvalidInput."""
    unknown = sorted(set(status or []) - set(STATUSES))
    if unknown:
        raise InvalidInput.at("status", f"unknown {unknown}; choose from: {', '.join(STATUSES)}")
    return store.list_runs(
        status=status, method=method, dataset=dataset, tag=tag, sweep=sweep, text=text, project=project,
        sort=sort, cursor=cursor, limit=limit,
    )


def projects(store: Store) -> list[str]:
    """The project names runs and sweeps carry, sorted: what a project filter offers."""
    return store.projects()


def metrics(
    store: Store, run_id: int, keys: Sequence[str] | None = None, since_epoch: int | None = None
) -> list[dict[str, Any]]:
    """A run's epoch records (only ``keys`` and the epoch when given). A key the run neither logged nor declares
    is InvalidInput naming it, with the keys it has: a typo must not read as "nothing logged yet"."""
    if keys:
        unknown = unknown_metric_keys(store, store.get_run(run_id), keys)
        if unknown:
            raise InvalidInput.at("keys", unknown)
    return store.metrics(run_id, keys, since_epoch)


def unknown_metric_keys(store: Store, run: dict[str, Any], keys: Sequence[str]) -> str | None:
    """Why some of ``keys`` name nothing of ``run``, or None when every one is known: logged by some epoch, or
    declared by the measures every run logs or its method (a per-modality one for one of its modalities)."""
    logged = store.metric_keys(run["id"]) | {"epoch"}
    declared = metrics_of(run["method"])
    modalities = _modalities(run, logged, declared)
    known = logged | {key for m in declared for key in m.keys(sorted(modalities))}
    unknown = [key for key in dict.fromkeys(keys) if key not in known and not _declared(key, declared, modalities)]
    if not unknown:
        return None
    named = ", ".join(f"{key!r}" + _near(key, known) for key in unknown)
    return f"unknown metric key{'s' if len(unknown) > 1 else ''} {named}; run {run['id']} has: {', '.join(sorted(known))}"


def _declared(key: str, declared: Sequence[Metric], modalities: set[str]) -> bool:
    """Declared, and of one of the run's modalities; any modality while none is known (nothing logged yet, and
    a data set whose modalities only its files tell)."""
    metric = find(key, declared)
    return metric is not None and (not metric.per_modality or not modalities or key.partition(".")[2] in modalities)


def _modalities(run: dict[str, Any], logged: set[str], declared: Sequence[Metric]) -> set[str]:
    """The run's modalities: those its records name, its config's (an external run's), its data set's."""
    named = {key.partition(".")[2] for key in logged if (m := find(key, declared)) is not None and m.per_modality}
    config = run.get("config") or {}
    listed = config.get("modalities")
    if isinstance(listed, list):
        named.update(m for m in listed if isinstance(m, str))
    if run["dataset"] in DATASETS and not run.get("external"):
        try:
            options = DATASETS.parse_options(run["dataset"], config.get("dataset_options") or {}, "dataset_options")
            named.update(options.modality_names() or [])
        except ValueError:  # options a plugin no longer accepts (ValidationError is a ValueError)
            pass
    return named


def _near(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def update(
    store: Store, run_id: int, *, name: str | None = None, tags: list[str] | None = None, notes: str | None = None,
    project: str | None = None,
) -> dict[str, Any]:
    """Change the fields given. A name another run has is a Conflict (names are unique); ``project=""`` takes the
    run out of any project."""
    return store.update_run(run_id, name=name, tags=tags, notes=notes, project=project)


def cancel(store: Store, run_id: int) -> dict[str, Any]:
    """A queued run ends at once; a running one stops at its next batch."""
    return store.cancel_run(run_id)


def retry(store: Store, queue: Queue, run_id: int) -> dict[str, Any]:
    """A failed or cancelled run goes back to the queue and resumes from its last checkpoint.

    The run is queued before its message goes out; should the broker refuse it, the reapers send
    it again once the broker is back (it stays marked unpublished).
    """
    run = store.retry_run(run_id)
    try:
        publish(store, queue.enqueue, run_id, run["queue"])
    except Exception as exc:  # whatever the broker's client raises
        raise QueueUnavailable(
            f"the task queue is not reachable: run {run_id} stays queued and is sent again when it is back ({exc})"
        ) from None
    return run


def delete(store: Store, settings: Settings, run_id: int) -> None:
    """Forget a run that is not running, and remove its folder (checkpoints, metrics file)."""
    store.delete_run(run_id)
    shutil.rmtree(settings.run_dir(run_id), ignore_errors=True)


def metrics_csv(store: Store, run_id: int) -> str:
    """One row per epoch, one column per metric any epoch reported, in the order the metrics are declared
    (the measures every run logs, then the method's own); keys no declaration names come last."""
    records = store.metrics(run_id)
    columns = declared_order(dict.fromkeys(k for r in records for k in r), all_metrics())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def checkpoint(store: Store, settings: Settings, run_id: int) -> Path:
    """The run's last checkpoint file (torch.save format)."""
    store.get_run(run_id)
    path = settings.run_dir(run_id) / "checkpoints" / "last.pt"
    if not path.exists():
        raise NotFound(f"run {run_id} has no checkpoint yet")
    return path
