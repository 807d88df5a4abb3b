"""What route handlers get injected: what the composition root built the API with."""

from __future__ import annotations

from fastapi import Request

from service.access import Access
from service.db.store import Store
from service.queue import Queue
from service.settings import Settings


def store(request: Request) -> Store:
    return request.app.state.store


def settings(request: Request) -> Settings:
    return request.app.state.settings


def queue(request: Request) -> Queue:
    return request.app.state.queue


def access(request: Request) -> Access:
    return request.app.state.auth
