"""What ARM applied during training, per epoch: the per-step scores and weights, and the control without re-weighting."""

import math

import pytest
import torch

from armscope.arm_terms import NEGATIVE, SCORE, STEP_STATS, WEIGHT, arm_step
from armscope.models.heads import ARMHead
from armscope.rundir import RunDir
from armscope.train import train

SETTINGS = dict(ema_decay=0.9, nmi_bins=30, ncmi_bins=2, w_min=0.1, w_max=10.0)


def a_step(reweight: bool, estimator: str = "plugin"):
    torch.manual_seed(0)
    feats = {"audio": torch.relu(torch.randn(32, 16)), "visual": torch.relu(2 * torch.randn(32, 16))}
    head = ARMHead(list(feats), 16, 5)
    stats = torch.zeros(STEP_STATS, 2, dtype=torch.float64)
    weight, _ = arm_step(feats, head, torch.randint(0, 5, (32,)), stats, estimator=estimator, reweight=reweight, **SETTINGS)
    return weight, stats, head


def test_without_reweighting_the_applied_weights_are_one_and_the_scores_are_still_measured():
    weighted, stats_weighted, _ = a_step(reweight=True)
    pinned, stats_pinned, head = a_step(reweight=False)
    assert not torch.equal(weighted, torch.ones(2))
    assert pinned.tolist() == [1.0, 1.0] and stats_pinned[WEIGHT].tolist() == [1.0, 1.0]
    assert head.eval_weights.tolist() == [1.0, 1.0]
    assert torch.equal(stats_pinned[SCORE], stats_weighted[SCORE]) and stats_pinned[SCORE].abs().sum() > 0


def test_a_step_counts_itself_negative_only_when_every_score_is():
    _, stats, _ = a_step(reweight=True, estimator="plugin")
    scores = stats[SCORE]
    assert stats[NEGATIVE].tolist() == [float((scores < 0).all())] * 2


def test_a_run_logs_the_mean_and_spread_of_what_each_step_applied(tiny_config, tmp_path):
    assert train(tiny_config(epochs=2), tmp_path / "run").status == "succeeded"
    record = RunDir(tmp_path / "run").metrics()[-1]
    for m in ("audio", "visual"):
        assert record[f"arm_train_weight.{m}"] > 0 and record[f"arm_train_weight_std.{m}"] >= 0
        assert math.isfinite(record[f"arm_train_score.{m}"]) and record[f"arm_train_score_std.{m}"] >= 0
    assert 0 <= record["arm_negative_steps"] <= record["step"]


def test_the_control_run_applies_weight_one_every_step(tiny_config, tmp_path):
    config = tiny_config(epochs=2, method_options={"reweight": False})
    assert train(config, tmp_path / "run").status == "succeeded"
    for record in RunDir(tmp_path / "run").metrics():
        assert [record["arm_train_weight.audio"], record["arm_train_weight.visual"]] == [1.0, 1.0]
        assert record["arm_train_weight_std.audio"] == 0.0
        assert math.isfinite(record["arm_train_score.audio"])


def test_an_epoch_whose_steps_mostly_had_every_score_negative_says_so(tiny_config, tmp_path):
    # The published estimator's scores are negative for post-ReLU features (ARM.md §2).
    config = tiny_config(epochs=1, method_options={"estimator": "reference"})
    assert train(config, tmp_path / "run").status == "succeeded"
    (record,) = RunDir(tmp_path / "run").metrics()
    events = [e for e in RunDir(tmp_path / "run").events() if e["kind"] == "negative_scores"]
    assert 2 * record["arm_negative_steps"] > record["step"]
    assert len(events) == 1 and "scales the stronger modality up" in events[0]["message"]


@pytest.mark.parametrize("estimator", ["plugin", "debiased", "reference"])
def test_every_estimator_trains_arm(tiny_config, tmp_path, estimator):
    assert train(tiny_config(epochs=1, method_options={"estimator": estimator}), tmp_path / "run").status == "succeeded"
