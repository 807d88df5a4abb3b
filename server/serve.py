"""`armscope serve`: the API and the dashboard (from one process or several), the reaper and an embedded worker
that is restarted whenever it dies."""

from __future__ import annotations

import gc

import uvicorn
from fastapi import FastAPI

from server.app import create_app
from server.memory import limit_arenas
from server.supervisor import WorkerSupervisor, start_worker
from service.db.store import Store
from service.queue import CeleryQueue, make_celery
from service.reaper import Reaper
from service.settings import get_settings


def freeze_long_lived() -> None:
    """Everything built before serving lives as long as the server: keep it out of the
    collector's full passes, which otherwise stall every request for ~250 ms."""
    gc.collect()
    gc.freeze()


def served_app() -> FastAPI:
    """The app of one of several server processes (uvicorn calls this in each): the schema is
    already migrated by the process that started them, and each keeps its own connections."""
    limit_arenas()
    settings = get_settings()
    app = create_app(settings, Store(settings.resolved_database_url))
    freeze_long_lived()
    return app


def serve(host: str, port: int, with_worker: bool, queues: str, concurrency: int, processes: int) -> None:
    """Serve HTTP from ``processes`` processes; the reaper and the embedded worker are one each, beside them."""
    limit_arenas()
    settings = get_settings()
    settings.ensure_home()
    store = Store(settings.resolved_database_url)
    store.upgrade()
    queue = CeleryQueue(make_celery(settings))
    # Several processes each build their app (uvicorn imports it by name in each); one serves this one.
    app: FastAPI | str = create_app(settings, store, queue) if processes == 1 else "server.serve:served_app"
    freeze_long_lived()
    reaper = Reaper(store, settings, queue.enqueue, waiting=queue.waiting)
    reaper.start()
    supervisor = WorkerSupervisor(lambda: start_worker(queues, concurrency)) if with_worker else None
    if supervisor is not None:
        supervisor.start()
    print(f"armscope serving at http://{host}:{port}  (API http://{host}:{port}/api/v1, docs /docs)", flush=True)
    print(f"  database {store.engine.url.render_as_string(hide_password=True)}", flush=True)
    print(f"  runs in {settings.home / 'runs'}", flush=True)
    print(f"  embedded worker pid {supervisor.pid}, restarted if it dies" if supervisor else "  no embedded worker",
          flush=True)
    if processes > 1:
        print(f"  {processes} server processes", flush=True)
    if settings.api_token:
        read = " and a read-only token" if settings.read_token else ""
        print(f"  access needs ARMSCOPE_API_TOKEN{read} (browser: log in at /login)", flush=True)
    else:
        print("  WARNING: ARMSCOPE_API_TOKEN is not set: anyone who can reach this port can start, "
              "stop and delete runs", flush=True)
    try:
        uvicorn.run(app, factory=processes > 1, workers=processes, host=host, port=port, log_level="warning")
    finally:
        reaper.stop()
        if supervisor is not None:
            supervisor.stop()
        store.dispose()
