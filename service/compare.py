"""Many runs side by side: their curves (from the store) and, over runs that differ only in seed, mean ± std."""

from __future__ import annotations

from typing import Any, Sequence

from service import seed_sets as ss
from service.db.store import Store

MAX_COMPARED = 200  # runs one comparison may hold


def seed_set_summaries(store: Store, run_ids: Sequence[int], keys: Sequence[str] | None) -> list[dict[str, Any]]:
    """The runs in sets that differ only in their seed; per set and metric, mean ± std epoch by epoch and
    over the runs' last and best values: the numbers a paper reports. All numeric metrics when ``keys`` is empty."""
    found = store.compare(run_ids, keys)
    wanted = keys or sorted(
        {k for run in found for r in run["records"] for k, v in r.items() if k != "epoch" and ss.number(v) is not None}
    )
    return [
        {
            "label": label,
            "method": members[0]["method"],
            "runs": [run["id"] for run in members],
            "seeds": [run["seed"] for run in members],
            "metrics": ss.summarise(members, wanted),
        }
        for label, members in ss.seed_sets(found)
    ]
