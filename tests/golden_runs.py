"""Short CPU runs of every in-tree method, and what they log, for the golden-metrics test.

``tests/golden/methods.json`` holds what these runs logged before the step interface was
redesigned; the redesign must reproduce it bit for bit. Rewrite the file (``python -m
tests.golden_runs``) only for a change that is meant to change the numbers, and say so.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from armscope.config import RunConfig
from armscope.rundir import RunDir
from armscope.train import train
from tests.support import without_timing

FIXTURE = Path(__file__).parent / "golden" / "methods.json"
THREE = {"modalities": ["audio", "visual", "text"]}
# ARM's default estimator when the fixture was recorded; the default is now "debiased".
PLUGIN = {"estimator": "plugin"}

# name: (config overrides, epochs of a first run that is then resumed, or None)
CASES: dict[str, tuple[dict[str, Any], int | None]] = {
    "baseline": ({"method": "baseline"}, None),
    "unimodal": ({"method": "unimodal"}, None),
    "unimodal-visual": ({"method": "unimodal", "method_options": {"modality": "visual"}}, None),
    "ogm": ({"method": "ogm", "method_options": {"alpha": 0.5}}, None),
    "ogm-window": ({"method": "ogm", "epochs": 3, "method_options": {"modulation_start": 2, "modulation_end": 2}}, None),
    "ogm-ge": ({"method": "ogm-ge", "method_options": {"alpha": 0.8}}, None),
    "arm-plugin": ({"method": "arm", "method_options": {"estimator": "plugin"}}, None),
    "arm-reference": ({"method": "arm", "method_options": {"estimator": "reference"}}, None),
    "arm-clamped": ({"method": "arm", "method_options": {"w_min": 0.99, "w_max": 1.01, **PLUGIN}}, None),
    "arm-bf16": ({"method": "arm", "precision": "bf16", "method_options": PLUGIN}, None),
    "baseline-adamw": ({"method": "baseline", "optimizer": "adamw", "lr": 0.01}, None),
    "arm-three-modalities": (
        {"method": "arm", "dataset_options": {"n_samples": 600, "dims": 8, **THREE}, "method_options": PLUGIN}, None
    ),
    "ogm-ge-three-modalities": ({"method": "ogm-ge", "dataset_options": {"n_samples": 600, "dims": 8, **THREE}}, None),
    "arm-resumed": ({"method": "arm", "epochs": 3, "method_options": PLUGIN}, 1),
    "ogm-ge-resumed": ({"method": "ogm-ge", "epochs": 3}, 2),
}


def config(**overrides: Any) -> RunConfig:
    raw: dict[str, Any] = {
        "dataset": "synthetic-shift",
        "dataset_options": {"n_samples": 600, "dims": 8},
        "epochs": 2,
        "batch_size": 64,
        "lr": 0.1,
        "model_options": {"feature_dim": 16, "encoder": {"name": "mlp", "hidden": [32]}},
        "device": "cpu",
    }
    return RunConfig.model_validate(raw | overrides)


RECORDED_THREADS = 2


def logged(name: str, folder: Path) -> dict[str, Any]:
    """What case ``name`` logs: its epoch records without timing, its events without clock time."""
    overrides, first_epochs = CASES[name]
    run = folder / name
    threads = torch.get_num_threads()
    # Reductions split across threads add in another order: the fixture was recorded with two.
    torch.set_num_threads(RECORDED_THREADS)
    try:
        if first_epochs is not None:
            train(config(**{**overrides, "epochs": first_epochs}), run)
        result = train(config(**overrides), run, resume=first_epochs is not None)
    finally:
        torch.set_num_threads(threads)
    assert result.status == "succeeded", result.error
    records = without_timing(RunDir(run).metrics())
    events = [{k: v for k, v in e.items() if k != "time"} for e in RunDir(run).events()]
    return {"metrics": records, "events": events}


def write() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        golden = {name: logged(name, Path(tmp)) for name in CASES}
    FIXTURE.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    write()
