"""A limit on wrong tokens per client address, shared by every server process.

Failures are rows in the database, so a client spreading guesses over the
processes of `armscope serve --processes N`, or over several API servers, meets
one count. The check comes before the token is compared: past the limit even
the right token is refused until the minute is over, else the answer would tell
a guesser which guess was right. Right tokens are never counted, and checking
costs one indexed read, so correct use never nears the limit or waits.

Guesses sent all at once could each pass the check before any failure is
stored; a count kept in this process, updated in the same step as the
comparison, closes that gap within a process. Across N processes such a burst
is compared at most N times the limit; guesses sent one after another, the limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Callable, TypeVar

from sqlalchemy import Engine, delete, func, insert, select

from service.db.models import AuthFailure

WINDOW_SECONDS = 60.0
MAX_CLIENT_CHARS = 200
T = TypeVar("T")


class TooManyFailures(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many wrong tokens from this address: try again in {retry_after} s")
        self.retry_after = retry_after


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _seconds(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


class FailureLimiter:
    def __init__(self, engine: Engine, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.engine, self.limit, self.window = engine, limit, window
        self._lock = threading.Lock()
        self._local: dict[str, deque[float]] = {}

    def attempt(self, client: str, verify: Callable[[], T | None]) -> T | None:
        """``verify()`` unless ``client`` is over the limit; a None result counts as a failure.

        Raises TooManyFailures (with the seconds to wait) without calling ``verify``.
        """
        client, now = client[:MAX_CLIENT_CHARS], time.time()
        stored, oldest_stored = self._stored(client, now)
        with self._lock:  # no I/O in here: comparing a token takes microseconds
            local = self._recent_local(client, now)
            if stored >= self.limit:
                raise TooManyFailures(self._wait(oldest_stored, now))
            if len(local) >= self.limit:
                raise TooManyFailures(self._wait(local[0], now))
            result = verify()
            if result is None:
                local.append(now)
        if result is None:
            self._store(client, now)
        return result

    def _wait(self, oldest: float, now: float) -> int:
        return max(1, math.ceil(oldest + self.window - now))

    def _recent_local(self, client: str, now: float) -> deque[float]:
        cutoff = now - self.window
        if len(self._local) > 1024:
            self._local = {c: times for c, times in self._local.items() if times and times[-1] > cutoff}
        times = self._local.setdefault(client, deque())
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def _stored(self, client: str, now: float) -> tuple[int, float]:
        with self.engine.connect() as connection:
            count, oldest = connection.execute(
                select(func.count(), func.min(AuthFailure.at)).where(
                    AuthFailure.client == client, AuthFailure.at > _when(now - self.window)
                )
            ).one()
        return count, _seconds(oldest) if oldest is not None else now

    def _store(self, client: str, now: float) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(AuthFailure).where(AuthFailure.at <= _when(now - self.window)))
            connection.execute(insert(AuthFailure).values(client=client, at=_when(now)))

