"""An `armscope serve` of a temporary home for the benchmarks that measure the service as it runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    home: Path, port: int, *options: str, worker: bool = False, wait: float = 60
) -> subprocess.Popen[bytes]:
    """`armscope serve` on ``home`` (plus ``options``; without its embedded worker unless ``worker``), once its
    health answers 200."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARMSCOPE_")}
    env["ARMSCOPE_HOME"] = str(home)
    command = [sys.executable, "-m", "armscope", "serve", "--port", str(port), *options]
    proc = subprocess.Popen(
        command if worker else [*command, "--no-worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"the server did not start within {wait:.0f} s")
