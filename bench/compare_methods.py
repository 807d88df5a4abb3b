"""The method tables: ARM's variants on three problems, or every registered method on uci-mfeat, over seeds.

    python bench/compare_methods.py [--suite arm|all] [--seeds 0 1 2 3 4] [--jobs 2] [--epochs-uci 30]
                                    [--epochs-synthetic 20]

``--suite arm`` (the default): baseline, OGM-GE, ARM with each estimator and ARM without
re-weighting on synthetic-shift, uci-mfeat (mor, fou) and (zer, fac). ``--suite all``: every
registered method with its defaults on uci-mfeat (mor, fou), for the README's method table.

For every data set and method: the final fused validation accuracy, each modality's masked accuracy
and Shapley share (its Shapley value over the sum of them, which is the fused accuracy less the
empty coalition's), the imbalance, and the mean epoch time relative to the baseline run of the same
seed, each as mean +- std over seeds. Runs train in ``--jobs`` processes of one torch thread each.
Prints a Markdown table for the README and writes every run's numbers to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

ARM_VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("baseline", "baseline", {}),
    ("ogm-ge (alpha 0.5)", "ogm-ge", {"alpha": 0.5}),
    ("arm (plugin)", "arm", {"estimator": "plugin"}),
    ("arm (debiased)", "arm", {"estimator": "debiased"}),
    ("arm (reference)", "arm", {"estimator": "reference"}),
    ("arm without re-weighting", "arm", {"reweight": False}),
]


def methods(args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, method, options) per line of the table; the baseline first, the reference for the time."""
    if args.suite == "arm":
        return ARM_VARIANTS
    from armscope.plugins import METHODS

    names = sorted(METHODS.names(), key=lambda name: name != "baseline")
    return [(name, name, {}) for name in names]


def datasets(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    uci = ("uci-mfeat (mor, fou)", {"dataset": "uci-mfeat", "dataset_options": {"views": ["mor", "fou"]},
                                    "epochs": args.epochs_uci})
    if args.suite == "all":
        return [uci]
    return [
        ("synthetic-shift", {"dataset": "synthetic-shift", "epochs": args.epochs_synthetic}),
        uci,
        ("uci-mfeat (zer, fac)", {"dataset": "uci-mfeat", "dataset_options": {"views": ["zer", "fac"]},
                                  "epochs": args.epochs_uci}),
    ]


def one_run(raw: dict[str, Any], out: str) -> dict[str, Any]:
    """Train one config in this process (one torch thread) and return its final numbers."""
    import torch

    from armscope.config import RunConfig
    from armscope.rundir import RunDir
    from armscope.train import train

    torch.set_num_threads(1)
    config = RunConfig.model_validate(raw)
    result = train(config, out)
    if result.status != "succeeded" or result.final is None:
        raise RuntimeError(f"{config.display_name()} {result.status}: {result.error}")
    final = result.final
    modalities = [k.split(".", 1)[1] for k in final if k.startswith("shapley.")]
    total = sum(final[f"shapley.{m}"] for m in modalities)
    seconds = [r["epoch_seconds"] for r in RunDir(out).metrics()]
    return {
        "val_acc": final["val_acc"],
        "masked": {m: final[f"val_acc.{m}"] for m in modalities},
        "share": {m: final[f"shapley.{m}"] / total if total else float("nan") for m in modalities},
        "imbalance": final["imbalance"],
        "epoch_seconds": statistics.mean(seconds),
    }


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def table(
    results: dict[tuple[str, str, int], dict[str, Any]],
    data_labels: list[str],
    arms: list[tuple[str, str, dict[str, Any]]],
    seeds: list[int],
) -> str:
    lines = [
        "| data set | method | fused acc | masked acc per modality | Shapley share per modality | imbalance "
        "| s/epoch vs baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for data in data_labels:
        for label, _, _ in arms:
            runs = [results[(data, label, s)] for s in seeds]
            modalities = list(runs[0]["masked"])
            masked = ", ".join(f"{m} {mean_std([r['masked'][m] for r in runs])}" for m in modalities)
            share = ", ".join(f"{m} {mean_std([r['share'][m] for r in runs], 2)}" for m in modalities)
            relative = [
                r["epoch_seconds"] / results[(data, arms[0][0], s)]["epoch_seconds"] for r, s in zip(runs, seeds)
            ]
            lines.append(
                f"| {data} | {label} | {mean_std([r['val_acc'] for r in runs])} | {masked} | {share} "
                f"| {mean_std([r['imbalance'] for r in runs], 2)} | {mean_std(relative, 2)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=["arm", "all"], default="arm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once, one torch thread each")
    parser.add_argument("--epochs-uci", type=int, default=30)
    parser.add_argument("--epochs-synthetic", type=int, default=20)
    parser.add_argument("--json", type=Path, help="default: bench/results/compare_methods[_all].json")
    args = parser.parse_args()
    args.json = args.json or Path(f"bench/results/compare_methods{'_all' if args.suite == 'all' else ''}.json")
    arms = methods(args)
    plan = [
        (data_label, label, seed, {**data_cfg, "method": method, "method_options": options, "seed": seed,
                                   "device": "cpu"})
        for data_label, data_cfg in datasets(args)
        for label, method, options in arms
        for seed in args.seeds
    ]
    results: dict[tuple[str, str, int], dict[str, Any]] = {}
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with tempfile.TemporaryDirectory() as tmp, Progress(*columns) as progress, \
            ProcessPoolExecutor(args.jobs) as pool:
        task = progress.add_task("training", total=len(plan))
        futures = {
            pool.submit(one_run, raw, str(Path(tmp) / f"run-{i}")): (data, label, seed)
            for i, (data, label, seed, raw) in enumerate(plan)
        }
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            progress.advance(task)
    minutes = (time.perf_counter() - started) / 60
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([{"data": d, "method": m, "seed": s, **r} for (d, m, s), r in results.items()],
                                    indent=1))
    print(f"\nseeds {args.seeds}; epochs: uci-mfeat {args.epochs_uci}, synthetic-shift {args.epochs_synthetic}; "
          f"{len(plan)} runs in {minutes:.1f} min with {args.jobs} jobs\n")
    print(table(results, [d for d, _ in datasets(args)], arms, args.seeds))


if __name__ == "__main__":
    main()
