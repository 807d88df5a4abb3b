"""Starting real armscope processes (workers, servers) for the service tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARMSCOPE_")}
    env.update({"ARMSCOPE_HOME": str(home), "ARMSCOPE_HEARTBEAT_SECONDS": "0.2", **extra})
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = open(log, "wb")
    return subprocess.Popen([sys.executable, "-m", "armscope", *args], env=env, stdout=handle,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "condition", every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def run_of(api: Any, run_id: int) -> dict[str, Any]:
    """The run as the API serves it (``api``: a client whose base is the server, e.g. a TestClient)."""
    return api.get(f"/api/v1/runs/{run_id}").json()


def wait_status(api: Any, run_id: int, statuses: set[str], timeout: float = 90) -> dict[str, Any]:
    """The run once its status is one of ``statuses``."""
    return wait_for(lambda: (r := run_of(api, run_id))["status"] in statuses and r,
                    timeout, f"run {run_id} to become {statuses}")


def finished(api: Any, run_id: int, timeout: float = 120) -> dict[str, Any]:
    """The run once it has succeeded or failed."""
    return wait_status(api, run_id, {"succeeded", "failed"}, timeout)


def wait_for_worker(log: Path, timeout: float = 60) -> None:
    wait_for(lambda: log.exists() and b" ready." in log.read_bytes(), timeout, f"worker ready ({log})")


def wait_for_server(url: str, timeout: float = 60) -> None:
    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout, f"server at {url}")
