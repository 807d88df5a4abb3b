"""Sending runs to the workers. The API only publishes a task name; it never imports training code."""

from __future__ import annotations

from celery import Celery

from backend.settings import Settings
from workers.app import RUN_TASK, make_celery, waiting_messages


class CeleryQueue:
    def __init__(self, settings: Settings) -> None:
        self.celery: Celery = make_celery(settings)

    def enqueue(self, run_id: int, queue: str) -> None:
        self.celery.send_task(RUN_TASK, args=[run_id], queue=queue)

    def waiting(self, queue: str) -> int:
        return waiting_messages(self.celery, queue)
