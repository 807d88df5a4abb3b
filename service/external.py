"""External runs: a researcher's own training loop logs through the SDK (``armscope.init``) into the store.

The SDK names each run with an id of its own making before it reaches any server, so that every request
can be sent again (a lost answer, a restarted server, ``armscope sync`` of a spool uploaded before) and
change nothing: creating the run answers the run made the first time, and an epoch's record is merged
key by key into the one stored under (run, epoch). The id also works as the run's write key: only the
script holding it (or its spool) may log to the run or end it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from armscope.config import ProjectName
from armscope.metrics import LOGGED_KEY, MAX_LOGGED_TEXT
from service.db.store import INT32_MAX, INT32_MIN, Store
from service.errors import InvalidInput, Problem

ExternalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{7,63}$")]
MAX_RECORDS = 1000
MAX_KEYS = 2000
Ending = Literal["succeeded", "failed", "cancelled", "crashed"]


class ExternalRunIn(BaseModel):
    """What the SDK's ``init`` sends: the script's own id for the run, and how to show and find it."""

    model_config = ConfigDict(extra="forbid")

    key: ExternalId = Field(description="The script's id for this run (the SDK makes one); keep it secret: it is "
                                        "what lets a caller log to the run.")
    name: str = Field(..., min_length=1, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict, description="The script's configuration, as it likes it.")
    modalities: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]] = Field(
        default_factory=list, max_length=8, description="The modalities its records name (val_acc.<m>...).")
    dataset: str = Field("external", min_length=1, max_length=64, description="What it trains on, to filter by.")
    seed: int = Field(0, ge=INT32_MIN, le=INT32_MAX)
    epochs: int = Field(0, ge=0, le=INT32_MAX, description="Epochs planned, for the progress bar; 0 when unknown.")
    tags: list[Annotated[str, StringConstraints(max_length=100)]] = Field(default_factory=list, max_length=50)
    notes: str = Field("", max_length=10_000)
    project: ProjectName | None = Field(None, description="The project the run belongs to, to filter by.")
    environment: dict[str, Any] | None = Field(
        None, max_length=100,
        description="Where and with what the script runs (the SDK sends armscope.environment's record): shown on "
                    "the run page and returned as the run's `environment`.",
    )


class ExternalLog(BaseModel):
    """Epoch records to merge into the run's; an empty list is a heartbeat."""

    model_config = ConfigDict(extra="forbid")

    key: ExternalId
    records: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_RECORDS)


class ExternalEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: ExternalId
    status: Ending
    error: str | None = Field(None, max_length=20_000)


def record_problems(record: dict[str, Any], index: int) -> list[Problem]:
    """What stops one record from being stored, each located as ``records.<index>.<key>``."""
    where: list[str | int] = ["records", index]
    epoch = record.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= INT32_MAX:
        return [{"loc": [*where, "epoch"], "msg": "every record needs an integer epoch >= 0", "type": "value_error"}]
    if len(record) > MAX_KEYS:
        return [{"loc": where, "msg": f"at most {MAX_KEYS} keys per epoch", "type": "value_error"}]
    problems: list[Problem] = []
    for key, value in record.items():
        if key == "epoch":
            continue
        if not LOGGED_KEY.match(key):
            problems.append({"loc": [*where, key], "type": "value_error", "msg": (
                "a metric key starts with a letter and holds letters, digits and _ . / : - (200 at most)")})
        elif not _storable(value):
            problems.append({"loc": [*where, key], "type": "value_error", "msg": (
                f"a metric value is a finite number, a text of at most {MAX_LOGGED_TEXT} characters, or null; "
                f"got {type(value).__name__}")})
    return problems


def _storable(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= MAX_LOGGED_TEXT


def clean_record(record: dict[str, Any]) -> dict[str, Any]:
    """Nulls dropped (nothing was measured: an earlier value stays) and booleans as 0/1, as charts draw them."""
    return {k: (int(v) if isinstance(v, bool) else v) for k, v in record.items() if v is not None}


def start(store: Store, spec: ExternalRunIn) -> tuple[dict[str, Any], bool]:
    """The external run for ``spec.key``, made running if it is new; and whether it is new."""
    config = dict(spec.config)
    if spec.modalities:
        config.setdefault("modalities", list(spec.modalities))
    return store.create_external_run(
        spec.key, name=spec.name, config=config, dataset=spec.dataset, seed=spec.seed, epochs=spec.epochs,
        tags=spec.tags, notes=spec.notes, environment=spec.environment, project=spec.project,
    )


def log(store: Store, run_id: int, body: ExternalLog) -> dict[str, Any]:
    """Store the records (all, or none when one is bad) and beat the run's heart; ``should_stop`` tells the
    script a cancel was asked for."""
    problems = [p for i, record in enumerate(body.records) for p in record_problems(record, i)]
    if problems:
        raise InvalidInput(problems)
    records = [clean_record(r) for r in body.records]
    return {"should_stop": store.log_external(run_id, body.key, records), "stored": len(records)}


def end(store: Store, run_id: int, body: ExternalEnd) -> dict[str, Any]:
    return store.finish_external(run_id, body.key, body.status, body.error)
