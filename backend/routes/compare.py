"""Many runs' curves in one call, thinned on the server so long runs stay quick to draw, or summarised over seeds."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from backend import deps
from backend import seed_sets as ss
from backend.errors import described, fast_json, invalid
from backend.limits import csv_items
from backend.routes.runs import MAX_ID
from backend.schemas import CompareOut, SeedSetsOut
from backend.store import Store
from backend.strict_input import StrictRoute

router = APIRouter(tags=["compare"], responses=described(404), route_class=StrictRoute)
MAX_COMPARED = 200


RUNS = Query(..., description="Comma-separated run ids.")
KEYS = Query(None, description="Comma-separated metric keys; all when empty.")


def run_ids(runs: str) -> list[int]:
    """The distinct ids of a ``runs`` query, in order; a clear 422 for anything else.

    The count is checked before any id is parsed, and duplicates go in one pass: linear in the query's length.
    """
    parts = csv_items(runs, "runs", MAX_COMPARED)
    if not parts:
        raise invalid("query", "runs", f"give between 1 and {MAX_COMPARED} run ids")
    try:
        ids = [int(part) for part in parts]
    except ValueError:
        raise invalid("query", "runs", "expected comma-separated integer run ids") from None
    if any(not 1 <= i <= MAX_ID for i in ids):
        raise invalid("query", "runs", f"run ids lie between 1 and {MAX_ID}")
    return list(dict.fromkeys(ids))


@router.get("/compare", response_model=CompareOut)
def compare(
    runs: str = RUNS,
    keys: str | None = KEYS,
    points: int | None = Query(None, ge=1, le=100_000, description="At most this many epochs per run."),
    store: Store = Depends(deps.store),
) -> Response:
    return fast_json({"runs": store.compare(run_ids(runs), csv_items(keys, "keys"), points)})


@router.get("/compare/seeds", response_model=SeedSetsOut)
def compare_seeds(runs: str = RUNS, keys: str | None = KEYS, store: Store = Depends(deps.store)) -> Response:
    """The runs in sets that differ only in their seed; per set and metric, mean ± std epoch by epoch and
    over the runs' last and best values: the numbers a paper reports."""
    asked = csv_items(keys, "keys")
    found = store.compare(run_ids(runs), asked)
    wanted = asked or sorted(
        {k for run in found for r in run["records"] for k, v in r.items() if k != "epoch" and ss.number(v) is not None}
    )
    sets = [
        {
            "label": label,
            "method": members[0]["method"],
            "runs": [run["id"] for run in members],
            "seeds": [run["seed"] for run in members],
            "metrics": ss.summarise(members, wanted),
        }
        for label, members in ss.seed_sets(found)
    ]
    return fast_json({"sets": sets})
