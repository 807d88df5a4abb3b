"""Runs one claimed run through the engine, reporting to the store as it goes.

A background thread heartbeats and carries progress to the store, and brings
back a cancel request, so the training thread never waits on the database
between batches.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import torch
from pydantic import ValidationError

from armscope.config import RunConfig
from armscope.rundir import RunDir
from armscope.sinks import Sink
from armscope.train import train
from service.db.retry import with_retry
from service.db.store import LostOwnership, Store
from service.settings import Settings

log = logging.getLogger(__name__)


class DatabaseSink(Sink):
    """Commits every epoch and event as it happens, waiting out a database restart."""

    def __init__(self, store: Store, run_id: int, worker: str, retry_seconds: float) -> None:
        self.store, self.run_id, self.worker, self.retry_seconds = store, run_id, worker, retry_seconds
        self.latest: dict[str, int | str | None] = {}

    def environment(self, record: dict[str, Any]) -> None:
        with_retry(lambda: self.store.set_environment(self.run_id, self.worker, record), "recording the environment",
                   self.retry_seconds)

    def start(self, config: dict[str, Any], info: dict[str, Any]) -> None:
        epoch = info.get("resumed_from_epoch") or 0
        with_retry(lambda: self.store.discard_after(self.run_id, epoch), "discarding stale epochs", self.retry_seconds)

    def progress(self, epoch: int, step: int, steps: int, epochs: int, loss: float | None) -> None:
        self.latest = {"step": (epoch - 1) * steps + step, "total_steps": steps * epochs, "phase": None}

    def phase(self, epoch: int, what: str, done: int, total: int) -> None:
        self.latest = {**self.latest, "phase": f"{what} {done}/{total}"[:200]}

    def epoch(self, record: dict[str, Any]) -> None:
        with_retry(lambda: self.store.add_epoch(self.run_id, record), "storing an epoch", self.retry_seconds)

    def event(self, event: dict[str, Any]) -> None:
        with_retry(lambda: self.store.add_event(self.run_id, event), "storing an event", self.retry_seconds)


class Heartbeat(threading.Thread):
    def __init__(self, store: Store, run_id: int, worker: str, sink: DatabaseSink, interval: float) -> None:
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.store, self.run_id, self.worker, self.sink, self.interval = store, run_id, worker, sink, interval
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        try:
            if self.store.heartbeat(self.run_id, self.worker, self.sink.latest or None):
                self.cancel.set()
        except LostOwnership:
            self.lost.set()
            self.cancel.set()
        except Exception:  # a database blip must not kill the run; the next beat retries
            log.exception("heartbeat for run %s failed", self.run_id)


def execute(
    store: Store, settings: Settings, run_id: int, worker: str, stopping: threading.Event | None = None
) -> str:
    """Train a run this worker has claimed and record how it ended.

    If ``stopping`` is set (the worker is shutting down) the run stops at its
    next batch and goes back to the queue instead of ending as cancelled.
    """
    stopping = stopping or threading.Event()
    run = store.get_run(run_id)
    sink = DatabaseSink(store, run_id, worker, settings.db_retry_seconds)
    heartbeat = Heartbeat(store, run_id, worker, sink, settings.heartbeat_seconds)
    heartbeat.start()
    status, error, crashed = "failed", None, False
    if settings.run_threads is not None:
        torch.set_num_threads(settings.run_threads)
    try:
        config = RunConfig.model_validate(run["config"])
        run_dir = settings.run_dir(run_id)
        resume = RunDir(run_dir).holds_run()
        result = train(
            config, run_dir, sink, resume=resume,
            should_cancel=heartbeat.cancel.is_set,
            should_interrupt=stopping.is_set,
            run_folder=settings.run_dir,
        )
        status, error = result.status, result.error
    except ValidationError as exc:
        error, crashed = f"invalid config: {exc}", True
    except Exception as exc:
        log.exception("run %s failed", run_id)
        error, crashed = f"{type(exc).__name__}: {exc}", True
    finally:
        heartbeat.stopped.set()
        heartbeat.join()
    if heartbeat.lost.is_set():
        return "lost"
    if status == "interrupted":
        store.add_event(run_id, {"epoch": result.epochs_completed, "kind": "requeued", "level": "warning",
                                 "message": f"worker {worker} shut down; the run goes back to the queue "
                                            f"and resumes after epoch {result.epochs_completed}"})
        return "requeued" if store.requeue_run(run_id, worker) else "lost"
    if crashed:
        sink.event({"epoch": run["progress"]["epoch"], "kind": "failed", "level": "error", "message": error})
    # The last progress too: the heartbeat that would have carried it may never come.
    with_retry(lambda: store.finish_run(run_id, worker, status, error, sink.latest or None), "finishing the run",
               settings.db_retry_seconds)
    return status
