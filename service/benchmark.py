"""The benchmark: every method on one data set as a row of final numbers, mean ± std over seeds.

BalanceBenchmark reports each method's performance, imbalance and complexity on each data set;
here the table is live, built from the store's succeeded runs whenever it is asked for. A row is a
set of runs whose configs differ only in their seed (``seed_sets``), so a method with other
options, epochs or an encoder of its own is a row of its own, labelled with what differs. Each
row gives the fused accuracy, every modality's masked accuracy and Shapley share, the imbalance
(ours and BalanceBenchmark's), and the cost; methods with no run on the data set yet are listed
so that a face can offer to launch them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service import seed_sets as ss
from service.catalog import catalog
from service.db.store import Store
from service.errors import InvalidInput

# The final record's figures each row reports, as (key, what it is) for the whole row.
ROW_FIGURES = ("val_acc", "imbalance", "bb_imbalance", "parameters", "flops_per_sample", "peak_memory_mb")


def benchmark(store: Store, dataset: str, encoder: str | None = None, project: str | None = None) -> dict[str, Any]:
    """The benchmark table of ``dataset`` (runs whose default encoder is ``encoder``, and of ``project``, when
    given)."""
    registry = catalog()
    if dataset not in registry["datasets"]:
        raise InvalidInput.at("dataset", f"unknown data set {dataset!r}; choose from: {', '.join(registry['datasets'])}")
    if encoder is not None and encoder not in registry["encoders"]:
        raise InvalidInput.at("encoder", f"unknown encoder {encoder!r}; choose from: {', '.join(registry['encoders'])}")
    runs = [run for run in store.finished_runs(dataset, project) if encoder is None or _encoder(run) == encoder]
    modalities = _modalities(runs)
    rows = [_row(label, members, modalities) for label, members in ss.seed_sets(runs)]
    present = {row["method"] for row in rows}
    return {
        "dataset": dataset,
        "encoder": encoder,
        "project": project,
        "modalities": modalities,
        "rows": rows,
        "without_runs": [name for name in registry["methods"] if name not in present],
    }


def _encoder(run: dict[str, Any]) -> str | None:
    return ((run.get("config") or {}).get("model_options") or {}).get("encoder", {}).get("name")


def _modalities(runs: Sequence[dict[str, Any]]) -> list[str]:
    """The modalities the runs' records name, in first-seen order (one data set's options may vary them)."""
    seen: dict[str, None] = {}
    for run in runs:
        for key in run["final"]:
            family, dot, modality = key.partition(".")
            if dot and family == "shapley":
                seen.setdefault(modality)
    return list(seen)


def _row(label: str, members: list[dict[str, Any]], modalities: list[str]) -> dict[str, Any]:
    """One seed set's final numbers, each as {"mean", "std", "n"} over the runs that logged it."""
    finals = [run["final"] for run in members]
    shares = [_shares(final, modalities) for final in finals]
    return {
        "label": label,
        "method": members[0]["method"],
        "runs": [run["id"] for run in members],
        "seeds": [run["seed"] for run in members],
        "epochs": _over(finals, "epoch"),
        **{key: _over(finals, key) for key in ROW_FIGURES},
        "epoch_seconds": ss.summary([f["elapsed_seconds"] / f["epoch"] for f in finals if _per_epoch(f)]),
        "masked": {m: _over(finals, f"val_acc.{m}") for m in modalities},
        "share": {m: ss.summary([s[m] for s in shares if s.get(m) is not None]) for m in modalities},
    }


def _per_epoch(final: dict[str, Any]) -> bool:
    return ss.number(final.get("elapsed_seconds")) is not None and bool(final.get("epoch"))


def _shares(final: dict[str, Any], modalities: list[str]) -> dict[str, float | None]:
    """Each modality's Shapley value over their sum (the fused accuracy less the empty coalition's)."""
    values = {m: ss.number(final.get(f"shapley.{m}")) for m in modalities}
    total = sum(v for v in values.values() if v is not None)
    return {m: (v / total if v is not None and total else None) for m, v in values.items()}


def _over(finals: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    return ss.summary([v for f in finals if (v := ss.number(f.get(key))) is not None])
