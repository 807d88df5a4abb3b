"""Starting a worker: schema first, then Celery with settings suited to long training tasks."""

from __future__ import annotations

import os

from backend.settings import get_settings
from backend.store import Store


def run_worker(queues: str, concurrency: int, loglevel: str) -> None:
    Store(get_settings().resolved_database_url).upgrade()
    from workers import tasks  # noqa: F401  (registers the task)
    from workers.app import app

    # One run per process: the solo pool keeps the run in this process, where a
    # shutdown request can reach it and re-queue it cleanly.
    pool = "solo" if concurrency == 1 else "prefork"
    app.worker_main(
        [
            "worker",
            "--queues", queues,
            "--concurrency", str(concurrency),
            "--pool", pool,
            "--hostname", f"armscope-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel", loglevel,
        ]
    )
