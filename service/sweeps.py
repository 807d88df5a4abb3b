"""Sweeps: one config crossed with several methods and seeds, validated once and stored all or nothing."""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from armscope.config import RunConfig
from service.catalog import compared_methods
from service.db.store import Store
from service.errors import InvalidConfig, Problem
from service.queue import Queue, queue_for
from service.runs import enqueue_or_undo


class SweepSpec(BaseModel):
    """What a sweep is asked as; ``configs`` is its expansion, validated on first use and kept.

    Frozen, so the expansion kept stays the spec's: a form that checks a sweep and then launches it
    validates each run's config once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: dict[str, Any] = Field(default_factory=dict, description="A RunConfig shared by every run.")
    methods: list[str] = Field(..., min_length=1, max_length=20)
    seeds: list[int] = Field(..., min_length=1, max_length=100)
    method_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Options per method name, for methods other than config.method."
    )
    name: str | None = Field(None, max_length=200)

    @cached_property
    def configs(self) -> tuple[RunConfig, ...]:
        """Every (method, seed) config, validated; InvalidConfig names the method, seed and field of each fault."""
        base = dict(self.config)
        base_method = base.get("method")
        configs: list[RunConfig] = []
        problems: list[Problem] = []
        for method in dict.fromkeys(self.methods):
            options = self.method_options.get(method, base.get("method_options", {}) if method == base_method else {})
            for seed in dict.fromkeys(self.seeds):
                raw = {**base, "method": method, "method_options": options, "seed": seed}
                try:
                    configs.append(RunConfig.model_validate(raw))
                except ValidationError as exc:
                    problems += [
                        {"loc": ["config", *err["loc"]], "type": err["type"],
                         "msg": f"method {method!r}, seed {seed}: {err['msg']}"}
                        for err in exc.errors()
                    ]
        if problems:
            raise InvalidConfig(problems)
        return tuple(configs)


@lru_cache(maxsize=1)
def demo() -> SweepSpec:
    """The demo: the compared methods (``compared_methods``) on the default data set, seeds 0, 1 and 2, 10 epochs.

    One per process (the registries do not change), so its configs are validated once."""
    methods = compared_methods()
    return SweepSpec(config={"epochs": 10}, methods=methods, seeds=[0, 1, 2], name=f"demo: {' vs '.join(methods)}")


def submit(store: Store, queue: Queue, spec: SweepSpec) -> dict[str, Any]:
    """Store a sweep's runs and queue them all; the sweep record with its runs."""
    record, runs = store.create_sweep(
        spec.model_dump(mode="json"),
        [(config.model_dump(mode="json"), queue_for(config)) for config in spec.configs],
        name=spec.name,
    )
    enqueue_or_undo(store, queue, runs)
    return {**record, "runs": runs}
