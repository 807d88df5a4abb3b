"""A real `armscope serve --no-worker` that a test may kill (SIGKILL) and start again on the same port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.service_support import free_port, wait_for, wait_for_server


class BareServer:
    """The API and dashboard without a worker: external runs need none."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ARMSCOPE_")}
        self.env.update({"ARMSCOPE_HOME": str(home), **env})
        self.api = httpx.Client(base_url=f"{self.url}/api/v1", timeout=10)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BareServer:
        log = open(self.home / "serve.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "armscope", "serve", "--no-worker", "--port", str(self.port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for_server(self.url)
        return self

    def kill(self) -> None:
        """SIGKILL to the server and every process it started: nothing gets to clean up."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.api.close()

    def run(self, run_id: int) -> dict[str, Any]:
        return self.api.get(f"/runs/{run_id}").json()

    def metrics(self, run_id: int) -> list[dict[str, Any]]:
        return self.api.get(f"/runs/{run_id}/metrics").json()

    def wait_status(self, run_id: int, status: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for(lambda: (r := self.run(run_id))["status"] == status and r, timeout, f"run {run_id} {status}")
