"""What every registered method does, checked for each one: a new method file is held to all of it.

Deterministic for a seed; a resumed run ends with exactly the numbers of an uninterrupted one (its
state checkpointed); bf16 and three modalities train (or M above the method's limit is refused
naming it); a real step with ResNet-18 encoders trains and stays finite. The step's freedom from host
synchronisation is in ``test_gpu_path``; what it logs, in ``test_metric_declarations``.
"""

from __future__ import annotations

import math

import pytest
import torch

from armscope.config import RunConfig
from armscope.data.base import TensorSplit
from armscope.epoch_pass import TrainingData
from armscope.methods import METHODS
from armscope.rundir import RunDir
from armscope.step import TrainingStep
from armscope.train import train
from tests.support import without_timing
from tests.test_gpu_path import av_model, batch

pytestmark = pytest.mark.unit

NAMES = sorted(METHODS.names())


def run(tiny_config, folder, **overrides):
    result = train(tiny_config(**overrides), folder)
    assert result.status == "succeeded", result.error
    return without_timing(RunDir(folder).metrics())


@pytest.mark.parametrize("method", NAMES)
def test_the_same_seed_gives_the_same_numbers(tiny_config, tmp_path, method):
    assert run(tiny_config, tmp_path / "a", method=method, epochs=2) == run(tiny_config, tmp_path / "b", method=method, epochs=2)


@pytest.mark.parametrize("method", NAMES)
def test_a_resumed_run_ends_with_the_numbers_of_an_uninterrupted_one(tiny_config, tmp_path, method):
    whole = run(tiny_config, tmp_path / "whole", method=method, epochs=3)
    run(tiny_config, tmp_path / "resumed", method=method, epochs=1)
    resumed = train(tiny_config(method=method, epochs=3), tmp_path / "resumed", resume=True)
    assert resumed.status == "succeeded", resumed.error
    assert without_timing(RunDir(tmp_path / "resumed").metrics()) == whole


@pytest.mark.parametrize("method", NAMES)
def test_it_trains_in_bf16(tiny_config, tmp_path, method):
    (record,) = run(tiny_config, tmp_path / "run", method=method, epochs=1, precision="bf16")
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["val_loss"])


@pytest.mark.parametrize("method", NAMES)
def test_it_trains_with_three_modalities_or_refuses_them_naming_its_limit(tiny_config, tmp_path, method):
    three = {"n_samples": 600, "dims": 8, "modalities": ["audio", "visual", "text"]}
    limit = getattr(METHODS.get(method).options, "MAX_MODALITIES", None)
    if limit is not None and limit < 3:
        with pytest.raises(ValueError, match=f"at most {limit} modalities"):
            RunConfig.model_validate({**tiny_config(method=method).model_dump(), "dataset_options": three})
        return
    (record,) = run(tiny_config, tmp_path / "run", method=method, epochs=1, dataset_options=three)
    assert {f"shapley.{m}" for m in three["modalities"]} <= set(record)


@pytest.mark.parametrize("method", NAMES)
def test_a_step_with_resnet18_encoders_trains_and_stays_finite(method):
    """One real step: some encoder moves (an alternating method trains one per step) and nothing turns non-finite."""
    torch.manual_seed(0)
    device = torch.device("cpu")
    model_method, model = av_model(method, device, feature_dim=16)
    inputs, labels = batch(8)
    data = TrainingData(TensorSplit(inputs, labels), model, epoch=1, step=0, batch_size=4, device=device,
                        precision="fp32", channels_last=False)
    model_method.epoch_pass(data)
    model.train()
    order = model_method.sample_order(1, 8, torch.Generator().manual_seed(0))
    model_method.begin_epoch(1, 0, 2, device)
    before = {m: [p.detach().clone() for p in model.encoders[m].parameters()] for m in model.encoders}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = TrainingStep(model, model_method, optimizer, device)
    index = order[:4] if order is not None else torch.arange(4)
    loss, _ = step({m: x[index] for m, x in inputs.items()}, labels[index], 0, index)
    assert torch.isfinite(loss)
    moved = [m for m in model.encoders
             if any(not torch.equal(a, b) for a, b in zip(model.encoders[m].parameters(), before[m]))]
    assert moved, "no encoder was updated"
    assert all(torch.isfinite(p).all() for p in model.parameters())
