"""The benchmark: every method on one data set, mean ± std over seeds of its final numbers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from backend import deps
from backend.schemas import BenchmarkOut
from backend.strict_input import StrictRoute
from service import benchmark as table
from service.db.store import Store

router = APIRouter(tags=["benchmark"], route_class=StrictRoute)


@router.get("/benchmark", response_model=BenchmarkOut)
def benchmark(
    dataset: str = Query(..., max_length=64, description="A registered data set."),
    encoder: str | None = Query(None, max_length=64, description="Only runs whose default encoder is this one."),
    project: str | None = Query(None, max_length=100, description="Only the runs of this project."),
    store: Store = Depends(deps.store),
) -> dict[str, Any]:
    """A row per set of succeeded runs that differ only in their seed: fused accuracy, each modality's masked
    accuracy and Shapley share, imbalance (ours and BalanceBenchmark's), and cost; and the methods with no run."""
    return table.benchmark(store, dataset, encoder, project)
