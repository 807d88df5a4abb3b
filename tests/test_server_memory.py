"""A server process hands freed memory back once it is idle after growing, never in the middle of requests."""

from __future__ import annotations

import anyio

from server import memory

MB = 2**20


class FakeLibc:
    """Stands in for glibc: ``malloc_trim`` brings the process back to ``after``."""

    def __init__(self, process: dict[str, int], after: int) -> None:
        self.process, self.after, self.trims = process, after, 0

    def malloc_trim(self, pad: int) -> int:
        self.trims += 1
        self.process["rss"] = self.after
        return 1


def middleware(monkeypatch, start: int) -> tuple[memory.TrimMemory, dict[str, int], FakeLibc]:
    process = {"rss": start}
    libc = FakeLibc(process, after=start)
    monkeypatch.setattr(memory, "LIBC", libc)
    monkeypatch.setattr(memory, "resident_bytes", lambda: process["rss"])

    async def app(scope, receive, send):
        process["rss"] += scope["grows"]
        if scope.get("wait"):
            await scope["wait"].wait()

    return memory.TrimMemory(app, growth=16 * MB), process, libc


async def nothing():
    return {}


async def ignore(message):
    pass


def test_a_request_that_leaves_the_process_grown_by_the_threshold_is_followed_by_a_trim(monkeypatch):
    trim, process, libc = middleware(monkeypatch, start=120 * MB)
    anyio.run(trim, {"type": "http", "grows": 10 * MB}, nothing, ignore)
    assert libc.trims == 0
    anyio.run(trim, {"type": "http", "grows": 10 * MB}, nothing, ignore)
    assert libc.trims == 1 and process["rss"] == 120 * MB


def test_no_trim_while_another_request_is_in_flight_and_one_when_the_last_is_answered(monkeypatch):
    trim, process, libc = middleware(monkeypatch, start=120 * MB)

    async def two_at_once():
        held = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(trim, {"type": "http", "grows": 100 * MB, "wait": held}, nothing, ignore)
            await anyio.sleep(0)
            await trim({"type": "http", "grows": 100 * MB}, nothing, ignore)
            assert libc.trims == 0  # the first still holds its memory
            held.set()

    anyio.run(two_at_once)
    assert libc.trims == 1


def test_lifespan_messages_pass_through_untouched(monkeypatch):
    trim, process, libc = middleware(monkeypatch, start=120 * MB)
    anyio.run(trim, {"type": "lifespan", "grows": 100 * MB}, nothing, ignore)
    assert libc.trims == 0
