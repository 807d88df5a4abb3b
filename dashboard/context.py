"""What every page needs from the server process: the store, the settings and the queue (from app.state)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from backend.deps import Queue
from backend.settings import Settings
from backend.store import Store


@dataclass
class Context:
    store: Store
    settings: Settings
    queue: Queue
    poll_ms: int = 2000  # live pages poll this often; each poll fetches only what changed
    page_size: int = 25  # runs per page (server-side keyset paging)
    compare_points: int = 300  # the compare view asks the store for at most this many epochs per run
    app_state: Any = None  # the API app's state, read per request (e.g. its token auth, when set)


@lru_cache(maxsize=1)
def catalog() -> dict[str, Any]:
    """The API's catalog (methods, data sets, encoders and their option JSON Schemas), built once."""
    from backend.routes.catalog import catalog as build

    return build()


@lru_cache(maxsize=1)
def model_schema() -> dict[str, Any]:
    from armscope.models import ModelOptions

    return ModelOptions.model_json_schema()
