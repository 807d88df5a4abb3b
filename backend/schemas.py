"""Request and response bodies of the REST API, kept apart from the ORM tables."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from armscope.config import ProjectName
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
    project: str | None = Field(None, description="The project the run belongs to.")
    queue_position: int | None = Field(
        None, description="A queued run's place in its queue: 1 is next (the queued runs of its queue submitted "
                          "before it, plus one); null for a run not queued.",
    )
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
    environment: dict[str, Any] | None = Field(
        None,
        description="Where and with what the run trained, recorded when it started (null before): `device` "
                    "actually used and `device_requested`, `gpu` (name, memory_mb, capability, count), "
                    "`peak_memory_mb` (the largest of its epochs', set when it ends), `torch`, `cuda`, `cudnn`, "
                    "`armscope`, `python`, `platform`, `host`, `threads`, `dataloader_workers`, `code` (the git "
                    "repository, commit and dirty flag of the checkout armscope ran from; null when installed) and "
                    "`source` (the config file or script and its repository's state). An external run's script "
                    "sends its own.",
    )


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
    project: ProjectName | Literal[""] | None = Field(None, description="Move the run to this project; \"\" takes it out of any.")


class SweepIn(SweepSpec):  # the service's spec, under the name the OpenAPI document has always used
    """One config crossed with several methods and seeds; every run's config is validated before any is stored."""


class SweepOut(BaseModel):
    id: int
    name: str | None
    runs: list[RunOut]


class SweepPlanOut(BaseModel):
    runs: int = Field(description="How many runs the sweep would make.")
    max_runs: int = Field(description="The sweep's cap: a sweep over it is refused.")
    configs: list[dict[str, Any]] = Field(description="Every run's config, validated, with its defaults filled in.")


class SweepRecord(BaseModel):
    id: int
    name: str | None
    project: str | None = None
    created_at: datetime
    spec: dict[str, Any] = Field(description="The sweep as it was asked (POST /sweeps's body, defaults filled in).")
    counts: dict[str, int] = Field(description="Its runs per status.")
    run_count: int


class SweepRunOut(RunOut):
    swept: dict[str, Any] = Field(description="The run's value of each swept field (see the sweep's `swept`).")
    final: float | None = Field(description="The chosen metric in the run's last epoch; null until it has one.")


class SweepDetailOut(SweepRecord):
    metric: str = Field(description="The metric `final` and `best` are about.")
    lower_is_better: bool
    swept: list[str] = Field(description="What varies across the runs: method, seed, then each searched field.")
    metrics: list[str] = Field(description="The numeric keys the runs' last epochs hold (choices for `metric`).")
    best: int | None = Field(description="The run with the best final value of the metric; null before any has one.")
    runs: list[SweepRunOut]


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
    project: str | None = None
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
    project: str | None = Field(None, description="The project whose runs it is over; null: every run.")
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


class SavedViewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page: str = Field(max_length=32, description="The dashboard page: compare or runs.")
    name: str = Field(max_length=200, description="Unique on its page; trimmed.")
    query: str = Field(max_length=4000, description="The page's URL query, e.g. ?runs=1,2&metric=val_acc,shapley.*")


class SavedViewOut(BaseModel):
    id: int
    page: str
    name: str
    query: str
    href: str = Field(description="The dashboard link that opens the view.")
    created_at: datetime
