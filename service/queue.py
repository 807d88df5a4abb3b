"""The task queue: the Celery app, which queue a run goes to, and how many messages wait in one.

Only a task name is sent, so a process that queues runs never imports training code. Building the
app needs the home folder (the embedded broker keeps its file there), so nothing is built at import.
"""

from __future__ import annotations

from typing import Protocol

from celery import Celery
from kombu.exceptions import ChannelError

from armscope.config import RunConfig
from service.settings import Settings

RUN_TASK = "armscope.run"


class Queue(Protocol):
    """Where use cases send a stored run; tests put a recording stand-in here."""

    def enqueue(self, run_id: int, queue: str) -> None: ...


def make_celery(settings: Settings) -> Celery:
    """The Celery app for ``settings``' broker; no result backend (the store has the status)."""
    settings.ensure_home()
    app = Celery("armscope", broker=settings.resolved_broker_url)
    app.conf.update(
        # A message is data, never code: pickled messages on a shared broker are refused unread.
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="cpu",
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # A broker restart must not abort a run in progress: it carries on and reports to the store.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_max_retries=None,
    )
    if not settings.resolved_broker_url.startswith("sqla"):
        # kombu's SQLAlchemy transport hands these to create_engine, which rejects them.
        app.conf.broker_transport_options = {"polling_interval": 0.5, "visibility_timeout": 3600}
    return app


def waiting_messages(app: Celery, queue: str) -> int:
    """Messages the broker holds for ``queue`` that no worker has taken yet.

    A queue the broker does not know holds nothing: that is what a broker
    restarted without persistence (Redis here) has left of it.
    """
    with app.connection_for_read() as connection:
        try:
            return int(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError:
            return 0


def queue_for(config: RunConfig) -> str:
    """Runs that ask for CUDA go to GPU workers; everything else to the CPU queue."""
    return "gpu" if config.device == "cuda" else "cpu"


class CeleryQueue:
    """The queue through a Celery app: what the server, the reaper and a worker passing a run on use."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def enqueue(self, run_id: int, queue: str) -> None:
        self.celery.send_task(RUN_TASK, args=[run_id], queue=queue)

    def waiting(self, queue: str) -> int:
        return waiting_messages(self.celery, queue)
