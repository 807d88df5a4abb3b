"""The catalog: what can be run and what a run logs, as JSON, from the plugins' specs alone.

Served by the API (``GET /catalog``) and printed by ``armscope methods --json``;
the launch form and the charts read it. Built from specs, never from training
code, so the process that serves it imports no torch.
"""

from __future__ import annotations

from typing import Any

from armscope.config import run_config_schema
from armscope.metrics import COMMON, Metric
from armscope.models.base import ModelOptions
from armscope.plugins import DATASETS, ENCODERS, METHODS, broken_plugins
from armscope.registry import Registry
from armscope.specs import MethodSpec, PluginSpec


def build_catalog() -> dict[str, Any]:
    """Methods (with their metric declarations and head), data sets and encoders with their option JSON Schemas;
    the measures every run logs; the RunConfig and model-options schemas; and the plugins that failed to load."""
    return {
        "methods": _entries(METHODS),
        "datasets": _entries(DATASETS),
        "encoders": _entries(ENCODERS),
        "metrics": [metric.as_json() for metric in COMMON],
        "run_config": run_config_schema(),
        "model_options": ModelOptions.model_json_schema(),
        "broken_plugins": [broken.as_json() for broken in broken_plugins()],
    }


def declared_metrics(method: str | None = None) -> list[Metric]:
    """The measures every run logs, then ``method``'s own, or every registered method's when None; each key once.

    A method no longer registered (its plugin since removed) declares nothing: its runs show the common measures.
    """
    methods = METHODS.entries() if method is None else [METHODS.get(method)] if method in METHODS else []
    declared = {metric.key: metric for metric in COMMON}
    for spec in methods:
        for metric in spec.metrics:
            declared.setdefault(metric.key, metric)
    return list(declared.values())


def _entries(registry: Registry[Any]) -> dict[str, Any]:
    return {spec.name: _entry(spec, registry.origin(spec.name)) for spec in registry.entries()}


def _entry(spec: PluginSpec, origin: str) -> dict[str, Any]:
    entry = {"summary": spec.summary, "options": spec.options_schema(), "origin": origin, "build": spec.reference}
    if isinstance(spec, MethodSpec):
        entry |= {
            "head": spec.head.name,
            "compare": spec.compare,
            "controls": [control.as_json() for control in spec.controls],
            "metrics": [metric.as_json() for metric in spec.metrics],
        }
    return entry
