"""What route handlers get injected: the store, the settings and the queue."""

from __future__ import annotations

from typing import Protocol

from fastapi import Request

from backend.settings import Settings
from backend.store import Store


class Queue(Protocol):
    def enqueue(self, run_id: int, queue: str) -> None: ...


def store(request: Request) -> Store:
    return request.app.state.store


def settings(request: Request) -> Settings:
    return request.app.state.settings


def queue(request: Request) -> Queue:
    return request.app.state.queue
