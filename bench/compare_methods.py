"""The method tables: ARM's variants on three problems, or every registered method on uci-mfeat, over seeds.

    python bench/compare_methods.py [--suite arm|all] [--seeds 0 1 2 3 4] [--jobs 2] [--epochs-uci 30]
                                    [--epochs-synthetic 20]

``--suite arm`` (the default): baseline, OGM-GE, ARM with each estimator, ARM weighing with the
scores' moving average (``weighting: running``) and ARM without re-weighting on synthetic-shift, uci-mfeat (mor, fou) and (zer, fac). ``--suite all``: every
registered method with its defaults on uci-mfeat (mor, fou), for the README's method table. Both
train in this process's pool. ``--suite service``: every registered method on synthetic-shift and
uci-mfeat (mor, fou) through the real service (``armscope serve`` with its worker and database, a
sweep per data set from the client), and the tables read back from ``GET /benchmark``.

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
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench package, as the other benchmarks do

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

ARM_VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("baseline", "baseline", {}),
    ("ogm-ge (alpha 0.5)", "ogm-ge", {"alpha": 0.5}),
    ("arm (plugin)", "arm", {"estimator": "plugin"}),
    ("arm (debiased)", "arm", {"estimator": "debiased"}),
    ("arm (reference)", "arm", {"estimator": "reference"}),
    ("arm (debiased, running weights)", "arm", {"estimator": "debiased", "weighting": "running"}),
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
    parser.add_argument("--suite", choices=["arm", "all", "service"], default="arm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once, one torch thread each")
    parser.add_argument("--epochs-uci", type=int, default=30)
    parser.add_argument("--epochs-synthetic", type=int, default=20)
    parser.add_argument("--json", type=Path, help="default: bench/results/compare_methods[_all].json")
    args = parser.parse_args()
    if args.suite == "service":
        through_service(args)
        return
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


def through_service(args: argparse.Namespace) -> None:
    """Every method on two data sets as a researcher would run them: sweeps queued on a served worker."""
    from armscope.client import Client
    from armscope.plugins import METHODS
    from bench.serving import free_port, start_server

    problems = [
        ("synthetic-shift", {"dataset": "synthetic-shift", "epochs": args.epochs_synthetic}),
        ("uci-mfeat (mor, fou)", {"dataset": "uci-mfeat", "dataset_options": {"views": ["mor", "fou"]},
                                  "epochs": args.epochs_uci}),
    ]
    names = METHODS.names()
    total = len(problems) * len(names) * len(args.seeds)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        server = start_server(Path(home), port, "--concurrency", str(args.jobs), worker=True, wait=120)
        try:
            client = Client(f"http://127.0.0.1:{port}", timeout=120)
            sweeps = [client.sweep({**config, "device": "cpu"}, names, args.seeds, name=label)["id"]
                      for label, config in problems]
            wait_for_sweeps(client, sweeps, total)
            tables = [(label, client.benchmark(config["dataset"])) for label, config in problems]
        finally:
            server.terminate()
            server.wait(timeout=30)
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{total} runs through the service ({args.jobs} at a time) in {minutes:.1f} min; seeds {args.seeds}; "
          f"epochs: synthetic-shift {args.epochs_synthetic}, uci-mfeat {args.epochs_uci}\n")
    for label, answer in tables:
        print(f"**{label}**\n\n{benchmark_table(answer)}\n")


def wait_for_sweeps(client: Any, sweeps: list[int], total: int) -> None:
    """Until every run of ``sweeps`` has ended, with a bar; a failed run stops the benchmark naming it."""
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("through the service", total=total)
        while True:
            runs = [run for sweep in sweeps for run in client.list(sweep=sweep)]
            failed = [run for run in runs if run["status"] in ("failed", "cancelled")]
            if failed:
                raise RuntimeError(f"run {failed[0]['id']} ({failed[0]['name']}) {failed[0]['status']}: "
                                   f"{failed[0].get('error')}")
            done = sum(run["status"] == "succeeded" for run in runs)
            progress.update(task, completed=done)
            if done == total:
                return
            time.sleep(2)


def benchmark_table(answer: dict[str, Any]) -> str:
    """The README's table of one data set from ``GET /benchmark``."""

    def figure(value: dict[str, Any], digits: int = 3) -> str:
        if value["mean"] is None:
            return "-"
        spread = f" ± {value['std']:.{digits}f}" if value["std"] is not None else ""
        return f"{value['mean']:.{digits}f}{spread}"

    modalities = answer["modalities"]
    baseline = next((row for row in answer["rows"] if row["method"] == "baseline"), None)
    lines = [
        "| method | n | fused acc | masked acc (" + ", ".join(modalities) + ") | Shapley share ("
        + ", ".join(modalities) + ") | imbalance | BalanceBenchmark imbalance | s/epoch vs baseline | FLOPs/sample |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(answer["rows"], key=lambda r: -(r["val_acc"]["mean"] or 0)):
        relative = "-"
        if baseline and baseline["epoch_seconds"]["mean"] and row["epoch_seconds"]["mean"] is not None:
            relative = f"{row['epoch_seconds']['mean'] / baseline['epoch_seconds']['mean']:.2f}"
        flops = row["flops_per_sample"]["mean"]
        lines.append(
            f"| {row['method']} | {len(row['runs'])} | {figure(row['val_acc'])} | "
            + ", ".join(figure(row["masked"][m]) for m in modalities) + " | "
            + ", ".join(figure(row["share"][m], 2) for m in modalities) + " | "
            + f"{figure(row['imbalance'], 2)} | {figure(row['bb_imbalance'], 3)} | {relative} | "
            + (f"{flops:,.0f}" if flops is not None else "-") + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
