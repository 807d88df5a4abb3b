"""Riding out a database restart: a worker keeps its run and retries the write."""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

T = TypeVar("T")
log = logging.getLogger(__name__)


def with_retry(call: Callable[[], T], what: str, give_up_after: float) -> T:
    """Retry ``call`` on connection errors, backing off up to 5 s, for ``give_up_after`` seconds."""
    deadline = time.monotonic() + give_up_after
    delay = 0.2
    while True:
        try:
            return call()
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError) and not exc.connection_invalidated:
                raise
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s failed (%s); retrying in %.1f s", what, type(exc.orig).__name__ if exc.orig else exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
