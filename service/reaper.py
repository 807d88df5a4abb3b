"""Noticing dead workers: every worker process, and the server, take back their runs.

Redis hands a dead consumer's unacknowledged message back only after its
visibility timeout (an hour), so liveness is tracked in the store instead: a
worker heartbeats, and any process that sees a stale heartbeat re-queues the
run; the store makes sure exactly one of them does. The same pass sends again
any queued run whose message a crash kept from the broker, or that a broker
restarted without persistence forgot.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from service.db.store import Store
from service.publish import publish
from service.settings import Settings

log = logging.getLogger(__name__)


class Reaper(threading.Thread):
    def __init__(
        self,
        store: Store,
        settings: Settings,
        enqueue: Callable[[int, str], None],
        node: str | None = None,
        queues: str = "",
        waiting: Callable[[str], int] | None = None,
    ) -> None:
        super().__init__(name="armscope-reaper", daemon=True)
        self.store, self.settings, self.enqueue = store, settings, enqueue
        self.node, self.queues, self.waiting = node, queues, waiting
        self.short: dict[str, set[int]] = {}
        self.interval = min(settings.heartbeat_timeout / 4, 5.0)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        try:
            if self.node:
                self.store.worker_alive(self.node, self.queues)
            for run in self.store.reap(self.settings.heartbeat_timeout):
                log.warning("re-queueing run %s: its worker died", run["id"])
                publish(self.store, self.enqueue, run["id"], run["queue"])
            self.find_lost_messages()
            for run in self.store.take_unpublished(self.settings.heartbeat_timeout):
                log.warning("sending run %s again: it was queued but its message never went out", run["id"])
                publish(self.store, self.enqueue, run["id"], run["queue"])
        except Exception:  # the store or broker may be restarting; try again next tick
            log.exception("reaper tick failed")

    def find_lost_messages(self) -> None:
        """Queued runs the broker holds fewer messages for than it should (a restart without persistence).

        The broker is counted before the store is read, so a message taken by a
        worker in between leaves the count high, never low. A shortfall must be
        seen on two ticks in a row; its runs are then marked unpublished, and
        the store hands each to exactly one reaper to send again.
        """
        if self.waiting is None:
            return
        short: dict[str, set[int]] = {}
        for queue in self.store.queues_with_waiting_runs():
            count = self.waiting(queue)
            ids = self.store.waiting_runs(queue)
            if len(ids) > count:
                short[queue] = set(ids)
        for queue, ids in short.items():
            lost = ids & self.short.get(queue, set())
            if lost:
                log.warning("the task queue %r holds fewer messages than queued runs: sending %s again", queue,
                            sorted(lost))
                self.store.mark_lost(sorted(lost), self.settings.heartbeat_timeout)
        self.short = short

    def stop(self) -> None:
        self.stopped.set()
        if self.node:
            try:
                self.store.worker_gone(self.node)
            except Exception:
                log.exception("could not deregister worker %s", self.node)
