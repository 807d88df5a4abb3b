"""The store: runs, sweeps, epochs, events and workers in SQL. Every face reaches it through the service.

Every lifecycle transition is a single conditional UPDATE, so two processes
racing for the same run cannot both win, on SQLite or PostgreSQL alike.
"""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from pydantic_core import from_json
from sqlalchemy import (
    ColumnElement,
    Engine,
    Subquery,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import EpochMetrics, Event, Run, RunTag, SavedView, Sweep, Worker, utcnow
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
# Run names: the column's width, the room kept for a "-<n>" suffix, and the PostgreSQL advisory lock key
# that serialises naming ("arms").
MAX_NAME = 200
SUFFIX_ROOM = 10
NAMING_LOCK = 0x61726D73


class RunNotFound(NotFound):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"run {run_id} does not exist")
        self.run_id = run_id


class SweepNotFound(NotFound):
    def __init__(self, sweep_id: int) -> None:
        super().__init__(f"sweep {sweep_id} does not exist")
        self.sweep_id = sweep_id


class ViewExists(Conflict):
    """A saved view's name is taken on its page (names are unique per page)."""

    def __init__(self, page: str, name: str) -> None:
        super().__init__(f"a view named {name!r} is already saved on the {page} page: choose another name, "
                         "or delete that view first")


class ViewNotFound(NotFound):
    def __init__(self, view_id: int) -> None:
        super().__init__(f"saved view {view_id} does not exist")


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
            "status": run.status, "config": run.config, "external": run.external_id is not None,
            "project": run.project}


def run_to_dict(run: Run, now: datetime | None = None, position: int | None = None) -> dict[str, Any]:
    """A run as every face shows it; ``position`` is a queued run's place in its queue (1: next)."""
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
        "project": run.project,
        "queue_position": position if run.status == "queued" else None,
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
        "environment": run.environment,
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
        """A queued run of ``config``, named uniquely (see :meth:`_name_uniquely`)."""
        with self._session() as s, s.begin():
            run = self._new_run(s, config, queue, sweep_id)
            self._name_uniquely(s, [run])
            position = self._queue_positions(s, [run.id]).get(run.id)
        return run_to_dict(run, position=position)

    def create_sweep(
        self, spec: dict[str, Any], configs: Iterable[tuple[dict[str, Any], str]], name: str | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A sweep and all its runs in one transaction: all are stored or none."""
        with self._session() as s, s.begin():
            sweep = Sweep(name=name, spec=spec, project=spec.get("project") or (spec.get("config") or {}).get("project"))
            s.add(sweep)
            s.flush()
            runs = [self._new_run(s, config, queue, sweep.id) for config, queue in configs]
            self._name_uniquely(s, runs)
            positions = self._queue_positions(s, [r.id for r in runs])
        return {"id": sweep.id, "name": sweep.name, "created_at": _aware(sweep.created_at), "project": sweep.project}, [
            run_to_dict(r, position=positions.get(r.id)) for r in runs
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
            project=config.get("project"),
            epochs=config["epochs"],
            created_at=utcnow(),
        )
        s.add(run)
        s.flush()
        for tag in run.tags:
            s.add(RunTag(run_id=run.id, tag=tag))
        return run

    def _name_uniquely(self, s: Session, runs: Sequence[Run]) -> None:
        """Give each of these freshly stored runs a name no other run has: a name already taken, whether
        asked for or generated, gets the first free suffix ``-2``, ``-3``... (two sweeps each made
        ``arm-synthetic-shift-s0``, and the wrong runs were compared).

        Race-safe: on PostgreSQL a transaction-scoped advisory lock serialises naming across processes;
        on SQLite the transaction already holds the database's write lock (it has written these runs),
        so no other writer can store a run before it commits."""
        self._lock_names(s)
        ids = [run.id for run in runs]
        taken = self._taken_names(s, [run.name for run in runs], ids)
        for run in runs:
            run.name = _free_name(run.name, taken)
            taken.add(run.name)
        s.flush()

    def _lock_names(self, s: Session) -> None:
        if self.dialect == "postgresql":
            s.execute(select(func.pg_advisory_xact_lock(NAMING_LOCK)))

    @staticmethod
    def _taken_names(s: Session, wanted: Sequence[str], own: Sequence[int]) -> set[str]:
        """The names of other runs that a wanted name, or its suffixed forms, would clash with."""
        others = Run.id.not_in(list(own))
        distinct = list(dict.fromkeys(wanted))
        taken: set[str] = set()
        for chunk in _chunks(distinct, 500):
            taken.update(s.scalars(select(Run.name).where(others, Run.name.in_(chunk))))
        repeated = {name for name, count in Counter(wanted).items() if count > 1}
        clashing = [name for name in distinct if name in taken or name in repeated]
        for chunk in _chunks(clashing, 100):
            stems = [Run.name.startswith(name[:MAX_NAME - SUFFIX_ROOM], autoescape=True) for name in chunk]
            taken.update(s.scalars(select(Run.name).where(others, or_(*stems))))
        return taken

    # -- reading ----------------------------------------------------------------

    def get_run(self, run_id: int) -> dict[str, Any]:
        with self._session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise RunNotFound(run_id)
            position = self._queue_positions(s, [run_id]).get(run_id) if run.status == "queued" else None
            return run_to_dict(run, position=position)

    @staticmethod
    def _queue_positions(s: Session, run_ids: Sequence[int]) -> dict[int, int]:
        """Each of these runs that is queued: its place in its queue (1: next), counting the queued runs of
        the same queue created before it. One query for a whole page of runs."""
        if not run_ids:
            return {}
        order = func.row_number().over(partition_by=Run.queue, order_by=(Run.created_at, Run.id))
        ranked = select(Run.id, order.label("position")).where(Run.status == "queued").subquery()
        rows = s.execute(select(ranked.c.id, ranked.c.position).where(ranked.c.id.in_(list(run_ids)))).all()
        return {run_id: position for run_id, position in rows}

    def get_sweep(self, sweep_id: int) -> dict[str, Any]:
        """A sweep as it was asked (its spec) and the number of its runs in each status."""
        with self._session() as s:
            sweep = s.get(Sweep, sweep_id)
            if sweep is None:
                raise SweepNotFound(sweep_id)
            counts = self._sweep_counts(s, [sweep_id])
        return _sweep_to_dict(sweep, counts.get(sweep_id, {}))

    def list_sweeps(self, *, project: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest sweeps first (of ``project`` when given), each with its runs counted by status."""
        query = select(Sweep).order_by(Sweep.id.desc()).limit(limit)
        if project is not None:
            query = query.where(Sweep.project == project)
        with self._session() as s:
            sweeps = list(s.scalars(query))
            counts = self._sweep_counts(s, [sweep.id for sweep in sweeps])
        return [_sweep_to_dict(sweep, counts.get(sweep.id, {})) for sweep in sweeps]

    @staticmethod
    def _sweep_counts(s: Session, sweep_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Runs per status of each sweep, in one grouped query."""
        rows = s.execute(
            select(Run.sweep_id, Run.status, func.count())
            .where(Run.sweep_id.in_(list(sweep_ids)))
            .group_by(Run.sweep_id, Run.status)
        ).all()
        counts: dict[int, dict[str, int]] = {}
        for sweep_id, status, count in rows:
            counts.setdefault(sweep_id, {})[status] = count
        return counts

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
        project: str | None = None,
        sort: str = "-created_at",
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of runs, newest first by default, with a keyset cursor for the next page; each queued one
        with its place in its queue."""
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
        if project:
            query = query.where(Run.project == project)
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
            positions = self._queue_positions(s, [r.id for r in page if r.status == "queued"])
        next_cursor = None
        if more:
            last = page[-1]
            value = last.best_val_acc if field == "best_val_acc" else getattr(last, field)
            if field == "best_val_acc" and value is None:
                value = -1.0
            next_cursor = _encode_cursor([value, last.id])
        now = utcnow()
        return [run_to_dict(r, now, positions.get(r.id)) for r in page], next_cursor

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

    def metric_keys(self, run_id: int) -> set[str]:
        """Every key any of the run's epoch records holds, gathered by the database in one query."""
        if self.dialect == "postgresql":
            query = select(func.jsonb_object_keys(EpochMetrics.record)).where(EpochMetrics.run_id == run_id)
        else:
            each = func.json_each(EpochMetrics.record).table_valued("key")
            query = select(each.c.key).select_from(EpochMetrics).join(each, true()).where(EpochMetrics.run_id == run_id)
        with self._session() as s:
            return set(s.scalars(query.distinct()))

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

    def finished_runs(self, dataset: str, project: str | None = None) -> list[dict[str, Any]]:
        """Every succeeded run on ``dataset`` (in ``project``, when given), oldest first, as a comparison shows
        it, with ``final``: its last epoch's record. One query, however many runs: the benchmark's rows."""
        last = _last_epochs()
        query = (
            select(Run, EpochMetrics.record)
            .join(last, last.c.run_id == Run.id)
            .join(EpochMetrics, (EpochMetrics.run_id == Run.id) & (EpochMetrics.epoch == last.c.epoch))
            .where(Run.dataset == dataset, Run.status == "succeeded", Run.external_id.is_(None))
            .order_by(Run.id)
        )
        if project:
            query = query.where(Run.project == project)
        with self._session() as s:
            rows = s.execute(query).all()
        return [{**_compared(run), "final": record} for run, record in rows]

    def projects(self) -> list[str]:
        """Every project name a run or a sweep carries, sorted."""
        names = select(Run.project).where(Run.project.is_not(None)).union(
            select(Sweep.project).where(Sweep.project.is_not(None))
        )
        with self._session() as s:
            return sorted(s.scalars(names))

    def curves(self, run_id: int, keys: Sequence[str] | None = None, points: int | None = None) -> list[dict[str, Any]]:
        """One run's epoch records (only ``keys`` and the epoch when given), thinned to ``points`` epochs."""
        with self._session() as s:
            rows = s.scalars(
                select(EpochMetrics.record).where(EpochMetrics.run_id == run_id).order_by(EpochMetrics.epoch)
            ).all()
        return [_pick(r, keys) for r in _thin(list(rows), points)]

    def last_records(self, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Each run's last epoch record by run id (runs without epochs are left out). One query however many
        runs: the runs table's ``last:`` columns for a page of runs."""
        if not run_ids:
            return {}
        last = _last_epochs(EpochMetrics.run_id.in_(list(run_ids)))
        query = select(EpochMetrics.run_id, EpochMetrics.record).join(
            last, (last.c.run_id == EpochMetrics.run_id) & (last.c.epoch == EpochMetrics.epoch)
        )
        with self._session() as s:
            return {run_id: record for run_id, record in s.execute(query).all()}

    def best_values(self, run_ids: Sequence[int], keys: Mapping[str, bool]) -> dict[int, dict[str, float]]:
        """Per run, the largest value each key took over its epochs, the smallest where ``keys[key]`` is true
        (lower is better); values that are not numbers are skipped. One aggregate query for every run and key,
        so no epoch record leaves the database: the runs table's ``best:`` columns."""
        if not run_ids or not keys:
            return {}
        names = list(keys)
        best = [(func.min if keys[k] else func.max)(self._number_at(k)) for k in names]
        query = (
            select(EpochMetrics.run_id, *best)
            .where(EpochMetrics.run_id.in_(list(run_ids)))
            .group_by(EpochMetrics.run_id)
        )
        with self._session() as s:
            rows = s.execute(query).all()
        return {row[0]: {k: float(v) for k, v in zip(names, row[1:]) if v is not None} for row in rows}

    def _number_at(self, key: str) -> ColumnElement[Any]:
        """An epoch record's value at ``key`` where it is a JSON number; NULL for text, booleans or no value
        (a cast would read text as 0 on SQLite and fail on PostgreSQL). ``key`` holds no double quote."""
        if self.dialect == "postgresql":
            value = EpochMetrics.record[key]
            return case((func.jsonb_typeof(value) == "number", value.as_float()))
        path = f'$."{key}"'
        return case(
            (func.json_type(EpochMetrics.record, path).in_(["integer", "real"]),
             func.json_extract(EpochMetrics.record, path))
        )

    # -- saved views ----------------------------------------------------------------

    def saved_views(self, page: str | None = None) -> list[dict[str, Any]]:
        """The saved views of ``page`` (every page's when None), by name."""
        query = select(SavedView).order_by(SavedView.page, func.lower(SavedView.name), SavedView.id)
        if page is not None:
            query = query.where(SavedView.page == page)
        with self._session() as s:
            return [_view_to_dict(v) for v in s.scalars(query)]

    def add_saved_view(self, page: str, name: str, query: str) -> dict[str, Any]:
        """Store a named view; the unique (page, name) constraint refuses a taken name, even in a race."""
        try:
            with self._session() as s, s.begin():
                view = SavedView(page=page, name=name, query=query, created_at=utcnow())
                s.add(view)
                s.flush()
        except IntegrityError:
            raise ViewExists(page, name) from None
        return _view_to_dict(view)

    def delete_saved_view(self, view_id: int) -> None:
        with self._session() as s, s.begin():
            if not s.execute(delete(SavedView).where(SavedView.id == view_id)).rowcount:
                raise ViewNotFound(view_id)

    # -- editing ----------------------------------------------------------------

    def update_run(
        self, run_id: int, *, name: str | None = None, tags: list[str] | None = None, notes: str | None = None,
        project: str | None = None,
    ) -> dict[str, Any]:
        """Change the fields given; ``project=""`` takes the run out of any project."""
        with self._session() as s, s.begin():
            run = s.get(Run, run_id)
            if run is None:
                raise RunNotFound(run_id)
            if name is not None:
                self._rename(s, run_id, name)
            if notes is not None:
                run.notes = notes
            if project is not None:
                run.project = project or None
            if tags is not None:
                run.tags = list(dict.fromkeys(tags))
                s.execute(delete(RunTag).where(RunTag.run_id == run_id))
                s.add_all(RunTag(run_id=run_id, tag=t) for t in run.tags)
        return self.get_run(run_id)

    def _rename(self, s: Session, run_id: int, name: str) -> None:
        """Names are unique: renaming a run to another run's name is a Conflict naming that run. The UPDATE
        comes first, so on SQLite the check runs under the write lock; PostgreSQL takes the naming lock."""
        self._lock_names(s)
        s.execute(update(Run).where(Run.id == run_id).values(name=name))
        holder = s.scalar(select(Run.id).where(Run.name == name, Run.id != run_id).limit(1))
        if holder is not None:
            raise Conflict(f"run {holder} is already named {name!r}; run names are unique")

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

    def finish_run(
        self, run_id: int, worker: str, status: str, error: str | None = None,
        progress: dict[str, int | str | None] | None = None,
    ) -> bool:
        """End a worker's run; ``progress`` is its last (a heartbeat may not have carried it: a finished run
        would say step 374 of 375)."""
        if status not in TERMINAL:
            raise ValueError(f"status: {status!r} is not terminal")
        with self._session() as s, s.begin():
            result = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.worker == worker, Run.status == "running")
                .values({**(progress or {}), "status": status, "error": error, "finished_at": utcnow(),
                         "cancel_requested": False, "phase": None})
            )
            return result.rowcount == 1

    def set_environment(self, run_id: int, worker: str, environment: dict[str, Any]) -> bool:
        """Record where and with what the worker's run trains (``armscope.environment``); False when the
        worker no longer holds the run."""
        with self._session() as s, s.begin():
            result = s.execute(
                update(Run).where(Run.id == run_id, Run.worker == worker, Run.status == "running")
                .values(environment=environment)
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
                _note_epoch(run, epoch, record)
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
        tags: list[str], notes: str = "", environment: dict[str, Any] | None = None, project: str | None = None,
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
                external_id=external_id, environment=environment, project=project,
            )
            s.add(run)
            s.flush()
            s.add_all(RunTag(run_id=run.id, tag=t) for t in run.tags)
            self._name_uniquely(s, [run])
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
        _note_epoch(run, epoch, stored)

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


def _sweep_to_dict(sweep: Sweep, counts: dict[str, int]) -> dict[str, Any]:
    return {"id": sweep.id, "name": sweep.name, "project": sweep.project, "spec": sweep.spec,
            "created_at": _aware(sweep.created_at), "counts": counts, "run_count": sum(counts.values())}


def _view_to_dict(view: SavedView) -> dict[str, Any]:
    return {"id": view.id, "page": view.page, "name": view.name, "query": view.query,
            "created_at": _aware(view.created_at)}


def _free_name(wanted: str, taken: set[str]) -> str:
    """``wanted`` if no run has it, else the first of ``wanted-2``, ``wanted-3``... that none has (cut to fit)."""
    if wanted not in taken:
        return wanted
    number = 2
    while (candidate := f"{wanted[:MAX_NAME - SUFFIX_ROOM]}-{number}") in taken:
        number += 1
    return candidate


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (items[i:i + size] for i in range(0, len(items), size))


def _last_epochs(*where: ColumnElement[bool]) -> Subquery:
    """(run_id, epoch) of each run's last stored epoch, among the epochs ``where`` keeps: joined back to
    the epoch table, every run's last record in one query."""
    return (
        select(EpochMetrics.run_id, func.max(EpochMetrics.epoch).label("epoch"))
        .where(*where)
        .group_by(EpochMetrics.run_id)
        .subquery()
    )


def _note_epoch(run: Run, epoch: int, record: dict[str, Any]) -> None:
    """Keep a run's summary columns with an epoch's record: the latest epoch's fused accuracy and dominant
    modality (a re-delivered or late older epoch leaves them), the best fused accuracy of any."""
    if epoch >= run.epoch:
        run.epoch, run.last_val_acc, run.dominant = epoch, record.get("val_acc"), record.get("dominant")
    val_acc = record.get("val_acc")
    if isinstance(val_acc, (int, float)) and (run.best_val_acc is None or val_acc > run.best_val_acc):
        run.best_val_acc = val_acc


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
