"""Many runs' curves in one call, thinned on the server so long runs stay quick to draw, or summarised over seeds."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from backend import deps
from backend.errors import described, invalid
from backend.limits import csv_items
from backend.responses import streamed_json
from backend.schemas import CompareOut, SeedSetsOut
from backend.strict_input import StrictRoute
from service.compare import MAX_COMPARED, curves, seed_set_summaries
from service.db.store import Store
from service.runs import MAX_RUN_ID

router = APIRouter(tags=["compare"], responses=described(404), route_class=StrictRoute)


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
    if any(not 1 <= i <= MAX_RUN_ID for i in ids):
        raise invalid("query", "runs", f"run ids lie between 1 and {MAX_RUN_ID}")
    return list(dict.fromkeys(ids))


@router.get("/compare", response_model=CompareOut)
def compare(
    runs: str = RUNS,
    keys: str | None = KEYS,
    points: int | None = Query(None, ge=1, le=100_000, description="At most this many epochs per run."),
    store: Store = Depends(deps.store),
) -> Response:
    return streamed_json("runs", curves(store, run_ids(runs), csv_items(keys, "keys"), points))


@router.get("/compare/seeds", response_model=SeedSetsOut)
def compare_seeds(runs: str = RUNS, keys: str | None = KEYS, store: Store = Depends(deps.store)) -> Response:
    """The runs in sets that differ only in their seed; per set and metric, mean ± std epoch by epoch and
    over the runs' last and best values: the numbers a paper reports."""
    return streamed_json("sets", seed_set_summaries(store, run_ids(runs), csv_items(keys, "keys")))
