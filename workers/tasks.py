"""The one task: claim the run, then hand it to the runner."""

from __future__ import annotations

import os
import socket
import threading
from functools import lru_cache
from typing import Any

from celery.signals import worker_shutting_down

from backend.settings import get_settings
from backend.store import Store
from workers.app import RUN_TASK, app
from workers.runner import execute


@lru_cache(maxsize=1)
def _store() -> Store:
    store = Store(get_settings().resolved_database_url)
    store.upgrade()
    return store


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


STOPPING = threading.Event()


@worker_shutting_down.connect
def _stop_runs(**_: Any) -> None:
    STOPPING.set()


@app.task(name=RUN_TASK)
def run_task(run_id: int) -> str:
    store = _store()
    name = worker_name()
    if STOPPING.is_set():
        # Delivered while this worker shuts down: hand the message on untouched.
        run_task.apply_async((run_id,), queue=store.get_run(run_id)["queue"])
        return "passed on: worker stopping"
    if not store.claim_run(run_id, name):
        return "skipped: not queued"
    outcome = execute(store, get_settings(), run_id, name, STOPPING)
    if outcome == "requeued":
        run_task.apply_async((run_id,), queue=store.get_run(run_id)["queue"])
    return outcome
