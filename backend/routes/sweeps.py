"""Sweeps: one config crossed with several methods and seeds, stored all or nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import ValidationError

from armscope.config import RunConfig
from backend import deps
from backend.errors import described
from backend.routes.runs import enqueue_or_undo
from backend.schemas import SweepIn, SweepOut
from backend.store import Store
from backend.strict_input import StrictRoute
from workers.app import queue_for

router = APIRouter(prefix="/sweeps", tags=["sweeps"], responses=described(503), route_class=StrictRoute)


def expand(sweep: SweepIn) -> list[dict[str, Any]]:
    """Every (method, seed) config, validated; errors name the method, seed and field."""
    base = dict(sweep.config)
    base_method = base.get("method")
    configs, problems = [], []
    for method in dict.fromkeys(sweep.methods):
        options = sweep.method_options.get(method, base.get("method_options", {}) if method == base_method else {})
        for seed in dict.fromkeys(sweep.seeds):
            raw = {**base, "method": method, "method_options": options, "seed": seed}
            try:
                configs.append(RunConfig.model_validate(raw).model_dump(mode="json"))
            except ValidationError as exc:
                for err in exc.errors():
                    problems.append(
                        {"loc": ["body", "config", *err["loc"]], "type": err["type"],
                         "msg": f"method {method!r}, seed {seed}: {err['msg']}"}
                    )
    if problems:
        raise HTTPException(422, problems)
    return configs


@router.post("", response_model=SweepOut, status_code=201)
def create_sweep(
    sweep: SweepIn, store: Store = Depends(deps.store), queue: deps.Queue = Depends(deps.queue)
) -> dict[str, Any]:
    return submit_sweep(store, queue, sweep)


def submit_sweep(store: Store, queue: deps.Queue, sweep: SweepIn) -> dict[str, Any]:
    """Store a sweep's runs and queue them all (the API and the dashboard share this path)."""
    configs = expand(sweep)
    record, runs = store.create_sweep(
        sweep.model_dump(mode="json"), [(c, queue_for(c)) for c in configs], name=sweep.name
    )
    enqueue_or_undo(store, queue, runs)
    return {**record, "runs": runs}
