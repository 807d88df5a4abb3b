"""The store: runs, sweeps, epochs, events and workers in SQL. Every face reaches it through the service.

Every lifecycle transition is a single conditional UPDATE, so two processes
racing for the same run cannot both win, on SQLite or PostgreSQL alike.
"""

from __future__ import annotations

import base64
import json
import math
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from pydantic_core import from_json
from sqlalchemy import (
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import EpochMetrics, Event, Run, RunTag, Sweep, Worker, utcnow
from service.errors import Conflict, InvalidInput, NotFound

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "crashed"})
# The queue of runs a researcher's own script trains (the SDK): no worker takes from it.
EXTERNAL = "external"
# The range of the Integer columns (ids, seeds): 32 bits on PostgreSQL.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SORTABLE = {
    "created_at": Run.created_at,
    "name": Run.name,
    "status": Run.status,
    "method": Run.method,
    "dataset": Run.dataset,
    "seed": Run.seed,
    "best_val_acc": func.coalesce(Run.best_val_acc, -1.0),
}


# A run whose message should be waiting in the broker: queued, sent, and not yet taken by a worker.
_WAITING = (Run.status == "queued", Run.unpublished_since.is_(None), Run.delivered_to.is_(None))


class RunNotFound(NotFound):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"run {run_id} does not exist")
        self.run_id = run_id


class IllegalTransition(Conflict):
    """A lifecycle change the run's current status does not allow."""


class LostOwnership(RuntimeError):
    """This worker no longer owns the run (it was re-queued, deleted or finished elsewhere)."""


class BadCursor(InvalidInput):
    """A ``cursor`` this store did not issue (a client can send any)."""

    def __init__(self, message: str) -> None:
        super().__init__([{"loc": ["cursor"], "msg": message, "type": "value_error"}])


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """JSON columns are decoded by pydantic-core: epoch records dominate the compare query."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, json_deserializer=from_json
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_deserializer=from_json)


def _compared(run: Run) -> dict[str, Any]:
    """What a comparison or the benchmark shows of a run beside its numbers."""
    return {"id": run.id, "name": run.name, "method": run.method, "dataset": run.dataset, "seed": run.seed,
            "status": run.status, "config": run.config, "external": run.external_id is not None}


def run_to_dict(run: Run, now: datetime | None = None) -> dict[str, Any]:
    started, now = _aware(run.started_at), now or utcnow()
    # A run may finish between two heartbeats, before its last progress reached the store.
    if run.status == "succeeded":
        fraction = 1.0
    else:
        fraction = (run.step / run.total_steps) if run.total_steps else 0.0
    eta = None
    if run.status == "running" and started is not None and 0 < fraction < 1:
        elapsed = (now - started).total_seconds()
        eta = elapsed * (1 - fraction) / fraction
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "config": run.config,
        "method": run.method,
        "dataset": run.dataset,
        "seed": run.seed,
        "queue": run.queue,
        "tags": list(run.tags or []),
        "notes": run.notes or "",
        "sweep_id": run.sweep_id,
        "created_at": _aware(run.created_at),
        "started_at": started,
        "finished_at": _aware(run.finished_at),
        "worker": run.worker,
        "heartbeat_at": _aware(run.heartbeat_at),
        "attempt": run.attempt,
        "progress": {
            "epoch": run.epoch,
            "epochs": run.epochs,
            "step": run.step,
            "total_steps": run.total_steps,
            "fraction": min(max(fraction, 0.0), 1.0),
            "eta_seconds": eta,
            "phase": run.phase,
        },
        "error": run.error,
        "cancel_requested": run.cancel_requested,
        "best_val_acc": run.best_val_acc,
        "last_val_acc": run.last_val_acc,
        "dominant": run.dominant,
        "delivered_to": run.delivered_to,
        "external": run.external_id is not None,
    }


def _encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str, sort_field: str) -> tuple[Any, int]:
    """The sort value and run id a cursor holds, each checked against its column's type and range:
    a client can send any cursor, and PostgreSQL fails (a 500) on a 33-bit seed or a list for a name."""
    try:
        decoded = from_json(base64.urlsafe_b64decode(cursor.encode()), allow_inf_nan=False)
        if not isinstance(decoded, list) or len(decoded) != 2:
            raise ValueError("expected a pair [sort value, run id]")
        value, run_id = decoded
        return _cursor_value(sort_field, value), _integer(run_id, "run id", 1, INT32_MAX)
    except ValueError as exc:
        raise BadCursor(f"cursor is not one this server issued: {exc}") from None


def _cursor_value(sort_field: str, value: Any) -> Any:
    if sort_field == "created_at":
        if not isinstance(value, str):
            raise ValueError("created_at must be an ISO 8601 time")
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
    if sort_field == "seed":
        return _integer(value, "seed", INT32_MIN, INT32_MAX)
    if sort_field == "best_val_acc":
        return _finite(value, "best_val_acc")
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(f"{sort_field} must be text without NUL characters")
    return value


def _finite(value: Any, what: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        with suppress(OverflowError):  # an integer beyond a double
            if math.isfinite(number := float(value)):
                return number
    raise ValueError(f"{what} must be a finite number")


def _integer(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer between {low} and {high}")
    return value


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        from service.db.migrate import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return self.sessions()

    # -- creating ---------------------------------------------------------------

    def create_run(self, config: dict[str, Any], *, queue: str, sweep_id: int | None = None) -> dict[str, Any]:
        with self._session() as s, s.begin():
            run = self._new_run(s, config, queue, sweep_id)
        return run_to_dict(run)

    def create_sweep(
        self, spec: dict[str, Any], configs: Iterable[tuple[dict[str, Any], str]], name: str | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A sweep and all its runs in one transaction: all are stored or none."""
        with self._session() as s, s.begin():
            sweep = Sweep(name=name, spec=spec)
            s.add(sweep)
            s.flush()
            runs = [self._new_run(s, config, queue, sweep.id) for config, queue in configs]
        return {"id": sweep.id, "name": sweep.name, "created_at": _aware(sweep.created_at)}, [
            run_to_dict(r) for r in runs
        ]

    def _new_run(self, s: Session, config: dict[str, Any], queue: str, sweep_id: int | None) -> Run:
        name = config.get("name") or f"{config['method']}-{config['dataset']}-s{config['seed']}"
        run = Run(
            name=name,
            status="queued",
            unpublished_since=utcnow(),
            config=config,
            method=config["method"],
            dataset=config["dataset"],
            seed=config["seed"],
            queue=queue,
            tags=list(config.get("tags") or []),
            notes="",
            sweep_id=sweep_id,
            epochs=config["epochs"],
            created_at=utcnow(),
        )
        s.add(run)
        s.flush()
        for tag in run.tags:
            s.add(RunTag(run_id=run.id, tag=tag))
        return run

    # -- reading ----------------------------------------------------------------

    def get_run(self, run_id: int) -> dict[str, Any]:
        with self._session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise RunNotFound(run_id)
            return run_to_dict(run)

    def list_runs(
        self,
        *,
        status: Sequence[str] | None = None,
        method: str | None = None,
        dataset: str | None = None,
        tag: str | None = None,
        sweep: int | None = None,
        text: str | None = None,
        ids: Sequence[int] | None = None,
        sort: str = "-created_at",
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of runs, newest first by default, with a keyset cursor for the next page."""
        descending = sort.startswith("-")
        field = sort.lstrip("-")
        if field not in SORTABLE:
            raise InvalidInput.at("sort", f"unknown field {field!r}; choose from: {', '.join(SORTABLE)}")
        key = SORTABLE[field]
        query = select(Run)
        if status:
            query = query.where(Run.status.in_(list(status)))
        if method:
            query = query.where(Run.method == method)
        if dataset:
            query = query.where(Run.dataset == dataset)
        if sweep is not None:
            query = query.where(Run.sweep_id == sweep)
        if ids is not None:
            query = query.where(Run.id.in_(list(ids)))
        if tag:
            query = query.where(Run.id.in_(select(RunTag.run_id).where(RunTag.tag == tag)))
        if text:
            # autoescape: a % or _ in the text is matched literally, not as a LIKE wildcard.
            needle = text.lower()
            query = query.where(or_(func.lower(Run.name).contains(needle, autoescape=True),
                                    func.lower(Run.notes).contains(needle, autoescape=True)))
        if cursor:
            value, last_id = _decode_cursor(cursor, field)
            position = tuple_(key, Run.id)
            query = query.where(position < (value, last_id) if descending else position > (value, last_id))
        order = [key.desc(), Run.id.desc()] if descending else [key.asc(), Run.id.asc()]
        query = query.order_by(*order).limit(limit + 1)
        with self._session() as s:
            rows = list(s.scalars(query))
        page, more = rows[:limit], len(rows) > limit
        next_cursor = None
        if more:
            last = page[-1]
            value = last.best_val_acc if field == "best_val_acc" else getattr(last, field)
            if field == "best_val_acc" and value is None:
                value = -1.0
            next_cursor = _encode_cursor([value, last.id])
        now = utcnow()
        return [run_to_dict(r, now) for r in page], next_cursor

    def metrics(
        self, run_id: int, keys: Sequence[str] | None = None, since_epoch: int | None = None
    ) -> list[dict[str, Any]]:
        self.get_run(run_id)
        query = select(EpochMetrics.record).where(EpochMetrics.run_id == run_id)
        if since_epoch is not None:
            query = query.where(EpochMetrics.epoch > since_epoch)
        with self._session() as s:
            rows = list(s.scalars(query.order_by(EpochMetrics.epoch)))
        return [_pick(r, keys) for r in rows]

    def events(self, run_id: int, since_id: int | None = None) -> list[dict[str, Any]]:
        self.get_run(run_id)
        query = select(Event).where(Event.run_id == run_id)
        if since_id is not None:
            query = query.where(Event.id > since_id)
        with self._session() as s:
            rows = list(s.scalars(query.order_by(Event.id)))
        return [
            {"id": e.id, "epoch": e.epoch, "step": e.step, "kind": e.kind, "level": e.level,
             "message": e.message, "data": e.data, "time": _aware(e.time)}
            for e in rows
        ]

    def compare(
        self, run_ids: Sequence[int], keys: Sequence[str] | None = None, points: int | None = None
    ) -> list[dict[str, Any]]:
        """Many runs' curves, optionally thinned to ``points`` epochs each, all in memory at once;
        :meth:`compared_runs` and :meth:`curves` give the same a run at a time."""
        return [{**run, "records": self.curves(run["id"], keys, points)} for run in self.compared_runs(run_ids)]

    def compared_runs(self, run_ids: Sequence[int]) -> list[dict[str, Any]]:
        """What a comparison shows of each run but its curves, in the order asked; RunNotFound names the
        first id that is not stored, before anything is returned."""
        with self._session() as s:
            runs = {r.id: r for r in s.scalars(select(Run).where(Run.id.in_(list(run_ids))))}
        missing = [i for i in run_ids if i not in runs]
        if missing:
            raise RunNotFound(missing[0])
        return [_compared(runs[i]) for i in run_ids]

    def finished_runs(self, dataset: str) -> list[dict[str, Any]]:
        """Every succeeded run on ``dataset``, oldest first, as a comparison shows it, with ``final``: its last
        epoch's record. One query, however many runs: the benchmark's rows."""
        last = (
            select(EpochMetrics.run_id, func.max(EpochMetrics.epoch).label("epoch"))
            .group_by(EpochMetrics.run_id)
            .subquery()
        )
        query = (
            select(Run, EpochMetrics.record)
            .join(last, last.c.run_id == Run.id)
            .join(EpochMetrics, (EpochMetrics.run_id == Run.id) & (EpochMetrics.epoch == last.c.epoch))
            .where(Run.dataset == dataset, Run.status == "succeeded", Run.external_id.is_(None))
            .order_by(Run.id)
        )
        with self._session() as s:
            rows = s.execute(query).all()
        return [{**_compared(run), "final": record} for run, record in rows]

    def curves(self, run_id: int, keys: Sequence[str] | None = None, points: int | None = None) -> list[dict[str, Any]]:
        """One run's epoch records (only ``keys`` and the epoch when given), thinned to ``points`` epochs."""
        with self._session() as s:
            rows = s.scalars(
                select(EpochMetrics.record).where(EpochMetrics.run_id == run_id).order_by(EpochMetrics.epoch)
            ).all()
        return [_pick(r, keys) for r in _thin(list(rows), points)]

    # -- editing ----------------------------------------------------------------

    def update_run(
        self, run_id: int, *, name: str | None = None, tags: list[str] | None = None, notes: str | None = None
    ) -> dict[str, Any]:
        with self._session() as s, s.begin():
            run = s.get(Run, run_id)
            if run is None:
                raise RunNotFound(run_id)
            if name is not None:
                run.name = name
            if notes is not None:
                run.notes = notes
            if tags is not None:
                run.tags = list(dict.fromkeys(tags))
                s.execute(delete(RunTag).where(RunTag.run_id == run_id))
                s.add_all(RunTag(run_id=run_id, tag=t) for t in run.tags)
        return self.get_run(run_id)

    def delete_run(self, run_id: int) -> None:
        """Delete a run that is not running. Of concurrent deletes, one wins and the others find no run:
        the status is read after the conditional DELETE, so a run deleted meanwhile is not found."""
        with self._session() as s, s.begin():
            gone = s.execute(delete(Run).where(Run.id == run_id, Run.status != "running")).rowcount
            if not gone:
                self._status(s, run_id)  # RunNotFound when a concurrent delete won
                raise IllegalTransition(f"run {run_id} is running; cancel it before deleting it")
            for table in (EpochMetrics, Event, RunTag):
                s.execute(delete(table).where(table.run_id == run_id))

    # -- lifecycle --------------------------------------------------------------

    def _transition(self, s: Session, run_id: int, allowed: Iterable[str], **values: Any) -> bool:
        result = s.execute(
            update(Run).where(Run.id == run_id, Run.status.in_(list(allowed))).values(**values)
        )
        return result.rowcount == 1

    def _status(self, s: Session, run_id: int) -> str:
        status = s.scalar(select(Run.status).where(Run.id == run_id))
        if status is None:
            raise RunNotFound(run_id)
        return status

    def claim_run(self, run_id: int, worker: str) -> bool:
        """queued -> running for exactly one worker; False if it is not queued any more."""
        now = utcnow()
        with self._session() as s, s.begin():
            return self._transition(
                s, run_id, ["queued"], status="running", worker=worker, started_at=now,
                heartbeat_at=now, attempt=Run.attempt + 1, error=None, finished_at=None,
                delivered_to=None, delivered_at=None,
            )

    def mark_delivered(self, run_id: int, worker_node: str) -> bool:
        """Note which worker process holds a queued run's message, so its death can be noticed."""
        with self._session() as s, s.begin():
            return self._transition(s, run_id, ["queued"], delivered_to=worker_node, delivered_at=utcnow())

    def worker_alive(self, node: str, queues: str) -> None:
        now = utcnow()
        with self._session() as s, s.begin():
            stmt = self._insert(Worker).values(name=node, queues=queues, started_at=now, heartbeat_at=now)
            s.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"heartbeat_at": now}))

    def worker_gone(self, node: str) -> None:
        with self._session() as s, s.begin():
            s.execute(delete(Worker).where(Worker.name == node))

    def reap(self, timeout: float) -> list[dict[str, Any]]:
        """Take back the runs of workers that died; each is handed to exactly one caller.

        A running run whose heartbeat is older than ``timeout`` seconds goes back
        to the queue (or ends cancelled if a cancel was pending); a queued run
        whose message was delivered to a worker that stopped heartbeating is
        handed back too. The caller must enqueue every run returned.
        """
        cutoff = utcnow() - timedelta(seconds=timeout)
        taken: list[dict[str, Any]] = []
        with self._session() as s, s.begin():
            live = select(Worker.name).where(Worker.heartbeat_at >= cutoff)
            self._crash_silent_scripts(s, cutoff, timeout)
            stale = s.execute(
                select(Run.id, Run.worker, Run.queue, Run.epoch, Run.cancel_requested)
                .where(Run.status == "running", Run.heartbeat_at < cutoff, Run.external_id.is_(None))
            ).all()
            for run_id, worker, queue, epoch, cancel in stale:
                guard = (Run.id == run_id, Run.status == "running", Run.worker == worker, Run.heartbeat_at < cutoff)
                if cancel:
                    s.execute(update(Run).where(*guard).values(status="cancelled", finished_at=utcnow(),
                                                               cancel_requested=False))
                    self._event(s, run_id, epoch, "cancelled", "warning",
                                f"worker {worker} stopped heartbeating while a cancel was pending; run cancelled")
                    continue
                moved = s.execute(update(Run).where(*guard).values(status="queued", worker=None, heartbeat_at=None,
                                                                   unpublished_since=utcnow()))
                if moved.rowcount == 1:
                    self._event(s, run_id, epoch, "requeued", "warning",
                                f"worker {worker} stopped heartbeating for {timeout:g} s; the run goes back to "
                                f"the queue and resumes after epoch {epoch}")
                    taken.append({"id": run_id, "queue": queue})
            orphaned = s.execute(
                select(Run.id, Run.delivered_to, Run.queue, Run.epoch).where(
                    Run.status == "queued", Run.delivered_to.is_not(None),
                    Run.delivered_at < cutoff, Run.delivered_to.not_in(live),
                )
            ).all()
            for run_id, node, queue, epoch in orphaned:
                moved = s.execute(
                    update(Run).where(Run.id == run_id, Run.status == "queued", Run.delivered_to == node)
                    .values(delivered_to=None, delivered_at=None, unpublished_since=utcnow())
                )
                if moved.rowcount == 1:
                    self._event(s, run_id, epoch, "requeued", "warning",
                                f"worker {node} died holding this run before starting it; queued again")
                    taken.append({"id": run_id, "queue": queue})
            s.execute(delete(Worker).where(Worker.heartbeat_at < cutoff))
        return taken

    def _crash_silent_scripts(self, s: Session, cutoff: datetime, timeout: float) -> None:
        """External runs whose script stopped heartbeating: no worker can take them over, so they end crashed
        (a heartbeat from the same script later takes the run back, see :meth:`log_external`)."""
        silent = s.execute(
            select(Run.id, Run.epoch).where(Run.status == "running", Run.heartbeat_at < cutoff,
                                            Run.external_id.is_not(None))
        ).all()
        for run_id, epoch in silent:
            moved = s.execute(update(Run).where(Run.id == run_id, Run.status == "running", Run.heartbeat_at < cutoff)
                              .values(status="crashed", finished_at=utcnow()))
            if moved.rowcount == 1:
                self._event(s, run_id, epoch, "crashed", "error",
                            f"the script logging this run sent no heartbeat for {timeout:g} s: it died or lost "
                            "the server; whatever it spooled locally can still be uploaded with `armscope sync`")

    def mark_published(self, run_id: int) -> None:
        """The run's message is with the broker: no reaper needs to send it again."""
        with self._session() as s, s.begin():
            s.execute(update(Run).where(Run.id == run_id).values(unpublished_since=None))

    def mark_unpublished(self, run_id: int) -> None:
        """A queued run's message is about to be sent again (passed on): until confirmed, it may be lost."""
        with self._session() as s, s.begin():
            s.execute(update(Run).where(Run.id == run_id, Run.status == "queued").values(unpublished_since=utcnow()))

    def queues_with_waiting_runs(self) -> list[str]:
        """Queues that should hold a message: some run in them is queued, published and not delivered."""
        with self._session() as s:
            return list(s.scalars(select(Run.queue).where(*_WAITING).distinct()))

    def waiting_runs(self, queue: str) -> list[int]:
        with self._session() as s:
            return list(s.scalars(select(Run.id).where(*_WAITING, Run.queue == queue)))

    def mark_lost(self, run_ids: Sequence[int], grace: float) -> None:
        """Runs whose messages the broker no longer holds: take_unpublished hands them out at once."""
        long_ago = utcnow() - timedelta(seconds=grace + 1)
        with self._session() as s, s.begin():
            s.execute(update(Run).where(Run.id.in_(list(run_ids)), *_WAITING).values(unpublished_since=long_ago))

    def take_unpublished(self, grace: float) -> list[dict[str, Any]]:
        """Queued runs whose message was not confirmed sent within ``grace`` seconds; each to one caller.

        The process that queued them stopped between storing and publishing. The
        caller must send each and mark it published. Taking a run restarts its
        clock, so other reapers leave it alone meanwhile; should the first send
        have gone out after all, the duplicate is harmless (a run is claimed once).
        """
        now = utcnow()
        taken: list[dict[str, Any]] = []
        with self._session() as s, s.begin():
            rows = s.execute(
                select(Run.id, Run.queue, Run.epoch, Run.unpublished_since).where(
                    Run.status == "queued", Run.unpublished_since < now - timedelta(seconds=grace)
                )
            ).all()
            for run_id, queue, epoch, since in rows:
                moved = s.execute(
                    update(Run).where(Run.id == run_id, Run.status == "queued", Run.unpublished_since == since)
                    .values(unpublished_since=now)
                )
                if moved.rowcount == 1:
                    self._event(s, run_id, epoch, "republished", "warning",
                                "queued without its message in the task queue (the process sending it stopped, "
                                "or the broker restarted and forgot it); sent again")
                    taken.append({"id": run_id, "queue": queue})
        return taken

    @staticmethod
    def _event(s: Session, run_id: int, epoch: int, kind: str, level: str, message: str) -> None:
        s.add(Event(run_id=run_id, epoch=epoch, step=0, kind=kind, level=level, message=message, data={},
                    time=utcnow()))

    def cancel_run(self, run_id: int) -> dict[str, Any]:
        """A queued run is cancelled at once; a running one is asked to stop at its next batch."""
        with self._session() as s, s.begin():
            if not self._transition(s, run_id, ["queued"], status="cancelled", finished_at=utcnow()):
                if not self._transition(s, run_id, ["running"], cancel_requested=True):
                    status = self._status(s, run_id)
                    raise IllegalTransition(
                        f"run {run_id} is {status}; only queued or running runs can be cancelled"
                    )
        return self.get_run(run_id)

    def retry_run(self, run_id: int) -> dict[str, Any]:
        """failed/cancelled -> queued; the worker resumes from the run's last checkpoint."""
        with self._session() as s, s.begin():
            if s.scalar(select(Run.external_id).where(Run.id == run_id)) is not None:
                raise IllegalTransition(f"run {run_id} is an external run: its own script trains it, so only "
                                        "running that script again can retry it")
            if not self._transition(
                s, run_id, ["failed", "cancelled"], status="queued", error=None, finished_at=None,
                worker=None, cancel_requested=False, unpublished_since=utcnow(),
            ):
                status = self._status(s, run_id)
                raise IllegalTransition(f"run {run_id} is {status}; only failed or cancelled runs can be retried")
        return self.get_run(run_id)

    def heartbeat(self, run_id: int, worker: str, progress: dict[str, int | str | None] | None = None) -> bool:
        """Record liveness and progress; returns whether a cancel was requested."""
        with self._session() as s, s.begin():
            row = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.worker == worker, Run.status == "running")
                .values(heartbeat_at=utcnow(), **(progress or {}))
                .returning(Run.cancel_requested)
            ).first()
        if row is None:
            raise LostOwnership(f"worker {worker} no longer owns run {run_id}")
        return bool(row[0])

    def requeue_run(self, run_id: int, worker: str) -> bool:
        """running -> queued, by the worker that owns it (it is shutting down)."""
        with self._session() as s, s.begin():
            result = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.worker == worker, Run.status == "running")
                .values(status="queued", worker=None, heartbeat_at=None, unpublished_since=utcnow(), phase=None)
            )
            return result.rowcount == 1

    def finish_run(self, run_id: int, worker: str, status: str, error: str | None = None) -> bool:
        if status not in TERMINAL:
            raise ValueError(f"status: {status!r} is not terminal")
        with self._session() as s, s.begin():
            result = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.worker == worker, Run.status == "running")
                .values(status=status, error=error, finished_at=utcnow(), cancel_requested=False, phase=None)
            )
            return result.rowcount == 1

    # -- what a running run reports -----------------------------------------------

    def add_epoch(self, run_id: int, record: dict[str, Any]) -> bool:
        """Store one epoch; a second copy of the same epoch is ignored. Returns whether it was new."""
        epoch = int(record["epoch"])
        with self._session() as s, s.begin():
            stmt = self._insert(EpochMetrics).values(run_id=run_id, epoch=epoch, record=record)
            stmt = stmt.on_conflict_do_nothing(index_elements=["run_id", "epoch"]).returning(EpochMetrics.epoch)
            inserted = s.execute(stmt).first() is not None
            run = s.get(Run, run_id)
            if run is not None:
                val_acc = record.get("val_acc")
                run.epoch = max(run.epoch, epoch)
                run.last_val_acc = val_acc
                if val_acc is not None and (run.best_val_acc is None or val_acc > run.best_val_acc):
                    run.best_val_acc = val_acc
                run.dominant = record.get("dominant")
        return inserted

    def add_event(self, run_id: int, event_record: dict[str, Any]) -> None:
        time = event_record.get("time")
        with self._session() as s, s.begin():
            s.execute(
                insert(Event).values(
                    run_id=run_id,
                    epoch=int(event_record.get("epoch", 0)),
                    step=int(event_record.get("step", 0)),
                    kind=str(event_record["kind"]),
                    level=str(event_record.get("level", "info")),
                    message=str(event_record.get("message", "")),
                    data=event_record.get("data") or {},
                    time=datetime.fromtimestamp(time, timezone.utc) if isinstance(time, (int, float)) else utcnow(),
                )
            )

    def discard_after(self, run_id: int, epoch: int) -> None:
        """Forget what a crashed attempt reported past its last checkpoint, before it is redone."""
        with self._session() as s, s.begin():
            s.execute(delete(EpochMetrics).where(EpochMetrics.run_id == run_id, EpochMetrics.epoch > epoch))
            s.execute(delete(Event).where(Event.run_id == run_id, Event.epoch > epoch))
            best = s.scalar(
                select(func.max(EpochMetrics.epoch)).where(EpochMetrics.run_id == run_id)
            )
            s.execute(update(Run).where(Run.id == run_id).values(epoch=best or 0))

    # -- external runs: a researcher's own script logging through the SDK -------------------------

    def create_external_run(
        self, external_id: str, *, name: str, config: dict[str, Any], dataset: str, seed: int, epochs: int,
        tags: list[str], notes: str = "",
    ) -> tuple[dict[str, Any], bool]:
        """A running external run for ``external_id``, and whether it is new: the SDK may send its first
        request again (the answer was lost, or ``armscope sync`` uploads a spool twice), and gets the same run."""
        now = utcnow()
        with self._session() as s, s.begin():
            existing = s.scalar(select(Run).where(Run.external_id == external_id))
            if existing is not None:
                return run_to_dict(existing), False
            run = Run(
                name=name, status="running", config=config, method=EXTERNAL, dataset=dataset, seed=seed,
                queue=EXTERNAL, tags=list(dict.fromkeys(tags)), notes=notes, sweep_id=None, epochs=epochs,
                created_at=now, started_at=now, heartbeat_at=now, worker=f"sdk:{external_id}", attempt=1,
                external_id=external_id,
            )
            s.add(run)
            s.flush()
            s.add_all(RunTag(run_id=run.id, tag=t) for t in run.tags)
        return run_to_dict(run), True

    def _external(self, s: Session, run_id: int, external_id: str) -> Run:
        run = s.get(Run, run_id)
        if run is None or run.external_id is None:
            raise RunNotFound(run_id)
        if run.external_id != external_id:
            raise IllegalTransition(f"run {run_id} belongs to another script: its key does not match")
        return run

    def log_external(self, run_id: int, external_id: str, records: Sequence[dict[str, Any]]) -> bool:
        """Merge each record into its epoch (keys logged again for an epoch replace the old values, so
        sending a batch twice stores it once) and count as the script's heartbeat. A run the reaper
        marked crashed while its script could not reach the server runs again. Returns whether a cancel
        was asked for."""
        with self._session() as s, s.begin():
            run = self._external(s, run_id, external_id)
            if run.status == "crashed":
                run.status, run.finished_at = "running", None
                self._event(s, run_id, run.epoch, "resumed", "info",
                            "the script logging this run is heartbeating again after it was marked crashed")
            if run.status == "running":
                run.heartbeat_at = utcnow()
            for record in records:
                self._merge_epoch(s, run, record)
            return bool(run.cancel_requested)

    def _merge_epoch(self, s: Session, run: Run, record: dict[str, Any]) -> None:
        epoch = int(record["epoch"])
        stmt = self._insert(EpochMetrics).values(run_id=run.id, epoch=epoch, record=record)
        if self.dialect == "postgresql":
            merged = EpochMetrics.record.op("||", return_type=EpochMetrics.record.type)(stmt.excluded.record)
        else:
            merged = func.json_patch(EpochMetrics.record, stmt.excluded.record)
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "epoch"], set_={"record": merged})
        stored = s.execute(stmt.returning(EpochMetrics.record)).scalar_one()
        if isinstance(stored, str):  # SQLite's json_patch answers text
            stored = from_json(stored)
        if epoch >= run.epoch:
            run.epoch = epoch
            run.last_val_acc = stored.get("val_acc")
            run.dominant = stored.get("dominant")
        best = stored.get("val_acc")
        if isinstance(best, (int, float)) and (run.best_val_acc is None or best > run.best_val_acc):
            run.best_val_acc = best

    def finish_external(self, run_id: int, external_id: str, status: str, error: str | None = None) -> dict[str, Any]:
        """End an external run as its script reports; the same report again changes nothing."""
        if status not in TERMINAL:
            raise ValueError(f"status: {status!r} is not terminal")
        with self._session() as s, s.begin():
            run = self._external(s, run_id, external_id)
            if run.status not in ("running", "crashed") and run.status != status:
                raise IllegalTransition(f"run {run_id} already ended {run.status}; it cannot end {status} too")
            if run.status != status:
                run.status, run.error, run.finished_at = status, error, utcnow()
                run.cancel_requested, run.heartbeat_at = False, utcnow()
        return self.get_run(run_id)

    # -- what /health reports ---------------------------------------------------------

    def known_workers(self, timeout: float) -> list[dict[str, Any]]:
        """Every worker in the store, whether it heartbeated within ``timeout`` seconds, and the running
        runs it holds. A worker's processes claim runs as ``<worker>:<pid>`` (one per pool process)."""
        cutoff = utcnow() - timedelta(seconds=timeout)
        with self._session() as s:
            workers = list(s.scalars(select(Worker).order_by(Worker.name)))
            running = s.execute(select(Run.id, Run.worker).where(Run.status == "running").order_by(Run.id)).all()
        held: dict[str, list[int]] = {}
        for run_id, process in running:
            held.setdefault((process or "").rpartition(":")[0], []).append(run_id)
        return [
            {"name": w.name, "queues": [q for q in w.queues.split(",") if q],
             "alive": _aware(w.heartbeat_at) >= cutoff, "started_at": _aware(w.started_at),
             "heartbeat_at": _aware(w.heartbeat_at), "runs": held.get(w.name, [])}
            for w in workers
        ]

    def queued_per_queue(self) -> dict[str, int]:
        """Runs waiting in each queue: queued, whether or not a worker has received the message yet."""
        with self._session() as s:
            rows = s.execute(select(Run.queue, func.count()).where(Run.status == "queued").group_by(Run.queue)).all()
        return {queue: count for queue, count in rows}


def _pick(record: dict[str, Any], keys: Sequence[str] | None) -> dict[str, Any]:
    if not keys:
        return record
    picked = {"epoch": record["epoch"]}
    picked.update((k, record[k]) for k in keys if k in record)
    return picked


def _thin(records: list[dict[str, Any]], points: int | None) -> list[dict[str, Any]]:
    """Evenly spaced records, always keeping the first and the last."""
    n = len(records)
    if not points or n <= points:
        return records
    if points == 1:
        return [records[-1]]
    chosen = sorted({round(i * (n - 1) / (points - 1)) for i in range(points)})
    return [records[i] for i in chosen]
