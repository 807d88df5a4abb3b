"""Sweeps: one config crossed with several methods (and variants of them) and seeds, validated once and stored all or nothing."""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from armscope.config import RunConfig
from service.catalog import compared_methods, controls_of
from service.db.store import Store
from service.errors import InvalidConfig, Problem
from service.queue import Queue, queue_for
from service.runs import enqueue_or_undo


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


class SweepSpec(BaseModel):
    """What a sweep is asked as; ``configs`` is its expansion, validated on first use and kept.

    Frozen, so the expansion kept stays the spec's: a form that checks a sweep and then launches it
    validates each run's config once.
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

    @cached_property
    def configs(self) -> tuple[RunConfig, ...]:
        """Every (arm, seed) config, validated; InvalidConfig names the method, seed and field of each fault."""
        base = dict(self.config)
        configs: list[RunConfig] = []
        problems: list[Problem] = []
        for arm in self.arms:
            for seed in dict.fromkeys(self.seeds):
                raw = {**base, "method": arm.method, "method_options": arm.options, "seed": seed}
                if arm.label:
                    given = base.get("name")
                    dataset = base.get("dataset", RunConfig.model_fields["dataset"].default)
                    raw["name"] = f"{given}-{arm.label}" if given else f"{arm.method}-{arm.label}-{dataset}-s{seed}"
                try:
                    configs.append(RunConfig.model_validate(raw))
                except ValidationError as exc:
                    problems += [
                        {"loc": ["config", *err["loc"]], "type": err["type"],
                         "msg": f"method {arm.title!r}, seed {seed}: {err['msg']}"}
                        for err in exc.errors()
                    ]
        if problems:
            raise InvalidConfig(problems)
        return tuple(configs)


@lru_cache(maxsize=1)
def demo() -> SweepSpec:
    """The demo: a comparison (every compared method and its controls) on the default data set, seeds 0-2, 10 epochs.

    One per process (the registries do not change), so its configs are validated once."""
    name = f"demo: {' vs '.join(comparison_titles())}"
    return SweepSpec(config={"epochs": 10}, methods=compared_methods(), seeds=[0, 1, 2], compare=True, name=name)


def comparison_titles() -> list[str]:
    """What a comparison launches besides the chosen method: every compared method, then their controls."""
    return [arm.title for arm in SweepSpec(methods=compared_methods(), seeds=[0], compare=True).arms]


def submit(store: Store, queue: Queue, spec: SweepSpec) -> dict[str, Any]:
    """Store a sweep's runs and queue them all; the sweep record with its runs."""
    record, runs = store.create_sweep(
        spec.model_dump(mode="json"),
        [(config.model_dump(mode="json"), queue_for(config)) for config in spec.configs],
        name=spec.name,
    )
    enqueue_or_undo(store, queue, runs)
    return {**record, "runs": runs}
