"""`armscope serve`: the API and the dashboard (from one process or several), the reaper and an embedded worker."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import signal
import subprocess
import sys

import uvicorn
from fastapi import FastAPI

from backend.api import create_app
from backend.queue import CeleryQueue
from backend.settings import get_settings
from backend.store import Store
from workers.reaper import Reaper

WORKER_STOP_SECONDS = 30
PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """Ask Linux to send SIGTERM (a warm shutdown) to the worker if the server dies first."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def start_worker(queues: str, concurrency: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "armscope", "worker", "--queues", queues, "--concurrency", str(concurrency)]
    # Its own process group: Ctrl-C reaches the server only, which then stops the worker in order.
    # uvicorn ends the process on SIGTERM without unwinding, so the kernel stops the worker then.
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_stop_with_parent)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown: a running run is re-queued at its next batch and resumes on the next start."""
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(WORKER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def freeze_long_lived() -> None:
    """Everything built before serving lives as long as the server: keep it out of the
    collector's full passes, which otherwise stall every request for ~250 ms."""
    gc.collect()
    gc.freeze()


def served_app() -> FastAPI:
    """The app of one of several server processes (uvicorn calls this in each): the schema is
    already migrated by the process that started them, and each keeps its own connections."""
    settings = get_settings()
    app = create_app(settings, Store(settings.resolved_database_url))
    freeze_long_lived()
    return app


def serve(host: str, port: int, with_worker: bool, queues: str, concurrency: int, processes: int) -> None:
    """Serve HTTP from ``processes`` processes; the reaper and the embedded worker are one each, beside them."""
    settings = get_settings()
    settings.ensure_home()
    store = Store(settings.resolved_database_url)
    store.upgrade()
    queue = CeleryQueue(settings)
    # Several processes each build their app (uvicorn imports it by name in each); one serves this one.
    app: FastAPI | str = create_app(settings, store, queue) if processes == 1 else "backend.serve:served_app"
    freeze_long_lived()
    reaper = Reaper(store, settings, queue.enqueue, waiting=queue.waiting)
    reaper.start()
    worker = start_worker(queues, concurrency) if with_worker else None
    print(f"armscope serving at http://{host}:{port}  (API http://{host}:{port}/api/v1, docs /docs)", flush=True)
    print(f"  database {store.engine.url.render_as_string(hide_password=True)}", flush=True)
    print(f"  runs in {settings.home / 'runs'}", flush=True)
    print(f"  embedded worker pid {worker.pid}" if worker else "  no embedded worker", flush=True)
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
        if worker is not None:
            stop_worker(worker)
        store.dispose()
