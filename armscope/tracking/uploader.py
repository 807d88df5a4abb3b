"""The background thread that sends a run's records to the server, batched, and keeps its heart beating.

The logging thread only appends to memory (and the spool); this thread takes what is pending, sends
it in one request, and forgets it once the server confirms. A request that fails for want of a server
(down, restarting, unreachable) is sent again later with growing pauses; the server merges an epoch's
record key by key, so a batch stored before its answer was lost is stored once however often it comes.

This thread shares the interpreter lock with the training loop, so it keeps its own work small: records
arrive encoded (the spool's lines) and a batch's body is joined, not encoded; and while the server is
away only an empty heartbeat probes for it, a batch going out once one is answered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from armscope.client import Client, ClientError

log = logging.getLogger("armscope.tracking")

BATCH = 500
FIRST_PAUSE, LONGEST_PAUSE = 0.25, 10.0


def retryable(exc: ClientError) -> bool:
    """No answer, a server error or a rate limit: the same request may succeed later."""
    return exc.status_code is None or exc.status_code >= 500 or exc.status_code in (408, 429)


class Uploader(threading.Thread):
    """Sends pending records every ``flush_seconds`` (at once when a batch is full) and a heartbeat every
    ``heartbeat_seconds`` when there is nothing to send; ``close`` sends the rest and the run's end."""

    def __init__(
        self,
        client: Client,
        run_id: int,
        key: str,
        *,
        flush_seconds: float,
        heartbeat_seconds: float,
        on_sent: Callable[[], None],
        on_stop: Callable[[], None],
    ) -> None:
        super().__init__(name=f"armscope-uploader-{run_id}", daemon=True)
        self.client, self.run_id, self.key = client, run_id, key
        self.flush_seconds, self.heartbeat_seconds = flush_seconds, heartbeat_seconds
        self.on_sent, self.on_stop = on_sent, on_stop
        self.pending: deque[str] = deque()
        self.wake = threading.Condition()
        self.ending: tuple[str, str | None] | None = None
        self.ended = False
        self.gave_up: str | None = None
        self._pause = 0.0
        self._last_contact = time.monotonic()
        self._warned = False
        self._away = False

    def add(self, line: str) -> None:
        """A record, as its spool line (a JSON object)."""
        with self.wake:
            self.pending.append(line)
            if len(self.pending) >= BATCH:
                self.wake.notify()

    def run(self) -> None:
        while not (self.ended or self.gave_up):
            with self.wake:
                wait = self._pause or (0.0 if self.ending else self.flush_seconds)
                if wait:
                    self.wake.wait(wait)
            self._pause = 0.0 if self._tick() else min(max(self._pause * 2, FIRST_PAUSE), LONGEST_PAUSE)

    def _tick(self) -> bool:
        """One round; False when the server could not be reached (the caller pauses longer each time)."""
        try:
            if self._away:
                self._answered(self.client.log_external(self.run_id, self.key, []))
                self._away = False
            if self.pending:
                self._send_batch()
            elif self.ending is not None:
                status, error = self.ending
                self.client.end_external(self.run_id, self.key, status, error)
                self.ended = True
            elif time.monotonic() - self._last_contact >= self.heartbeat_seconds:
                self._answered(self.client.log_external(self.run_id, self.key, []))
        except ClientError as exc:
            if retryable(exc):
                self._away = True
                self._unreachable(exc)
                return False
            self.gave_up = str(exc)
            log.error("armscope: the server refused run %s's upload, which stops here (the spool keeps "
                      "everything): %s", self.run_id, exc)
        return True

    def _send_batch(self) -> None:
        batch = [self.pending[i] for i in range(min(BATCH, len(self.pending)))]
        answer = self.client.log_external_lines(self.run_id, self.key, batch)
        with self.wake:
            for _ in batch:
                self.pending.popleft()
        self.on_sent()
        self._answered(answer)

    def _answered(self, answer: dict[str, Any]) -> None:
        self._last_contact = time.monotonic()
        if self._warned:
            log.warning("armscope: the server is back; uploading run %s again", self.run_id)
            self._warned = False
        if answer.get("should_stop"):
            self.on_stop()

    def _unreachable(self, exc: ClientError) -> None:
        if not self._warned:
            log.warning("armscope: cannot reach the server (%s); run %s's records wait in the spool and are sent "
                        "when it is back; training goes on", exc, self.run_id)
            self._warned = True

    def close(self, status: str, error: str | None, timeout: float) -> bool:
        """Send what is pending, then the end; True when both reached the server within ``timeout`` seconds."""
        with self.wake:
            self.ending = (status, error)
            self.wake.notify()
        self.join(timeout)
        return self.ended
