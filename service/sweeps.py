"""Sweeps: one config crossed with methods (and variants of them), seeds and a search over any of its fields,
validated once and stored all or nothing; and a stored sweep read back with its runs' final numbers."""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from armscope.config import RunConfig
from armscope.plugins import METHODS
from service import search as sr
from service.catalog import compared_methods, controls_of, metric_of
from service.db.store import Store
from service.errors import InvalidConfig, InvalidInput, Problem
from service.queue import Queue, queue_for
from service.runs import enqueue_or_undo
from service.seed_sets import lower_is_better, number

MAX_RUNS = 200  # a sweep's default cap on its runs
MAX_RUNS_LIMIT = 2000  # the most any sweep may ask for
DEFAULT_METRIC = "val_acc"  # the fused accuracy: what a sweep is usually ranked by
Path = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", max_length=200)]


class Variant(BaseModel):
    """A method with options of its own, run as one more arm of a sweep under ``label``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(..., max_length=64)
    method_options: dict[str, Any] = Field(default_factory=dict)
    label: str = Field(
        ..., pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=40,
        description="Names the variant in its runs' names: <method>-<label>-<dataset>-s<seed>.",
    )


class Arm(NamedTuple):
    """One line of a sweep's grid: a method, its options, and the variant's label (None for a plain method)."""

    method: str
    options: dict[str, Any]
    label: str | None

    @property
    def title(self) -> str:
        return f"{self.method} ({self.label})" if self.label else self.method


class Planned(NamedTuple):
    """One run a sweep makes: its arm, the searched fields' values and its seed."""

    arm: Arm
    values: sr.Assignment
    seed: int


class SweepSpec(BaseModel):
    """What a sweep is asked as; ``configs`` is its expansion, validated on first use and kept.

    Frozen, so the expansion kept stays the spec's: a form that checks a sweep and then launches it
    validates each run's config once. Construction already refuses what needs no run config: unknown
    methods, search fields that are no field, and sweeps over the cap.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: dict[str, Any] = Field(default_factory=dict, description="A RunConfig shared by every run.")
    # Every registered method at once (the benchmark's sweeps): room for the field's methods to come.
    methods: list[str] = Field(..., min_length=1, max_length=64)
    seeds: list[int] = Field(..., min_length=1, max_length=100)
    method_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Options per method name, for methods other than config.method."
    )
    variants: list[Variant] = Field(
        default_factory=list, max_length=20,
        description="More arms: a method with options of its own under a label (ARM with reweight false...).",
    )
    compare: bool = Field(
        False,
        description="A method comparison: also run every method the catalog marks 'compare', with its defaults, and "
        "each compared method's controls (ARM without re-weighting) on that method's options.",
    )
    name: str | None = Field(None, max_length=200)
    search: dict[Path, sr.Axis] = Field(
        default_factory=dict, max_length=16,
        description='Fields to search, by dotted path ("lr", "method_options.alpha", "model_options.feature_dim"), '
        'each {"values": [...]}, {"range": [lo, hi, n]} or {"log_range": [lo, hi, n]}. A method option applies '
        "to the methods that have it; the others run once.",
    )
    strategy: Literal["grid", "random"] = Field(
        "grid", description="grid: every combination of the searched values; random: `samples` random draws."
    )
    samples: int | None = Field(None, ge=1, le=MAX_RUNS_LIMIT, description="Draws of a random search.")
    search_seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds a random search's draws: same spec, same runs.")
    max_runs: int = Field(
        MAX_RUNS, ge=1, le=MAX_RUNS_LIMIT, description="Refuse the sweep if it would make more runs than this."
    )

    @model_validator(mode="after")
    def _check(self) -> "SweepSpec":
        problems = self._method_problems()
        if not problems:
            problems = self._search_problems() or self._size_problems()
        if problems:
            raise ValidationError.from_exception_data(
                "SweepSpec",
                [InitErrorDetails(type=PydanticCustomError(kind, "{problem}", {"problem": msg}), loc=loc, input=value)
                 for loc, msg, kind, value in problems],
            )
        return self

    def _method_problems(self) -> list[tuple[tuple[str | int, ...], str, str, Any]]:
        """Each unknown method once, where it was named (``methods.1``, ``variants.0.method``)."""
        named = [(("methods", i), m) for i, m in enumerate(self.methods)]
        named += [(("variants", i, "method"), v.method) for i, v in enumerate(self.variants)]
        return [
            (loc, f"unknown method '{m}'{sr.did_you_mean(m, METHODS.names())}; choose from: {', '.join(METHODS.names())}",
             "unknown_name", m)
            for loc, m in named if m not in METHODS
        ]

    def _search_problems(self) -> list[tuple[tuple[str | int, ...], str, str, Any]]:
        scope = sr.Scope(self._datasets(), [arm.method for arm in self.arms], self._encoder())
        problems = [(("search", path), msg, "unknown_field", path)
                    for path in self.search if (msg := scope.problem(path)) is not None]
        if self.strategy == "random" and self.samples is None:
            problems.append((("samples",), "a random search needs samples: how many draws to make", "missing", None))
        if self.strategy == "random" and not self.search:
            problems.append((("search",), "a random search needs at least one field to search", "missing", None))
        if self.strategy == "grid" and self.samples is not None:
            problems.append((("samples",), "samples is for strategy random; a grid makes every combination",
                             "value_error", self.samples))
        return problems

    def _size_problems(self) -> list[tuple[tuple[str | int, ...], str, str, Any]]:
        count = self.run_count
        if count <= self.max_runs:
            return []
        message = (f"this sweep makes {count:,} runs, more than max_runs ({self.max_runs}); raise max_runs "
                   f"(at most {MAX_RUNS_LIMIT}) or search fewer values")
        return [(("max_runs",), message, "too_many_runs", self.max_runs)]

    def _datasets(self) -> list[str]:
        searched = self.search.get("dataset")
        given = [self.config.get("dataset", RunConfig.model_fields["dataset"].default)]
        return given + ([d for d in searched.values if isinstance(d, str)] if searched and searched.values else [])

    def _encoder(self) -> str:
        encoder = (self.config.get("model_options") or {}).get("encoder") or {}
        return encoder.get("name", "mlp") if isinstance(encoder, dict) else "mlp"

    @cached_property
    def arms(self) -> tuple[Arm, ...]:
        """The grid's lines, each crossed with every seed: the methods, the compared ones, then the variants and controls."""
        methods = list(self.methods) + (compared_methods() if self.compare else [])
        arms = [Arm(method, self._options_of(method), None) for method in dict.fromkeys(methods)]
        variants = [Arm(v.method, v.method_options, v.label) for v in self.variants]
        if self.compare:
            variants += [
                Arm(arm.method, {**arm.options, **control["options"]}, control["label"])
                for arm in arms
                for control in controls_of(arm.method)
            ]
        for variant in variants:
            if all((a.method, a.label) != (variant.method, variant.label) for a in arms):
                arms.append(variant)
        return tuple(arms)

    def _options_of(self, method: str) -> dict[str, Any]:
        base = self.config
        return self.method_options.get(method, base.get("method_options", {}) if method == base.get("method") else {})

    def _paths(self, arm: Arm) -> list[str]:
        """The searched fields a run of ``arm`` has (a method option only where its method has it)."""
        return [path for path in self.search if sr.applies(path, arm.method)]

    @cached_property
    def _draws(self) -> list[sr.Assignment]:
        return sr.draws(self.search, self.samples or 0, self.search_seed) if self.strategy == "random" else []

    def _values(self, arm: Arm) -> list[sr.Assignment]:
        paths = self._paths(arm)
        if self.strategy == "random":
            return sr.distinct(self._draws, paths)
        return sr.grid(self.search, paths)

    @cached_property
    def run_count(self) -> int:
        """How many runs the sweep makes, counted without making them (a grid may be far over the cap)."""
        seeds = len(set(self.seeds))
        if self.strategy == "random":
            return sum(len(self._values(arm)) for arm in self.arms) * seeds
        return sum(sr.grid_size(self.search, self._paths(arm)) for arm in self.arms) * seeds

    @cached_property
    def planned(self) -> tuple[Planned, ...]:
        """Every run: by arm, then by searched values (the first field varying slowest), then by seed."""
        return tuple(
            Planned(arm, values, seed)
            for arm in self.arms
            for values in self._values(arm)
            for seed in dict.fromkeys(self.seeds)
        )

    def raw_config(self, run: Planned) -> dict[str, Any]:
        """One run's config as asked, before validation."""
        raw = {**self.config, "method": run.arm.method, "method_options": run.arm.options, "seed": run.seed}
        for path, value in run.values.items():
            raw = sr.set_path(raw, path, value)
        name = self._name(run)
        if name:
            raw["name"] = name
        return raw

    def _name(self, run: Planned) -> str | None:
        """Distinct names for a sweep's runs: the variant's label and the searched values (``arm-lr0.01-s0``)."""
        given, arm = self.config.get("name"), run.arm
        if not run.values:
            if not arm.label:
                return None
            dataset = self.config.get("dataset", RunConfig.model_fields["dataset"].default)
            return f"{given}-{arm.label}" if given else f"{arm.method}-{arm.label}-{dataset}-s{run.seed}"
        stem = "-".join(part for part in (given or arm.method, arm.label) if part)
        swept = "-".join(f"{self.short(path)}{sr.label(value)}" for path, value in run.values.items())
        return f"{stem}-{swept}-s{run.seed}"[:200]

    def short(self, path: str) -> str:
        """A searched field as names show it: its last part (``alpha``), or the whole path where two share it."""
        last = path.rsplit(".", 1)[-1]
        return last if sum(p.rsplit(".", 1)[-1] == last for p in self.search) == 1 else path

    @cached_property
    def configs(self) -> tuple[RunConfig, ...]:
        """Every run's config, validated; InvalidConfig names each fault once, at the searched field or the
        config field it came from, with the method and searched values of the first run it was met in."""
        configs: list[RunConfig] = []
        problems: dict[tuple[Any, ...], Problem] = {}
        repeats: dict[tuple[Any, ...], int] = {}
        for run in self.planned:
            try:
                configs.append(RunConfig.model_validate(self.raw_config(run)))
            except ValidationError as exc:
                for err in exc.errors():
                    loc = self._locate(err["loc"], run)
                    key = (tuple(loc), err["msg"])
                    repeats[key] = repeats.get(key, 0) + 1
                    problems.setdefault(key, {"loc": loc, "type": err["type"],
                                              "msg": f"{self._context(run)}: {err['msg']}"})
        if problems:
            raise InvalidConfig([
                {**p, "msg": p["msg"] + (f" ({repeats[key]} runs)" if repeats[key] > 1 else "")}
                for key, p in problems.items()
            ])
        return tuple(configs)

    def _locate(self, loc: tuple[Any, ...], run: Planned) -> list[str | int]:
        """A run config's error location as the sweep was asked: a searched field, a seed, or the shared config."""
        dotted = ".".join(map(str, loc))
        for path in sorted(run.values, key=len, reverse=True):
            if dotted == path or dotted.startswith(path + "."):
                return ["search", path, *loc[len(path.split(".")):]]
        if loc[:1] == ("seed",):
            return ["seeds", self.seeds.index(run.seed)]
        return ["config", *loc]

    def _context(self, run: Planned) -> str:
        values = "".join(f", {path}={sr.label(value)}" for path, value in run.values.items())
        return f"method {run.arm.title!r}{values}"


@lru_cache(maxsize=1)
def demo() -> SweepSpec:
    """The demo: a comparison (every compared method and its controls) on the default data set, seeds 0-2, 10 epochs.

    One per process (the registries do not change), so its configs are validated once."""
    name = f"demo: {' vs '.join(comparison_titles())}"
    return SweepSpec(config={"epochs": 10}, methods=compared_methods(), seeds=[0, 1, 2], compare=True, name=name)


def comparison_titles() -> list[str]:
    """What a comparison launches besides the chosen method: every compared method, then their controls."""
    return [arm.title for arm in SweepSpec(methods=compared_methods(), seeds=[0], compare=True).arms]


def plan(spec: SweepSpec) -> dict[str, Any]:
    """What :func:`submit` would store, storing nothing: the run count, the cap and every run's config."""
    configs = spec.configs
    return {"runs": len(configs), "max_runs": spec.max_runs,
            "configs": [config.model_dump(mode="json") for config in configs]}


def submit(store: Store, queue: Queue, spec: SweepSpec) -> dict[str, Any]:
    """Store a sweep's runs and queue them all; the sweep record with its runs."""
    record, runs = store.create_sweep(
        spec.model_dump(mode="json"),
        [(config.model_dump(mode="json"), queue_for(config)) for config in spec.configs],
        name=spec.name,
    )
    enqueue_or_undo(store, queue, runs)
    return {**record, "runs": runs}


# -- reading a stored sweep --------------------------------------------------------------------


def list_sweeps(store: Store, project: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest sweeps, each with its spec and its runs counted by status."""
    return store.list_sweeps(project=project, limit=limit)


def get(store: Store, sweep_id: int, metric: str = DEFAULT_METRIC) -> dict[str, Any]:
    """A sweep with its runs, each with its value of every swept field and ``metric`` in its last epoch, and
    the best run by that metric (the largest, or the smallest where the metric's declaration says lower is
    better). SweepNotFound for an unknown sweep; InvalidInput for a metric no run logs and none declares."""
    sweep = store.get_sweep(sweep_id)
    runs, _ = store.list_runs(sweep=sweep_id, sort="created_at", limit=MAX_RUNS_LIMIT)
    finals = store.last_records([run["id"] for run in runs])
    check_metric(metric, finals.values())
    spec = _stored_spec(sweep["spec"])
    fields = swept_fields(sweep["spec"], spec)
    rows = [
        {**run, "swept": {f: _swept_value(f, run, spec) for f in fields},
         "final": number((finals.get(run["id"]) or {}).get(metric))}
        for run in runs
    ]
    lower = lower_is_better(metric)
    scored = [row for row in rows if row["final"] is not None]
    best = (min if lower else max)(scored, key=lambda row: row["final"])["id"] if scored else None
    logged = {k for record in finals.values() for k, v in record.items() if number(v) is not None}
    return {**sweep, "metric": metric, "lower_is_better": lower, "swept": fields, "runs": rows, "best": best,
            "metrics": sorted(logged - {"epoch"}, key=lambda k: (k != DEFAULT_METRIC, k))}


def check_metric(metric: str, records: Any) -> None:
    """InvalidInput naming ``metric`` unless it is one key (no ``*``) that some record holds or some metric declares."""
    records = list(records)
    if "*" not in metric and (metric_of(metric) is not None or any(metric in r for r in records)):
        return
    logged = sorted({k for r in records for k in r})
    hint = sr.did_you_mean(metric, logged or [DEFAULT_METRIC])
    raise InvalidInput.at("metric", f"unknown metric '{metric}'{hint}; give one key a run logs, such as {DEFAULT_METRIC}")


def _stored_spec(raw: dict[str, Any]) -> SweepSpec | None:
    """The stored spec as a spec again, or None where it no longer validates (a plugin since removed)."""
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError:
        return None


def swept_fields(raw: dict[str, Any], spec: SweepSpec | None) -> list[str]:
    """What varies across a sweep's runs: the method (when it has several arms), the seed (when several),
    then every searched field."""
    arms = len(spec.arms) if spec else len(raw.get("methods") or [])
    fields = ["method"] if arms > 1 else []
    fields += ["seed"] if len(set(raw.get("seeds") or [])) > 1 else []
    return fields + list(raw.get("search") or {})


def _swept_value(field: str, run: dict[str, Any], spec: SweepSpec | None) -> Any:
    if field == "method":
        return arm_title(run, spec)
    if field == "seed":
        return run["seed"]
    return sr.get_path(run["config"], field)


def arm_title(run: dict[str, Any], spec: SweepSpec | None) -> str:
    """Which arm of the sweep a run is (``arm (no-reweight)``): of the arms of its method, the one whose own
    options (those not searched) the run has most of."""
    options = run["config"].get("method_options") or {}
    searched = {path.split(".", 1)[1] for path in (spec.search if spec else {}) if path.startswith("method_options.")}
    arms = [arm for arm in (spec.arms if spec else ()) if arm.method == run["method"]
            and all(options.get(k) == v for k, v in arm.options.items() if k not in searched)]
    return max(arms, key=lambda arm: len(arm.options)).title if arms else run["method"]
