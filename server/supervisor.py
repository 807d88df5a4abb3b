"""Keeping `armscope serve`'s embedded worker running: restarted after it dies, stopped in order with the server.

A worker that dies (SIGKILL, out of memory) leaves its run to the reapers, which
re-queue it once its heartbeat is stale; without a worker to take it back, the run
would wait for ever. The supervisor reaps the dead process (no zombie), logs why it
ended and starts another, waiting longer after each death in a row so a worker
that cannot start does not spin.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

WORKER_STOP_SECONDS = 30
PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """Ask Linux to send SIGTERM (a warm shutdown) to the worker if the server dies first.

    Linux sends it when the *thread* that started the worker ends: the server's main
    thread, or the supervisor's, which lives until it has stopped the worker itself.
    """
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


def exit_reason(returncode: int) -> str:
    """How a process ended, as Popen reports it (a negative code is the signal that killed it)."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


class Backoff:
    """Seconds to wait before each restart: ``first``, doubling up to ``cap`` while the worker
    keeps dying young, and ``first`` again once one has stayed up ``steady_after`` seconds."""

    def __init__(self, first: float = 1.0, cap: float = 60.0, steady_after: float = 60.0) -> None:
        self.first, self.cap, self.steady_after = first, cap, steady_after
        self.upcoming = first

    def after(self, uptime: float) -> float:
        """The wait before the next start, for a worker that ran ``uptime`` seconds."""
        if uptime >= self.steady_after:
            self.upcoming = self.first
        delay = self.upcoming
        self.upcoming = min(self.upcoming * 2, self.cap)
        return delay


class WorkerSupervisor(threading.Thread):
    """Starts a worker with ``launch`` and starts another whenever it ends, until ``stop``.

    Once watching, only its own thread starts and stops workers, so a restart and a
    shutdown never cross: once stopping, the worker is stopped in order and no other
    is started.
    """

    def __init__(
        self, launch: Callable[[], subprocess.Popen[bytes]], backoff: Backoff | None = None, poll_seconds: float = 0.5
    ) -> None:
        super().__init__(name="armscope-worker-supervisor", daemon=True)
        self.launch, self.backoff, self.poll_seconds = launch, backoff or Backoff(), poll_seconds
        self.stopping = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.launched_at = 0.0
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """The current worker's process id; None while none could be started."""
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        """Start the first worker from the caller's thread (its pid is known on return), then watch it."""
        self.launched_at = time.monotonic()
        self.process = self.launch()
        super().start()

    def stop(self) -> None:
        """Stop the worker in order (a warm shutdown) and start no other."""
        self.stopping.set()
        if self.is_alive():
            self.join()
        elif self.process is not None:
            stop_worker(self.process)

    def run(self) -> None:
        while (ended := self._wait_for_end()) is not None:
            delay = self.backoff.after(time.monotonic() - self.launched_at)
            log.warning("%s; starting another in %g s", ended, delay)
            if self.stopping.wait(delay):
                return
            self._restart()
        if self.process is not None:
            stop_worker(self.process)

    def _wait_for_end(self) -> str | None:
        """Why the worker ended, once it has (and is reaped); None when asked to stop first."""
        while not self.stopping.is_set():
            if self.process is None:
                return "the embedded worker could not be started"
            returncode = self.process.poll()
            if returncode is not None:
                return f"the embedded worker (pid {self.process.pid}) {exit_reason(returncode)}"
            self.stopping.wait(self.poll_seconds)
        return None

    def _restart(self) -> None:
        self.launched_at = time.monotonic()
        self.restarts += 1
        try:
            self.process = self.launch()
        except OSError as exc:
            log.error("could not start the embedded worker: %s", exc)
            self.process = None
            return
        log.warning("embedded worker pid %d started (restart %d)", self.process.pid, self.restarts)
