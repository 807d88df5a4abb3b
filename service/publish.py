"""Sending a queued run's message, and noting that it went out.

Storing a run as queued and publishing its message are two systems, so a
process can stop between them. Every transition to queued marks the run
unpublished; this clears the mark once the broker has the message, and the
reapers send again whatever stays unpublished (Store.take_unpublished).
"""

from __future__ import annotations

from typing import Callable

from service.db.store import Store


def publish(store: Store, send: Callable[[int, str], None], run_id: int, queue: str) -> None:
    send(run_id, queue)
    store.mark_published(run_id)
