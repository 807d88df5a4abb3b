"""What many test modules share: run configs and epoch records without their timing.

Waiting on a run through the API (``run_of``, ``wait_status``, ``finished``) and starting real
processes live in ``tests.service_support``; the browser's server in ``tests.browser_support``.
"""

from __future__ import annotations

from typing import Any

import pytest

# The kinds of test (tests/conftest.py marks each test with one; pyproject.toml registers them), and
# where conftest keeps every collected test's kinds, before `-m` deselects any.
CATEGORIES = ("unit", "service", "browser", "gpu")
CATEGORIES_OF = pytest.StashKey[dict[str, list[str]]]()

# A run that trains for seconds (4 epochs of 6,000 samples in batches of 16): long enough to
# cancel, kill or restart a worker in the middle of it, and short enough to finish.
SLOW: dict[str, Any] = {"method": "ogm-ge", "epochs": 4, "batch_size": 16, "device": "cpu",
                        "dataset_options": {"n_samples": 6000, "dims": 8}, "model_options": {"feature_dim": 16}}

# Run configs as a client posts them (defaults filled in by the service), for API and dashboard tests.
ONE_EPOCH: dict[str, Any] = {"method": "arm", "epochs": 1, "dataset_options": {"n_samples": 300}}
TWO_EPOCHS: dict[str, Any] = {"method": "arm", "epochs": 2, "dataset_options": {"n_samples": 300}}
# One that names no method: the dashboard tests add theirs (or get the default, arm).
FORM_RUN: dict[str, Any] = {"dataset": "synthetic-shift", "epochs": 2, "device": "cpu",
                            "dataset_options": {"n_samples": 300}}

# A stored run's config as the store keeps it, for tests that write to the store directly.
STORED: dict[str, Any] = {"method": "arm", "dataset": "synthetic-shift", "seed": 0, "epochs": 1, "tags": [], "name": None}


def without_timing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Epoch records without the keys that measure time, which no two runs share."""
    from armscope.train import TIMING_KEYS  # imports torch: only when a test compares runs

    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def trained_model(config: Any, folder: Any) -> tuple[Any, Any]:
    """The data and the model a finished run of ``config`` left in ``folder``, rebuilt and in eval mode."""
    from armscope.data.base import build_dataset
    from armscope.methods.base import build_method
    from armscope.rundir import RunDir
    from armscope.train import build_model

    bundle = build_dataset(config.dataset, config.parsed_dataset_options, config.seed)
    options = config.parsed_model_options
    method = build_method(config.method, config.parsed_method_options, bundle.modalities, bundle.n_classes,
                          options.feature_dim)
    model = build_model(bundle, method, options)
    model.load_state_dict(RunDir(folder).load_checkpoint()["model"])
    return bundle, model.eval()
