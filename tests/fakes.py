"""A stand-in for the task queue, for tests that exercise the API or dashboard without workers."""

from __future__ import annotations


class RecordingQueue:
    """Records what would be sent to the workers; ``broken`` makes it refuse like a dead broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.broken = False

    def enqueue(self, run_id: int, queue: str) -> None:
        if self.broken:
            raise ConnectionError("broker refused the connection")
        self.sent.append((run_id, queue))
