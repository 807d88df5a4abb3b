"""Final fused accuracy and the weakest modality's masked accuracy, per method, over seeds.

    python bench/compare_methods.py [--seeds 0 1 2] [--epochs-uci 30] [--epochs-synthetic 20]

Prints a Markdown table (mean +- std over seeds) for the README.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from rich.progress import Progress

from armscope.config import RunConfig
from armscope.train import train

METHODS: list[tuple[str, str, dict[str, Any]]] = [
    ("baseline", "baseline", {}),
    ("ogm-ge (alpha 0.5)", "ogm-ge", {"alpha": 0.5}),
    ("arm (plugin)", "arm", {"estimator": "plugin"}),
    ("arm (reference)", "arm", {"estimator": "reference"}),
]


def datasets(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("uci-mfeat (mor, fou)", {"dataset": "uci-mfeat", "dataset_options": {"views": ["mor", "fou"]},
                                  "epochs": args.epochs_uci}),
        ("synthetic-shift", {"dataset": "synthetic-shift", "epochs": args.epochs_synthetic}),
    ]


def final_numbers(out: Path, config: RunConfig) -> tuple[float, float, str]:
    result = train(config, out)
    if result.status != "succeeded" or result.final is None:
        raise RuntimeError(f"{config.display_name()} {result.status}: {result.error}")
    record = result.final
    masked = {k.split(".", 1)[1]: v for k, v in record.items() if k.startswith("val_acc.")}
    weakest = min(masked, key=masked.get)
    return record["val_acc"], masked[weakest], weakest


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} +- {spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs-uci", type=int, default=30)
    parser.add_argument("--epochs-synthetic", type=int, default=20)
    args = parser.parse_args()
    rows = []
    plan = [(d, m) for d in datasets(args) for m in METHODS]
    with tempfile.TemporaryDirectory() as tmp, Progress() as progress:
        task = progress.add_task("runs", total=len(plan) * len(args.seeds))
        for (data_label, data_cfg), (method_label, method, options) in plan:
            fused, weak, names = [], [], set()
            for seed in args.seeds:
                config = RunConfig.model_validate(
                    {**data_cfg, "method": method, "method_options": options, "seed": seed, "device": "cpu"}
                )
                out = Path(tmp) / f"{method}-{len(rows)}-{seed}"
                acc, weakest_acc, weakest = final_numbers(out, config)
                fused.append(acc)
                weak.append(weakest_acc)
                names.add(weakest)
                progress.advance(task)
            rows.append((data_label, method_label, mean_std(fused), mean_std(weak), "/".join(sorted(names))))
    print(f"\nseeds {args.seeds}; epochs: uci-mfeat {args.epochs_uci}, synthetic-shift {args.epochs_synthetic}\n")
    print("| data set | method | fused val acc | weakest modality's masked acc | weakest |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
