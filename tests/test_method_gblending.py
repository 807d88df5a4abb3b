"""Gradient-Blending: weights from each head's held-out generalisation over its overfitting (METHODS.md A.4)."""

from __future__ import annotations

import math

import pytest
import torch

from armscope.builtin.methods.gblending import GBlendingOptions
from armscope.data.base import TensorSplit
from armscope.epoch_pass import TrainingData
from armscope.holdout import draw_held_out, held_out_count, kept_indices
from armscope.methods import build_method
from armscope.methods.gblending import (
    blended_loss,
    blending_weights,
    estimation_due,
    gain_and_overfitting,
    overfitting_to_generalisation_ratio,
)
from armscope.models import MultimodalModel, build_encoder
from armscope.rundir import RunDir
from armscope.train import train
from tests.support import without_timing

pytestmark = pytest.mark.unit

MODALITIES = ["audio", "visual"]


def losses(*values):
    return torch.tensor(values, dtype=torch.float64)


def worked_example():
    """METHODS.md's mean losses, heads (audio, visual, fused): T and V before (N) and after (N + n)."""
    return gain_and_overfitting(
        train_before=losses(1.1, 1.5, 1.0),
        held_before=losses(1.2, 1.5, 1.1),
        train_after=losses(0.7, 1.3, 0.5),
        held_after=losses(1.0, 1.4, 0.8),
    )


def test_the_gain_is_the_fall_of_the_held_out_loss_and_the_overfitting_the_growth_of_its_gap():
    gain, overfitting = worked_example()
    # audio: ΔG = 1.2 - 1.0 = 0.2; ΔO = (1.0 - 0.7) - (1.2 - 1.1) = 0.3 - 0.1 = 0.2
    # visual: ΔG = 1.5 - 1.4 = 0.1; ΔO = (1.4 - 1.3) - (1.5 - 1.5) = 0.1
    # fused: ΔG = 1.1 - 0.8 = 0.3; ΔO = (0.8 - 0.5) - (1.1 - 1.0) = 0.2
    assert torch.allclose(gain, losses(0.2, 0.1, 0.3))
    assert torch.allclose(overfitting, losses(0.2, 0.1, 0.2))


def test_the_worked_example_gives_the_weights_in_methods_md():
    weights, fallback = blending_weights(*worked_example())
    # ΔG / ΔO²: 0.2 / 0.04 = 5, 0.1 / 0.01 = 10, 0.3 / 0.04 = 7.5; sum 22.5
    assert torch.allclose(weights, losses(5 / 22.5, 10 / 22.5, 7.5 / 22.5))
    assert torch.allclose(weights, losses(0.222222, 0.444444, 0.333333), atol=1e-6)
    assert not fallback


def test_the_ratio_is_the_overfitting_per_unit_of_generalisation():
    ratio = overfitting_to_generalisation_ratio(*worked_example())
    # |ΔO / ΔG|: 0.2 / 0.2 = 1, 0.1 / 0.1 = 1, 0.2 / 0.3 = 2/3
    assert torch.allclose(ratio, losses(1.0, 1.0, 2 / 3))


def test_a_head_whose_held_out_loss_got_worse_gets_no_weight():
    # audio: ΔG = -0.2 (its held-out loss rose); BalanceMM's abs() would give it 0.2 / 0.04 = 5
    gain, overfitting = losses(-0.2, 0.1, 0.3), losses(0.2, 0.1, 0.2)
    weights, fallback = blending_weights(gain, overfitting)
    # visual 10 and fused 7.5 share the weight: 10 / 17.5 and 7.5 / 17.5
    assert torch.allclose(weights, losses(0.0, 10 / 17.5, 7.5 / 17.5))
    assert not fallback


def test_no_head_that_generalised_gives_uniform_weights():
    weights, fallback = blending_weights(losses(-0.1, 0.0, -0.3), losses(0.2, 0.1, 0.2))
    assert torch.equal(weights, losses(1 / 3, 1 / 3, 1 / 3)) and fallback


def test_a_ratio_that_is_not_finite_gives_uniform_weights():
    # visual generalised with no change of overfitting: ΔG / ΔO² = 0.1 / 0 is infinite
    weights, fallback = blending_weights(losses(0.2, 0.1, 0.3), losses(0.2, 0.0, 0.2))
    assert torch.equal(weights, losses(1 / 3, 1 / 3, 1 / 3)) and fallback


def test_weights_that_would_leave_an_encoder_untrained_give_uniform_weights():
    # audio's own head and the fused head (the only heads that reach the audio encoder) both got worse
    weights, fallback = blending_weights(losses(-0.1, 0.1, -0.2), losses(0.2, 0.1, 0.2))
    assert torch.equal(weights, losses(1 / 3, 1 / 3, 1 / 3)) and fallback


def test_the_loss_sums_the_heads_cross_entropies_by_weight():
    # 0.5 * 2.0 + 0.25 * 1.0 + 0.25 * 4.0 = 1.0 + 0.25 + 1.0
    assert blended_loss(torch.tensor([2.0, 1.0, 4.0]), losses(0.5, 0.25, 0.25)).item() == pytest.approx(2.25)


@pytest.mark.parametrize(("epoch", "due"), [(1, True), (2, False), (10, False), (11, True), (21, True)])
def test_weights_are_estimated_at_epoch_1_and_every_super_epoch_after(epoch, due):
    assert estimation_due(epoch, 10) is due


def test_a_held_out_set_keeps_at_least_one_sample_on_each_side():
    assert held_out_count(600, 0.1) == 60
    assert held_out_count(8, 0.1) == 1  # 0.8 rounds to 1
    assert held_out_count(5, 0.05) == 1  # 0.25 would round to none: one is held out all the same
    assert held_out_count(2, 0.5) == 1
    assert held_out_count(2, 0.9) == 1  # 1.8 would round to both: one is left to train on
    with pytest.raises(ValueError, match="at least 2 samples"):
        held_out_count(1, 0.1)


def test_the_held_out_samples_never_appear_in_an_epochs_order():
    torch.manual_seed(0)
    method = build_method("gblending", {}, MODALITIES, 3, 4)
    first = method.sample_order(1, 50, torch.Generator().manual_seed(1))
    second = method.sample_order(2, 50, torch.Generator().manual_seed(2))
    held = set(method.holdout.tolist())
    assert len(held) == 5
    for order in (first, second):
        assert sorted(order.tolist()) == sorted(set(range(50)) - held)
    assert not torch.equal(first, second)


def test_the_held_out_set_is_the_complement_of_the_remaining_indices():
    torch.manual_seed(3)
    holdout = draw_held_out(20, held_out_count(20, 0.25))
    assert holdout.numel() == 5 and torch.equal(holdout, holdout.sort().values)
    remaining = kept_indices(holdout, 20)
    assert sorted([*holdout.tolist(), *remaining.tolist()]) == list(range(20))


def mlp_model(method):
    encoders = {m: build_encoder({"name": "mlp", "hidden": [8]}, (6,), 4) for m in MODALITIES}
    return MultimodalModel(encoders, method.build_head())


def test_estimation_leaves_the_main_models_parameters_unchanged():
    torch.manual_seed(0)
    method = build_method("gblending", {"estimate_epochs": 2, "estimate_lr": 0.5}, MODALITIES, 3, 4)
    model = mlp_model(method)
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    inputs = {m: torch.randn(40, 6) for m in MODALITIES}
    data = TrainingData(TensorSplit(inputs, torch.randint(0, 3, (40,))), model, epoch=1, step=0, batch_size=8,
                        device=torch.device("cpu"), precision="fp32", channels_last=False)
    reported = []
    data.report = lambda what, done, total: reported.append((what, done, total))
    method.epoch_pass(data)
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    # three heads of two epochs each
    assert reported == [("blending weights", done, 6) for done in range(1, 7)]
    assert method.weights.sum().item() == pytest.approx(1.0)


def test_the_defaults_hold_out_a_tenth_and_re_estimate_every_ten_epochs():
    options = GBlendingOptions()
    assert (options.holdout_fraction, options.super_epoch, options.estimate_epochs) == (0.1, 10, 1)


def test_a_run_logs_its_weights_and_estimates_every_epoch(tiny_config, tmp_path):
    config = tiny_config(method="gblending", epochs=2, method_options={"super_epoch": 2})
    assert train(config, tmp_path / "run").status == "succeeded"
    records = RunDir(tmp_path / "run").metrics()
    assert len(records) == 2
    for record in records:
        weights = [record["gblend_weight.audio"], record["gblend_weight.visual"], record["gblend_weight_fused"]]
        assert sum(weights) == pytest.approx(1.0) and all(0 <= w <= 1 for w in weights)
        for family in ("gblend_gain", "gblend_overfit", "gblend_ogr"):
            assert {f"{family}.audio", f"{family}.visual", f"{family}_fused"} <= set(record)
        assert all(math.isfinite(record[f"gblend_gain.{m}"]) for m in MODALITIES)
    # epoch 2 is not an estimation epoch (1, 3, 5, ... for super_epoch 2): the weights are kept
    assert records[1]["gblend_weight.audio"] == records[0]["gblend_weight.audio"]
    events = [e for e in RunDir(tmp_path / "run").events() if e["kind"].startswith("gblending")]
    assert [e["epoch"] for e in events] == [1]


def test_a_run_resumed_before_a_re_estimation_ends_as_an_uninterrupted_one(tiny_config, tmp_path):
    def config(epochs):
        return tiny_config(method="gblending", epochs=epochs, method_options={"super_epoch": 2})

    def numbers(folder):
        return without_timing(RunDir(folder).metrics())

    train(config(3), tmp_path / "whole")
    train(config(1), tmp_path / "resumed")
    assert train(config(3), tmp_path / "resumed", resume=True).status == "succeeded"
    assert numbers(tmp_path / "resumed") == numbers(tmp_path / "whole")
