"""Request and response bodies of the REST API, kept apart from the ORM tables."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.runs import Status
from service.sweeps import SweepSpec


class Progress(BaseModel):
    epoch: int
    epochs: int
    step: int
    total_steps: int | None
    fraction: float
    eta_seconds: float | None
    phase: str | None = None


class RunOut(BaseModel):
    id: int
    name: str
    status: Status
    config: dict[str, Any]
    method: str
    dataset: str
    seed: int
    queue: str
    tags: list[str]
    notes: str
    sweep_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    heartbeat_at: datetime | None
    attempt: int
    progress: Progress
    error: str | None
    cancel_requested: bool
    best_val_acc: float | None
    last_val_acc: float | None
    dominant: str | None
    delivered_to: str | None = Field(None, description="The worker holding this queued run's message.")
    external: bool = Field(False, description="Trained by a script of its own that logs through the SDK (armscope.init).")


class ExternalLogged(BaseModel):
    should_stop: bool = Field(description="A cancel was asked for in the dashboard or API: the script should stop.")
    stored: int = Field(description="How many epoch records were merged into the run's.")


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class RunPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    tags: list[Annotated[str, StringConstraints(max_length=100)]] | None = Field(None, max_length=50)
    notes: str | None = Field(None, max_length=10_000)


class SweepIn(SweepSpec):  # the service's spec, under the name the OpenAPI document has always used
    """One config crossed with several methods and seeds; every run's config is validated before any is stored."""


class SweepOut(BaseModel):
    id: int
    name: str | None
    runs: list[RunOut]


class EventOut(BaseModel):
    id: int
    epoch: int
    step: int
    kind: str
    level: str
    message: str
    data: dict[str, Any]
    time: datetime


class CompareRun(BaseModel):
    id: int
    name: str
    method: str
    dataset: str
    seed: int
    status: Status
    config: dict[str, Any]
    records: list[dict[str, Any]]


class CompareOut(BaseModel):
    runs: list[CompareRun]


class SeedSummary(BaseModel):
    mean: float
    std: float | None = Field(description="Sample standard deviation; null for a single run.")
    n: int = Field(description="How many runs it is over.")


class SeedCurve(BaseModel):
    epoch: list[int]
    mean: list[float]
    std: list[float] = Field(description="Sample standard deviation per epoch; 0 where one run reached it.")
    n: list[int] = Field(description="How many of the set's runs reached each epoch.")
    last: SeedSummary = Field(description="Over the runs' last values.")
    best: SeedSummary = Field(description="Over the runs' best values (smallest for losses and times).")


class SeedSet(BaseModel):
    label: str = Field(description="The method, what tells this set from other sets of it, and n.")
    method: str
    runs: list[int]
    seeds: list[int]
    metrics: dict[str, SeedCurve]


class SeedSetsOut(BaseModel):
    sets: list[SeedSet]


class Figure(BaseModel):
    mean: float | None = Field(description="Null when no run of the row logged it.")
    std: float | None = Field(description="Sample standard deviation; null below two runs.")
    n: int = Field(description="How many runs it is over.")


class BenchmarkRow(BaseModel):
    label: str = Field(description="The method, and what tells this set of runs from the method's other sets.")
    method: str
    runs: list[int]
    seeds: list[int]
    epochs: Figure
    val_acc: Figure
    imbalance: Figure
    bb_imbalance: Figure = Field(description="BalanceBenchmark's imbalance degree (mean pairwise Shapley gap).")
    parameters: Figure
    flops_per_sample: Figure
    peak_memory_mb: Figure
    epoch_seconds: Figure = Field(description="The mean epoch time of each run (its elapsed time over its epochs).")
    masked: dict[str, Figure] = Field(description="Each modality's masked accuracy.")
    share: dict[str, Figure] = Field(description="Each modality's Shapley value over their sum.")


class BenchmarkOut(BaseModel):
    dataset: str
    encoder: str | None
    modalities: list[str]
    rows: list[BenchmarkRow] = Field(description="A row per set of succeeded runs that differ only in their seed.")
    without_runs: list[str] = Field(description="Registered methods with no succeeded run on this data set yet.")


class WorkerHealth(BaseModel):
    name: str = Field(description="The worker's node name; the `worker` of its runs begins with it.")
    queues: list[str] = Field(description="The queues it takes runs from.")
    alive: bool = Field(description="Whether it heartbeated within ARMSCOPE_HEARTBEAT_TIMEOUT.")
    started_at: datetime
    heartbeat_at: datetime = Field(description="Its last heartbeat.")
    runs: list[int] = Field(description="The running runs it holds.")


class BrokenPlugin(BaseModel):
    group: str = Field(description="Entry-point group: armscope.methods, armscope.datasets or armscope.encoders.")
    name: str
    origin: str = Field(description="The in-tree module or the entry point (and its package) it came from.")
    error: str


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded (HTTP 503): runs wait in a queue no live worker takes from, or the database "
                    "did not answer."
    )
    detail: str | None = Field(None, description="What is wrong, when degraded.")
    version: str
    auth: Literal["token", "open"]
    database: str
    broker: str
    workers: list[WorkerHealth] | None = Field(
        description="Every worker the database knows (a dead one until a reaper forgets it). Null when the "
                    "database did not answer, or to a caller without a token when the server requires one."
    )
    queued: dict[str, int] = Field(description="How many runs wait in each queue.")
    unserved_queues: list[str] = Field(description="Queues where runs wait and no live worker takes from.")
    broken_plugins: list[BrokenPlugin] | None = Field(
        description="Installed plugins (methods, data sets, encoders) that could not be registered, with why; the "
                    "others work, and it is no reason for a 503. Null to a caller without a token when the server "
                    "requires one."
    )
