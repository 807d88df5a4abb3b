"""A sweep's search over RunConfig fields: each field's values (a list, a linear range or a log range), the
dotted paths a search may name, and the combinations a grid or a random search makes of them.

Pure functions of the spec and the registries (no store, no torch), so a sweep's size is known and its
fields checked before any config is built.
"""

from __future__ import annotations

import difflib
import json
import math
import random
from itertools import product
from typing import Any, Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from armscope.config import RunConfig
from armscope.models.base import ModelOptions
from armscope.plugins import DATASETS, ENCODERS, METHODS

MAX_POINTS = 1000  # values one searched field may take
# Fields a search may not name, and what to use instead.
RESERVED = {
    "seed": "the seeds are the sweep's own `seeds` list",
    "method": "the methods are the sweep's own `methods` (and `variants`)",
    "name": "a sweep's runs are named from their swept values",
    "tags": "tags are the same for every run of a sweep: set them in `config`",
    "project": "a sweep's runs share its project: set it in `config`",
}
OPTION_GROUPS = ("dataset_options", "method_options", "model_options")
Assignment = dict[str, Any]  # a searched path -> the value one run gets


class Axis(BaseModel):
    """The values one searched field takes: exactly one of a list, a linear range or a log range.

    A range ``[lo, hi, n]`` is n evenly spaced values from lo to hi (both included); a log range spaces them
    evenly on a log scale. In a random search a range is drawn from uniformly, a log range log-uniformly, and
    a list by picking one of its values. When lo and hi are whole numbers the values are whole numbers too.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[Any] | None = Field(None, min_length=1, max_length=MAX_POINTS)
    range: tuple[int | float, int | float, int] | None = Field(None, description="[lo, hi, n]: n values from lo to hi.")
    log_range: tuple[int | float, int | float, int] | None = Field(
        None, description="[lo, hi, n]: n values from lo to hi, evenly spaced on a log scale (lo, hi > 0)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> "Axis":
        given = [k for k in ("values", "range", "log_range") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of values, range ([lo, hi, n]) or log_range ([lo, hi, n])")
        bounds = self.range or self.log_range
        if bounds is not None:
            lo, hi, n = bounds
            if not 1 <= n <= MAX_POINTS:
                raise ValueError(f"n must be between 1 and {MAX_POINTS}, got {n}")
            if self.log_range is not None and (lo <= 0 or hi <= 0):
                raise ValueError("a log range needs lo > 0 and hi > 0")
        return self

    @property
    def whole(self) -> bool:
        """Whether a range's bounds are whole numbers, so its values are whole numbers (batch sizes, widths)."""
        bounds = self.range or self.log_range
        return bounds is not None and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds[:2])

    def points(self) -> list[Any]:
        """Every value a grid search takes, distinct, in order."""
        if self.values is not None:
            return list({json.dumps(v, sort_keys=True): v for v in self.values}.values())
        lo, hi, n = self.range or self.log_range  # type: ignore[misc]
        steps = [i / (n - 1) for i in range(n)] if n > 1 else [0.0]
        if self.range is not None:
            raw = [lo + (hi - lo) * t for t in steps]
        else:
            raw = [10 ** (math.log10(lo) + (math.log10(hi) - math.log10(lo)) * t) for t in steps]
        tidy = [float(f"{v:.12g}") for v in raw]  # 0.1 + 0.2 and 10 ** -3 without their last-bit noise
        if self.whole and all(v.is_integer() for v in tidy):
            return list(dict.fromkeys(int(v) for v in tidy))
        return list(dict.fromkeys(tidy))

    def draw(self, rng: random.Random) -> Any:
        """One value of a random search."""
        if self.values is not None:
            return rng.choice(self.values)
        lo, hi, _ = self.range or self.log_range  # type: ignore[misc]
        if self.range is not None:
            value = rng.uniform(lo, hi)
        else:
            value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return round(value) if self.whole else float(f"{value:.4g}")

    def describe(self) -> str:
        """``0.01, 0.1`` / ``0.01 to 0.1, 5 values`` / ``0.0001 to 0.1, 4 values on a log scale``."""
        if self.values is not None:
            return ", ".join(label(v) for v in self.values)
        lo, hi, n = self.range or self.log_range  # type: ignore[misc]
        scale = " on a log scale" if self.log_range is not None else ""
        return f"{label(lo)} to {label(hi)}, {n} value{'s' if n != 1 else ''}{scale}"


def label(value: Any) -> str:
    """A value as a run's name shows it: ``0.01``, ``1e-05``, ``true``, ``[64,64]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


# -- paths -----------------------------------------------------------------------------------


def get_path(tree: Any, path: str) -> Any:
    """The value at a dotted path of a config, or None where it has none."""
    for part in path.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def set_path(tree: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``tree`` with ``value`` at the dotted ``path`` (dicts along it copied, missing ones made)."""
    head, _, rest = path.partition(".")
    if not rest:
        return {**tree, head: value}
    child = tree.get(head)
    return {**tree, head: set_path(child if isinstance(child, dict) else {}, rest, value)}


def option_names(registry: Any, names: Iterable[str]) -> list[str]:
    """Every option of the registered entries ``names`` (unknown ones skipped), in order, each once."""
    found: dict[str, None] = {}
    for name in names:
        if name in registry:
            found.update(dict.fromkeys(registry.get(name).options.model_fields))
    return list(found)


class Scope:
    """What a search's paths may name: the RunConfig's fields and the options of the sweep's data sets,
    methods and default encoder."""

    def __init__(self, datasets: Sequence[str], methods: Sequence[str], encoder: str) -> None:
        self.owners = {
            "dataset_options": f"the data set {' or '.join(dict.fromkeys(datasets))}",
            "method_options": f"any method of this sweep ({', '.join(dict.fromkeys(methods))})",
            "model_options": "model_options",
        }
        self.options = {
            "dataset_options": option_names(DATASETS, datasets),
            "method_options": option_names(METHODS, methods),
            "model_options": list(ModelOptions.model_fields),
        }
        self.encoder_options = ["name", *option_names(ENCODERS, [encoder])]

    def candidates(self) -> list[str]:
        """Every path this scope accepts, for 'did you mean'."""
        top = [f for f in RunConfig.model_fields if f not in RESERVED]
        nested = [f"{group}.{o}" for group, options in self.options.items() for o in options]
        return top + nested + [f"model_options.encoder.{o}" for o in self.encoder_options]

    def problem(self, path: str) -> str | None:
        """Why ``path`` cannot be searched, or None when it can."""
        parts = path.split(".")
        head = parts[0]
        if head in RESERVED:
            return f"'{head}' cannot be searched: {RESERVED[head]}"
        if head not in RunConfig.model_fields:
            return self._unknown(path)
        if len(parts) == 1:
            return None
        if head not in OPTION_GROUPS:
            return f"'{head}' is a single value, not a group of options: search '{head}' itself"
        if parts[1] not in self.options[head]:
            options = self.options[head]
            return (f"'{parts[1]}' is not an option of {self.owners[head]}{did_you_mean(parts[1], options)}; "
                    f"its options: {', '.join(options) or '(none)'}")
        if head == "model_options" and parts[1] == "encoders":
            return None  # per-modality overrides, at any depth: each run's RunConfig checks them
        if head == "model_options" and parts[1] == "encoder" and len(parts) > 2:
            if parts[2] not in self.encoder_options:
                return (f"'{parts[2]}' is not an option of the encoder{did_you_mean(parts[2], self.encoder_options)}; "
                        f"its options: {', '.join(self.encoder_options)}")
            return None if len(parts) == 3 else self._unknown(path)
        return None if len(parts) == 2 else self._unknown(path)

    def _unknown(self, path: str) -> str:
        hint = did_you_mean(path, self.candidates())
        return (f"unknown field '{path}'{hint}; a search names a RunConfig field or an option by its dotted path "
                "(lr, method_options.alpha, model_options.feature_dim, dataset_options.n_samples)")


def did_you_mean(path: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'method_options.alpha'?)`` for a near miss, or for an option named without its group."""
    last = {c: c.rsplit(".", 1)[-1] for c in candidates}
    near = [c for c in candidates if last[c] == path] or difflib.get_close_matches(path, candidates, n=1)
    if not near:  # a misspelt option without its group: alpah -> method_options.alpha
        close = difflib.get_close_matches(path.rsplit(".", 1)[-1], list(set(last.values())), n=1, cutoff=0.8)
        near = [c for c in candidates if close and last[c] == close[0]]
    return f" (did you mean '{near[0]}'?)" if near else ""


def applies(path: str, method: str) -> bool:
    """Whether a searched path is a field of a run of ``method``: a method option only of the methods
    that have it (the others run once, without it)."""
    parts = path.split(".")
    if parts[0] != "method_options" or len(parts) < 2:
        return True
    return method in METHODS and parts[1] in METHODS.get(method).options.model_fields


# -- combinations ---------------------------------------------------------------------------


def grid_size(axes: dict[str, Axis], paths: Sequence[str]) -> int:
    """How many combinations a grid over ``paths`` makes, without making them."""
    return math.prod(len(axes[p].points()) for p in paths)


def grid(axes: dict[str, Axis], paths: Sequence[str]) -> list[Assignment]:
    """Every combination of the values of ``paths``, the first path varying slowest."""
    return [dict(zip(paths, values)) for values in product(*(axes[p].points() for p in paths))]


def draws(axes: dict[str, Axis], samples: int, seed: int) -> list[Assignment]:
    """``samples`` random combinations, the same for the same spec and seed."""
    rng = random.Random(seed)
    return [{path: axis.draw(rng) for path, axis in axes.items()} for _ in range(samples)]


def distinct(assignments: Iterable[Assignment], paths: Sequence[str]) -> list[Assignment]:
    """The assignments reduced to ``paths``, each once, in order (identical draws run once)."""
    kept: dict[str, Assignment] = {}
    for assignment in assignments:
        reduced = {p: assignment[p] for p in paths}
        kept.setdefault(json.dumps(reduced, sort_keys=True), reduced)
    return list(kept.values())
