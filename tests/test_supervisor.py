"""The embedded worker's supervisor, on real child processes: a dead worker is reaped, its end logged, and
another started after a back-off; a stop stops it in order and starts none."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from server.supervisor import Backoff, WorkerSupervisor
from tests.service_support import wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
FAILING = [sys.executable, "-c", "raise SystemExit(3)"]


class Launcher:
    """Starts ``command`` each time it is called and keeps every process it started."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.started: list[subprocess.Popen[bytes]] = []

    def __call__(self) -> subprocess.Popen[bytes]:
        self.started.append(subprocess.Popen(self.command, start_new_session=True))
        return self.started[-1]


@pytest.fixture
def supervise():
    supervisors: list[WorkerSupervisor] = []

    def make(command: list[str], backoff: Backoff | None = None) -> tuple[WorkerSupervisor, Launcher]:
        launcher = Launcher(command)
        supervisor = WorkerSupervisor(launcher, backoff or Backoff(first=0.01), poll_seconds=0.02)
        supervisors.append(supervisor)
        supervisor.start()
        return supervisor, launcher

    yield make
    for supervisor in supervisors:
        supervisor.stop()


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False


def test_the_wait_doubles_while_the_worker_keeps_dying_young_up_to_its_cap():
    backoff = Backoff(first=1, cap=8, steady_after=60)
    assert [backoff.after(uptime=0.5) for _ in range(6)] == [1, 2, 4, 8, 8, 8]


def test_the_wait_starts_over_once_a_worker_stayed_up():
    backoff = Backoff(first=1, cap=8, steady_after=60)
    assert [backoff.after(uptime=0.5), backoff.after(uptime=0.5), backoff.after(uptime=600)] == [1, 2, 1]


@pytest.mark.service
def test_a_killed_worker_is_reaped_its_signal_logged_and_another_started(supervise, caplog):
    caplog.set_level(logging.WARNING, logger="server.supervisor")
    supervisor, launcher = supervise(SLEEPER)
    first = supervisor.pid
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: supervisor.restarts == 1 and supervisor.pid != first, 30, "a second worker")
    assert launcher.started[0].returncode == -signal.SIGKILL and not is_zombie(first)
    assert launcher.started[1].poll() is None
    assert f"the embedded worker (pid {first}) was killed by SIGKILL; starting another in 0.01 s" in caplog.messages
    assert f"embedded worker pid {supervisor.pid} started (restart 1)" in caplog.messages


@pytest.mark.service
def test_a_worker_that_keeps_exiting_is_started_again_after_ever_longer_waits(supervise, caplog):
    caplog.set_level(logging.WARNING, logger="server.supervisor")
    supervisor, launcher = supervise(FAILING, Backoff(first=0.01, cap=0.04, steady_after=60))
    wait_for(lambda: supervisor.restarts >= 4, 30, "four restarts")
    supervisor.stop()
    ends = [m for m in caplog.messages if "exited with code 3" in m]
    assert [m.rsplit(" in ", 1)[1] for m in ends[:4]] == ["0.01 s", "0.02 s", "0.04 s", "0.04 s"]
    assert [p.returncode for p in launcher.started[:4]] == [3, 3, 3, 3]


@pytest.mark.service
def test_stopping_stops_the_worker_in_order_and_starts_no_other(supervise, caplog):
    caplog.set_level(logging.WARNING, logger="server.supervisor")
    supervisor, launcher = supervise(SLEEPER)
    supervisor.stop()
    assert not supervisor.is_alive()
    assert [p.returncode for p in launcher.started] == [-signal.SIGTERM]
    assert caplog.messages == []
