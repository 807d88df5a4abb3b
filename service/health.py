"""Whether what waits can be trained: the installation's state as every server process sees it (from the database)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from armscope import __version__
from service.catalog import broken
from service.db.store import Store
from service.settings import Settings


def health(settings: Settings, store: Store) -> dict[str, Any]:
    """Status ``degraded`` (with a ``detail``) while runs wait in a queue no live worker takes from,
    or when the database does not answer (``workers`` is then None)."""
    broker = settings.resolved_broker_url.split(":", 1)[0]
    report: dict[str, Any] = {
        "status": "ok",
        "version": __version__,
        "auth": "token" if settings.api_token else "open",
        "database": settings.resolved_database_url.split(":", 1)[0].split("+")[0],
        "broker": "embedded" if broker.startswith("sqla") else broker,
        "workers": None,
        "queued": {},
        "unserved_queues": [],
        "broken_plugins": broken(),
    }
    try:
        workers = store.known_workers(settings.heartbeat_timeout)
        queued = store.queued_per_queue()
    except SQLAlchemyError as exc:
        failure = getattr(exc, "orig", None) or exc
        return {**report, "status": "degraded", "detail": f"the database did not answer ({type(failure).__name__})"}
    served = {queue for worker in workers if worker["alive"] for queue in worker["queues"]}
    unserved = sorted(queue for queue in queued if queue not in served)
    report.update(workers=workers, queued=queued, unserved_queues=unserved)
    if unserved:
        waiting = ", ".join(f"queue {queue!r} ({queued[queue]} waiting)" for queue in unserved)
        report.update(status="degraded", detail=f"no live worker takes runs from {waiting}")
    return report
