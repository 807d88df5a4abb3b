"""The one task: claim the run, then hand it to the runner; and the worker's reaper, started and stopped
with the worker. ``install`` puts the task on the worker's Celery app (see server.worker)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from functools import lru_cache
from typing import Any

import billiard
from celery import Celery, Task
from celery.signals import worker_process_init, worker_ready, worker_shutdown, worker_shutting_down

from service.db.retry import with_retry
from service.db.store import Store
from service.publish import publish
from service.queue import RUN_TASK, CeleryQueue
from service.reaper import Reaper
from service.settings import get_settings
from workers.runner import execute


@lru_cache(maxsize=1)
def _store() -> Store:
    store = Store(get_settings().resolved_database_url)
    store.upgrade()
    return store


def worker_name(node: str) -> str:
    """The process that trains a run: its worker's node name and its own pid, so the runs of a
    worker's pool processes are known to be that worker's (/health lists them with it)."""
    return f"{node}:{os.getpid()}"


STOPPING = threading.Event()
# Sent by a shutting-down worker to its pool processes (--concurrency above 1), whose runs then
# stop within a batch and go back to the queue, as a single-process worker's do. Celery itself
# only waits for them, for as long as their runs take.
STOP_SIGNAL = signal.SIGUSR2
REAPERS: list[Reaper] = []
# Set in a prefork pool process, which then listens for STOP_SIGNAL while it trains.
IN_POOL = threading.Event()


def _stop_requested(*_: Any) -> None:
    STOPPING.set()


@worker_process_init.connect
def _prepare_pool_process(**_: Any) -> None:
    """Make a prefork child (``--concurrency`` above 1) a place where a run can go as in the main process.

    Celery marks its pool processes daemonic, and Python refuses children to
    those, so every run of an audio-visual data set (two loader processes by
    default) would fail there. The only children a run starts are loader
    workers, which end with their loader and exit when their parent dies.
    And a child learns of its worker's shutdown by STOP_SIGNAL, whose handler
    ``run_task`` installs again (see there why).
    """
    multiprocessing.current_process().daemon = False
    signal.signal(STOP_SIGNAL, _stop_requested)
    IN_POOL.set()


@worker_ready.connect
def _start_reaper(sender: Any, **_: Any) -> None:
    queues = ",".join(q.name for q in sender.task_consumer.queues) if sender.task_consumer else ""
    queue = CeleryQueue(sender.app)
    reaper = Reaper(_store(), get_settings(), queue.enqueue, node=sender.hostname, queues=queues, waiting=queue.waiting)
    reaper.tick()
    reaper.start()
    REAPERS.append(reaper)


@worker_shutting_down.connect
def _stop_runs(**_: Any) -> None:
    STOPPING.set()
    for child in billiard.process.active_children():
        if child.pid is not None:
            os.kill(child.pid, STOP_SIGNAL)


@worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    for reaper in REAPERS:
        reaper.stop()


def install(app: Celery) -> None:
    """Register the one task on ``app``, the Celery app of the worker about to start."""
    app.task(name=RUN_TASK, bind=True)(run_task)


def run_task(self: Task, run_id: int) -> str:
    if IN_POOL.is_set():
        # Again here: with a broker that has no event loop (the embedded one) the pool runs with threads,
        # and billiard then resets every handler after the process's initialiser, which turned STOP_SIGNAL
        # into an exit that left the run to the reapers.
        signal.signal(STOP_SIGNAL, _stop_requested)
    store, settings, queue = _store(), get_settings(), CeleryQueue(self.app)
    name = worker_name(self.request.hostname)
    if STOPPING.is_set():
        # Delivered while this worker shuts down: hand the message on untouched.
        store.mark_unpublished(run_id)
        publish(store, queue.enqueue, run_id, store.get_run(run_id)["queue"])
        return "passed on: worker stopping"
    with_retry(lambda: store.mark_delivered(run_id, self.request.hostname), "noting delivery", settings.db_retry_seconds)
    if settings.delivery_pause_seconds:
        time.sleep(settings.delivery_pause_seconds)
    if not with_retry(lambda: store.claim_run(run_id, name), "claiming the run", settings.db_retry_seconds):
        return "skipped: not queued"
    outcome = execute(store, settings, run_id, name, STOPPING)
    if outcome == "requeued":
        publish(store, queue.enqueue, run_id, store.get_run(run_id)["queue"])
    return outcome
