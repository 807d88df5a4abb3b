"""Schemathesis against /openapi.json, on SQLite and PostgreSQL: no 5xx and no response outside the schema,
whatever comes in.

Schemathesis generates NUL characters in strings (``allow_x00``) and out-of-range integers in its negative
mode, but never NaN, infinities or lone surrogates, which JSON encoders refuse to write. The hooks below
put those, numbers beyond 64 bits and deep nesting into about half of the generated bodies, and NUL
characters and forged cursors into query strings; the bodies go out through ``json.dumps``, which writes
``NaN`` and ``Infinity`` as the attacker's client would.
"""

from __future__ import annotations

import atexit
import base64
import copy
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from server.app import create_app
from service.db.store import Store
from service.settings import Settings
from tests.fakes import RecordingQueue

EXAMPLES_PER_OPERATION = 25

# A float literal too large for a double: json.dumps cannot write one, so it is swapped in after encoding.
OVERFLOW = "<1e400>"
DEEP = json.loads("[" * 250 + "]" * 250)
HOSTILE_VALUES = [
    float("nan"), float("inf"), float("-inf"), OVERFLOW, 2**64 + 1, -(2**63) - 1, 2**31,
    "\x00", "name\x00", "\ud800", "a\udc00b", DEEP,
]


def _cursor(value: Any, run_id: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([value, run_id]).encode()).decode()


HOSTILE_QUERY_VALUES = [
    "\x00", "a\x00b", str(2**64 + 1), _cursor(2**70, 2**70), _cursor(10**400, 1), _cursor([1, 2], 1),
    _cursor("x", True),
]


def _slots(body: Any) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``body``, or a new key in an empty object: an existing field is where
    a hostile value gets past the schema (a new key is refused as unknown before anything else is checked)."""
    if body == {}:
        return [("name",)]
    slots: list[tuple[Any, ...]] = []
    pending: list[tuple[Any, tuple[Any, ...]]] = [(body, ())]
    while pending:
        node, path = pending.pop()
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            slots.append((*path, key))
            pending.append((child, (*path, key)))
    return slots


def _poisoned(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    poisoned = copy.deepcopy(body)
    parent = poisoned
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return poisoned


def _add_hostile_values(schema: Any) -> None:
    @schema.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
        slots = _slots(body)
        if not slots:
            return st.just(body)
        return st.just(body) | st.builds(_poisoned, st.just(body), st.sampled_from(slots),
                                         st.sampled_from(HOSTILE_VALUES))

    @schema.hook
    def flatmap_query(context: Any, query: Any) -> st.SearchStrategy:
        names = sorted({*(query or {}), *(parameter.name for parameter in context.operation.query)})
        if not names:
            return st.just(query)
        return st.just(query) | st.builds(lambda key, value: {**(query or {}), key: value},
                                          st.sampled_from(names), st.sampled_from(HOSTILE_QUERY_VALUES))


def _app(store: Store, home: Path) -> Any:
    for seed in range(3):
        run = store.create_run({"method": "arm", "dataset": "synthetic-shift", "seed": seed, "epochs": 2,
                                "tags": ["fuzz"], "name": None}, queue="cpu")
        store.add_epoch(run["id"], {"epoch": 1, "val_acc": 0.5, "dominant": "audio"})
        store.add_event(run["id"], {"epoch": 1, "kind": "dominance_switch", "message": "m"})
    # A live worker for the queued runs: /health answers 200 (503 is its answer when none is alive).
    store.worker_alive("fuzz-worker", "cpu")
    return create_app(Settings(home=home, heartbeat_timeout=86_400), store, RecordingQueue())


def _schema() -> Any:
    """The operations to fuzz, read from an app on a throwaway store; each test calls an app on its own store."""
    home = Path(tempfile.mkdtemp(prefix="armscope-fuzz-"))
    atexit.register(shutil.rmtree, home, True)
    store = Store(f"sqlite:///{home}/armscope.db")
    store.upgrade()
    loaded = schemathesis.openapi.from_asgi("/openapi.json", _app(store, home))
    loaded.config.generation.update(allow_x00=True, codec="utf-8")
    _add_hostile_values(loaded)
    return loaded


schema = _schema()


@pytest.fixture
def fuzzed_app(store, tmp_path):
    """The app on the store, SQLite then PostgreSQL, with a few runs to hit."""
    return _app(store, tmp_path / "home")


def _as_sent_by_any_client(body: Any) -> bytes:
    """JSON as Python's json module writes it: NaN and Infinity as bare words, lone surrogates escaped."""
    return json.dumps(body).replace(json.dumps(OVERFLOW), "1e400").encode()


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_api_never_fails_and_always_answers_within_its_schema(case, fuzzed_app):
    # Bodies that are not JSON values (schemathesis sends raw bytes too) go out as schemathesis sends them.
    is_json = case.media_type == "application/json" and isinstance(case.body, (dict, list, str, int, float))
    body = {"data": _as_sent_by_any_client(case.body)} if is_json else {}
    # Every check but positive_data_acceptance: data set and method options are free-form
    # objects in the schema (their real schemas depend on the chosen name), so the fuzzer's
    # random options are rightly refused with a 422 naming the option.
    case.call_and_validate(app=fuzzed_app, excluded_checks=[schemathesis.checks.positive_data_acceptance], **body)
