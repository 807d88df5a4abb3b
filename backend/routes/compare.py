"""Many runs' curves in one call, thinned on the server so long runs stay quick to draw."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from backend import deps
from backend.errors import described, fast_json, invalid
from backend.routes.runs import MAX_ID, split_csv
from backend.schemas import CompareOut
from backend.store import Store

router = APIRouter(tags=["compare"], responses=described(404))
MAX_COMPARED = 200


@router.get("/compare", response_model=CompareOut)
def compare(
    runs: str = Query(..., description="Comma-separated run ids."),
    keys: str | None = Query(None, description="Comma-separated metric keys; all when empty."),
    points: int | None = Query(None, ge=1, le=100_000, description="At most this many epochs per run."),
    store: Store = Depends(deps.store),
) -> Response:
    try:
        ids = [int(part) for part in split_csv(runs) or []]
    except ValueError:
        raise invalid("query", "runs", "expected comma-separated integer run ids") from None
    if any(not 1 <= i <= MAX_ID for i in ids):
        raise invalid("query", "runs", f"run ids lie between 1 and {MAX_ID}")
    if not ids or len(ids) > MAX_COMPARED:
        raise invalid("query", "runs", f"give between 1 and {MAX_COMPARED} run ids")
    return fast_json({"runs": store.compare(list(dict.fromkeys(ids)), split_csv(keys), points)})
