"""Starting a worker: schema first, then Celery with the one task and settings suited to long training tasks."""

from __future__ import annotations

import os

from service.db.store import Store
from service.queue import make_celery
from service.settings import get_settings
from workers.tasks import install

RUN_THREADS = "ARMSCOPE_RUN_THREADS"


def threads_per_run(concurrency: int) -> int:
    """The cores each of ``concurrency`` runs may use: torch's default, every core for every run, makes two runs on
    two cores spend their time waiting for each other's threads."""
    return max(1, (os.cpu_count() or 1) // concurrency)


def run_worker(queues: str, concurrency: int, loglevel: str) -> None:
    # Before the settings are first read, so this process and the pool's children all see it.
    os.environ.setdefault(RUN_THREADS, str(threads_per_run(concurrency)))
    settings = get_settings()
    Store(settings.resolved_database_url).upgrade()
    app = make_celery(settings)
    install(app)
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
