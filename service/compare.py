"""Many runs side by side: their curves (from the store) and, over runs that differ only in seed, mean ± std.

Both come a run (or a seed set) at a time, so that a server answering the largest comparison holds
one run's records at once rather than every run's (``bench/server_memory.py``); that every run
exists is checked before the first one is produced.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Sequence

from service import seed_sets as ss
from service.db.store import Store

MAX_COMPARED = 200  # runs one comparison may hold


def curves(
    store: Store, run_ids: Sequence[int], keys: Sequence[str] | None, points: int | None
) -> Iterator[dict[str, Any]]:
    """Each run with its records (``keys`` only when given, thinned to ``points`` epochs), one run at a time.
    RunNotFound is raised by this call, not by the iteration."""
    runs = store.compared_runs(run_ids)
    return ({**run, "records": store.curves(run["id"], keys, points)} for run in runs)


def seed_set_summaries(store: Store, run_ids: Sequence[int], keys: Sequence[str] | None) -> Iterator[dict[str, Any]]:
    """The runs in sets that differ only in their seed; per set and metric, mean ± std epoch by epoch and
    over the runs' last and best values: the numbers a paper reports. All numeric metrics when ``keys`` is
    empty. One set's records are loaded at a time; RunNotFound is raised by this call."""
    sets = ss.seed_sets(store.compared_runs(run_ids))
    return (_summary(store, label, members, keys) for label, members in sets)


def _summary(store: Store, label: str, members: list[dict[str, Any]], keys: Sequence[str] | None) -> dict[str, Any]:
    loaded = [{**run, "records": store.curves(run["id"], keys)} for run in members]
    wanted = keys or sorted(
        {k for run in loaded for r in run["records"] for k, v in r.items() if k != "epoch" and ss.number(v) is not None}
    )
    return {
        "label": label,
        "method": members[0]["method"],
        "runs": [run["id"] for run in members],
        "seeds": [run["seed"] for run in members],
        "metrics": ss.summarise(loaded, wanted),
    }
