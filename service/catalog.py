"""What can be run and what a run logs: the engine's catalog, built once per process, and the metric declarations.

The registries are filled once per process (``armscope.plugins``) and never change after, so
both are computed once and kept; neither imports torch (the specs carry everything).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from armscope.catalog import build_catalog, declared_metrics
from armscope.metrics import Metric, find
from armscope.plugins import broken_plugins


@lru_cache(maxsize=1)
def catalog() -> dict[str, Any]:
    """Methods (with their metric declarations), data sets and encoders with their option JSON Schemas, the
    measures every run logs, the RunConfig and model-options schemas, and the plugins that failed to load."""
    return build_catalog()


def model_options_schema() -> dict[str, Any]:
    """The JSON Schema of a RunConfig's ``model_options`` (the launch form's model section)."""
    return catalog()["model_options"]


@lru_cache(maxsize=1)
def all_metrics() -> tuple[Metric, ...]:
    """The measures every run logs, then every registered method's own, each key once: what any run may log."""
    return tuple(declared_metrics())


@lru_cache(maxsize=64)
def metrics_of(method: str) -> tuple[Metric, ...]:
    """What a run of ``method`` logs: the measures every run logs, then the method's own (none if unregistered)."""
    return tuple(declared_metrics(method))


def metric_of(key: str) -> Metric | None:
    """The declaration of a record key (``ogm_coeff.audio``) or of a compare selector (``ogm_coeff.*``)."""
    return next((m for m in all_metrics() if m.selector == key), None) or find(key, all_metrics())


def compared_methods() -> list[str]:
    """The methods a comparison launches beside any other (their specs say ``compare``), in catalog order."""
    return [name for name, entry in catalog()["methods"].items() if entry["compare"]]


def controls_of(method: str) -> list[dict[str, Any]]:
    """The controls a comparison runs beside ``method`` (``{"label", "options", "description"}``), if any."""
    entry = catalog()["methods"].get(method)
    return list(entry.get("controls", [])) if entry else []


def broken() -> list[dict[str, str]]:
    """The plugins that could not be registered, by name, with where they came from and why."""
    return [plugin.as_json() for plugin in broken_plugins()]
