"""The Celery application. Broker from ARMSCOPE_BROKER_URL; no result backend (the store has the status)."""

from __future__ import annotations

from celery import Celery
from kombu.exceptions import ChannelError

from backend.settings import Settings, get_settings

RUN_TASK = "armscope.run"


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    settings.ensure_home()
    app = Celery("armscope", broker=settings.resolved_broker_url, include=["workers.tasks"])
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


def queue_for(config: dict[str, object]) -> str:
    """Runs that ask for CUDA go to GPU workers; everything else to the CPU queue."""
    return "gpu" if config.get("device") == "cuda" else "cpu"


app = make_celery()
