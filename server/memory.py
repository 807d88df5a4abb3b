"""A server process hands memory back to the system once a large request is answered.

Comparing many runs builds tens of MB of records and JSON, which Python frees when the response has
gone. glibc's allocator keeps freed pages for reuse, spread over one arena per thread that allocated,
so without help a server process would keep the memory of the largest comparison it ever answered
(``bench/server_memory.py``: 290-390 MB after comparing 200 runs x 100 epochs with every metric).
So each server process uses at most two arenas, and once its requests are answered and it has
grown ``TRIM_AFTER_GROWTH`` since the last trim, ``malloc_trim`` returns the free pages. Where the
C library is not glibc, or /proc is missing, both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

TRIM_AFTER_GROWTH = 16 * 2**20  # bytes of resident memory gained since the last trim
ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def _glibc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


LIBC = _glibc()


def limit_arenas() -> None:
    """At most ``ARENAS`` malloc arenas for the threads started from now on (call before serving)."""
    if LIBC is not None:
        LIBC.mallopt(M_ARENA_MAX, ARENAS)


def resident_bytes() -> int | None:
    """This process's resident memory, from /proc (None where there is none)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


class TrimMemory:
    """ASGI middleware: once no request is in flight and the process is ``TRIM_AFTER_GROWTH`` larger than
    after the last trim, ``malloc_trim`` in a worker thread (the response has been sent).

    Only when idle: memory that a request still in flight holds cannot be returned, and a trim then would
    leave the process large once that request is done too.
    """

    def __init__(self, app: ASGIApp, growth: int = TRIM_AFTER_GROWTH) -> None:
        self.app, self.growth = app, growth
        self.baseline = resident_bytes()
        self.in_flight = 0

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if LIBC is None or self.baseline is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
        now = resident_bytes()
        if self.in_flight == 0 and now is not None and now - self.baseline >= self.growth:
            await anyio.to_thread.run_sync(LIBC.malloc_trim, 0)
            self.baseline = resident_bytes() or now
