from __future__ import annotations

from typing import Any

import pytest

from armscope.config import RunConfig


@pytest.fixture
def tiny_config() -> Any:
    """A run that trains in well under a second: small synthetic data, few epochs."""

    def make(**overrides: Any) -> RunConfig:
        raw: dict[str, Any] = {
            "dataset": "synthetic-shift",
            "dataset_options": {"n_samples": 600, "dims": 8},
            "method": "arm",
            "epochs": 3,
            "batch_size": 64,
            "model_options": {"feature_dim": 16, "encoder": {"name": "mlp", "hidden": [32]}},
            "device": "cpu",
        }
        raw.update(overrides)
        return RunConfig.model_validate(raw)

    return make
