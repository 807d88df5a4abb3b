"""Sweeps: one config crossed with several methods and seeds, stored all or nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from backend import deps
from backend.errors import described
from backend.schemas import SweepIn, SweepOut
from backend.strict_input import StrictRoute
from service import sweeps
from service.db.store import Store
from service.queue import Queue

router = APIRouter(prefix="/sweeps", tags=["sweeps"], responses=described(503), route_class=StrictRoute)


@router.post("", response_model=SweepOut, status_code=201)
def create_sweep(sweep: SweepIn, store: Store = Depends(deps.store), queue: Queue = Depends(deps.queue)) -> dict[str, Any]:
    return sweeps.submit(store, queue, sweep)
