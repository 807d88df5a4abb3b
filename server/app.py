"""One app on one port: the API, and the dashboard for every path the API does not claim."""

from __future__ import annotations

from fastapi import FastAPI

from backend.api import create_api
from dashboard.context import Context
from server.memory import TrimMemory
from server.mount import mount_dashboard
from service.access import Access
from service.db.store import Store
from service.queue import CeleryQueue, Queue, make_celery
from service.settings import Settings, get_settings


def create_app(settings: Settings | None = None, store: Store | None = None, queue: Queue | None = None) -> FastAPI:
    """Build the app; tests pass their own store or queue, a server takes them from settings.

    The API and the dashboard share one store, queue and access rule, so a browser session may do
    the same on either. After a large request the process returns its freed memory (``server.memory``).
    """
    settings = settings or get_settings()
    settings.ensure_home()
    if store is None:
        store = Store(settings.resolved_database_url)
        store.upgrade()
    if queue is None:
        queue = CeleryQueue(make_celery(settings))
    access = Access.for_settings(settings, store.engine)
    app = create_api(settings, store, queue, access)
    mount_dashboard(app, Context(store=store, settings=settings, queue=queue, access=access))
    app.add_middleware(TrimMemory)
    return app
