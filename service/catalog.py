"""What can be run: the registered methods, data sets and encoders with their option schemas."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from armscope.config import run_config_schema
from armscope.data import DATASETS
from armscope.methods import METHODS
from armscope.models import ENCODERS, ModelOptions
from armscope.registry import Registry


def _entries(registry: Registry[Any]) -> dict[str, Any]:
    return {e.name: {"summary": e.summary, "options": e.options_schema()} for e in registry.entries()}


@lru_cache(maxsize=1)
def catalog() -> dict[str, Any]:
    """Methods, data sets and encoders with their option JSON Schemas, and the RunConfig schema.

    Built once per process: the registries are fixed once the engine is imported.
    """
    return {
        "methods": _entries(METHODS),
        "datasets": _entries(DATASETS),
        "encoders": _entries(ENCODERS),
        "run_config": run_config_schema(),
    }


@lru_cache(maxsize=1)
def model_options_schema() -> dict[str, Any]:
    """The JSON Schema of a RunConfig's ``model_options`` (the launch form's model section)."""
    return ModelOptions.model_json_schema()
