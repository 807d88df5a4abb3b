"""What every page needs from the server process: the store, the settings, the queue and the access rule."""

from __future__ import annotations

from dataclasses import dataclass

from service.access import Access
from service.db.store import Store
from service.queue import Queue
from service.settings import Settings


@dataclass
class Context:
    store: Store
    settings: Settings
    queue: Queue
    access: Access | None = None  # who may change runs; None outside a server (tests): everyone
    poll_ms: int = 2000  # live pages poll this often; each poll fetches only what changed
    page_size: int = 25  # runs per page (server-side keyset paging)
    compare_points: int = 300  # the compare view asks the store for at most this many epochs per run
