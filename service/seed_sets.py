"""Runs that differ only in their seed, taken together: which runs form a set, and their mean ± std.

A result is reported over seeds. The API serves these figures to scripts and the dashboard draws
them, so both use these pure functions over the store's run dicts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from service.catalog import metric_of

Record = dict[str, Any]

# Config fields that do not make a run a different experiment.
IGNORED = ("name", "seed", "tags", "project")


def lower_is_better(key: str) -> bool:
    """Whether a metric's best value is its smallest (losses, times), as its declaration says; else its largest."""
    metric = metric_of(key)
    return metric is not None and metric.better == "lower"


def flatten(config: Any, prefix: str = "", keep_empty: bool = True) -> dict[str, Any]:
    """Nested dicts as dotted keys; an empty dict is kept as a value unless ``keep_empty`` is false."""
    if isinstance(config, dict) and (config or not keep_empty):
        out: dict[str, Any] = {}
        for key, value in config.items():
            out.update(flatten(value, f"{prefix}{key}.", keep_empty))
        return out
    return {prefix[:-1]: config}


def _show(value: Any) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value)


def config_diff(
    configs: Sequence[dict[str, Any]], ignore: Sequence[str] = ("name",)
) -> tuple[list[str], list[dict[str, str]]]:
    """The dotted config fields whose values are not the same in every config, and each config's values."""
    flat = [flatten(c or {}, keep_empty=False) for c in configs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    differing = [k for k in keys if k not in ignore and len({_show(f.get(k, None)) for f in flat}) > 1]
    return differing, [{k: _show(f.get(k)) for k in differing} for f in flat]


def seed_sets(runs: Sequence[Record]) -> list[tuple[str, list[Record]]]:
    """Runs whose configs differ only in seed (name and tags aside), in first-seen order, each set labelled.

    The label is the method, the config fields that tell this set from the other sets of the same
    method (another method's options differ anyway), and the set's size.
    """
    sets: dict[str, list[Record]] = {}
    for run in runs:
        config = {k: v for k, v in (run.get("config") or {}).items() if k not in IGNORED}
        sets.setdefault(json.dumps(config, sort_keys=True, default=str), []).append(run)
    members = list(sets.values())
    extras: dict[int, str] = {}
    for method in dict.fromkeys(m[0].get("method") or "" for m in members):
        same = [i for i, m in enumerate(members) if (m[0].get("method") or "") == method]
        keys, rows = config_diff([members[i][0].get("config") or {} for i in same], ignore=IGNORED)
        extras.update({i: ", ".join(f"{k}={row[k]}" for k in keys) for i, row in zip(same, rows)})
    return [
        ((m[0].get("method") or "") + (f" · {extras[i]}" if extras[i] else "") + f" (n={len(m)})", m)
        for i, m in enumerate(members)
    ]


def spread(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def number(value: Any) -> float | None:
    """A finite number from a record, or None (missing, NaN, infinite, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def points(records: Iterable[Record], key: str) -> list[tuple[int, float]]:
    """(epoch, value) for every record with a finite value of ``key``."""
    return [(int(r["epoch"]), v) for r in records if (v := number(r.get(key))) is not None]


def epoch_stats(per_run: Sequence[Sequence[tuple[int, float, float]]]) -> dict[str, list[Any]]:
    """Per epoch over the runs that reached it: mean x, mean y, sample std of y (0 for one run), run count.

    ``per_run`` holds each run's (epoch, x, y) triples; x is what the curve is drawn against.
    """
    by_epoch: dict[int, list[tuple[float, float]]] = {}
    for triples in per_run:
        for epoch, x, y in triples:
            by_epoch.setdefault(epoch, []).append((x, y))
    out: dict[str, list[Any]] = {"epoch": [], "x": [], "mean": [], "std": [], "n": []}
    for epoch in sorted(by_epoch):
        pairs = by_epoch[epoch]
        mean, deviation = spread([y for _, y in pairs])
        out["epoch"].append(epoch)
        out["x"].append(sum(x for x, _ in pairs) / len(pairs))
        out["mean"].append(mean)
        out["std"].append(deviation or 0.0)
        out["n"].append(len(pairs))
    return out


def last_and_best(per_run: Sequence[Sequence[tuple[int, float]]], key: str) -> tuple[list[tuple[int, float]], ...]:
    """Each run's last (epoch, value) and its best one: the largest, or the smallest where lower is better."""
    pick = min if lower_is_better(key) else max
    ran = [p for p in per_run if p]
    return [p[-1] for p in ran], [pick(p, key=lambda point: point[1]) for p in ran]


def summarise(members: Sequence[Record], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """For each key: the per-epoch mean ± std over the set's runs, and the mean ± std of their last and best values."""
    out = {}
    for key in keys:
        per_run = [points(run.get("records") or [], key) for run in members]
        if not any(per_run):
            continue
        stats = epoch_stats([[(e, e, v) for e, v in p] for p in per_run])
        last, best = last_and_best(per_run, key)
        out[key] = {
            "epoch": stats["epoch"],
            "mean": stats["mean"],
            "std": stats["std"],
            "n": stats["n"],
            "last": summary([v for _, v in last]),
            "best": summary([v for _, v in best]),
        }
    return out


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (None below two values) and count; a mean of None when there are none."""
    if not values:
        return {"mean": None, "std": None, "n": 0}
    mean, deviation = spread(values)
    return {"mean": mean, "std": deviation, "n": len(values)}
