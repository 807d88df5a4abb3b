"""OPM (Wei, Hu, Du, Wen, T-PAMI 2024): ratios, drop probabilities, the dropped and rescaled features, the kept loss."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from armscope.builtin.methods.opm import OPMOptions
from armscope.methods import build_method
from armscope.methods.opm import (
    discrepancies,
    drop_features,
    drop_probabilities,
    drop_share,
    keep_masks,
    kept_mean,
    kept_samples,
    score_ratios,
    true_class_scores,
)
from armscope.models import ConcatHead, MultimodalModel
from armscope.rundir import RunDir
from armscope.step import Batch, StepContext
from armscope.train import train
from tests.support import without_timing
from tests.test_gpu_path import steps_on_meta, with_av_model

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")
DROP_FROM_THE_START = {"modulation_start": 1}


def q_of(scores, q_base=0.4, lam=0.5):
    return drop_probabilities(discrepancies(score_ratios(torch.tensor(scores))), q_base, lam)


def test_two_modality_drop_probability_matches_the_worked_example():
    # METHODS.md C.2, checked by hand: rho_a = 30 / 20 = 1.5, r_a = tanh(0.5) = 0.462117,
    # q_a = 0.4 * (1 + 0.5 * 0.462117) = 0.492423; rho_v = 2/3 < 1, so r_v = 0 and q_v = 0.
    ratios = score_ratios(torch.tensor([30.0, 20.0]))
    assert ratios.tolist() == pytest.approx([1.5, 2 / 3])
    assert discrepancies(ratios).tolist() == pytest.approx([0.462117, 0.0], abs=1e-6)
    assert q_of([30.0, 20.0]).tolist() == pytest.approx([0.492423, 0.0], abs=1e-6)


def test_the_authors_base_probability_gives_the_larger_drop():
    # q_base = 0.5: q_a = 0.5 * 1.231059 = 0.615529.
    assert q_of([30.0, 20.0], q_base=0.5)[0].item() == pytest.approx(0.615529, abs=1e-6)


def test_theta_and_the_rescale_match_the_worked_example():
    # theta = (512 * 0.492423 + 512 * 0) / 1024 = 0.246212; 1 / (1 - theta) = 1.326632.
    theta = drop_share(torch.tensor([0.492423, 0.0]), [512, 512])
    assert theta.item() == pytest.approx(0.246212, abs=1e-6)
    assert 1 / (1 - theta.item()) == pytest.approx(1.326632, abs=1e-6)


def test_theta_weighs_each_probability_by_its_modalitys_feature_width():
    # (100 * 0.5 + 300 * 0) / 400 = 0.125.
    assert drop_share(torch.tensor([0.5, 0.0]), [100, 300]).item() == pytest.approx(0.125)


def test_three_modalities_compare_each_score_with_the_mean_of_the_others():
    # s = (30, 20, 10): 30 / 15 = 2, 20 / 20 = 1, 10 / 25 = 0.4; q_1 = 0.4 * (1 + 0.5 * tanh(1)) = 0.552319.
    # A ratio of exactly 1 is no lead: q_2 = 0.
    assert score_ratios(torch.tensor([30.0, 20.0, 10.0])).tolist() == pytest.approx([2.0, 1.0, 0.4])
    assert q_of([30.0, 20.0, 10.0]).tolist() == pytest.approx([0.552319, 0.0, 0.0], abs=1e-6)


def test_with_two_modalities_the_ratio_is_exactly_one_score_over_the_other():
    scores = torch.tensor([0.3, 0.7])
    assert score_ratios(scores).tolist() == [(scores[0] / scores[1]).item(), (scores[1] / scores[0]).item()]


def test_a_zero_score_of_the_others_gives_a_finite_ratio_and_a_capped_probability():
    q = q_of([1.0, 0.0])
    assert torch.isfinite(q).all() and q.tolist() == pytest.approx([0.6, 0.0])  # r_a = tanh(huge) = 1


def test_the_drop_probability_is_clipped_at_one():
    # q_base 0.9, lam 0.5, r = tanh(1) = 0.761594: 0.9 * 1.380797 = 1.24 -> 1.
    assert q_of([30.0, 15.0], q_base=0.9)[0].item() == 1.0


def test_the_scores_sum_each_modalitys_slice_probability_of_the_true_class_with_bias_over_m():
    head = ConcatHead(["a", "v"], 1, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.0]]))
        head.fc.bias.copy_(torch.tensor([0.0, 2.0]))
    feats = {"a": torch.tensor([[1.0], [0.0]], requires_grad=True), "v": torch.tensor([[5.0], [5.0]])}
    # Slice logits: u_a = (2h, 0) + (0, 1) and u_v = (0, 0) + (0, 1), for labels (0, 1).
    # s_a = softmax(2, 1)[0] + softmax(0, 1)[1] = 2 e / (1 + e) = 1.462117; s_v = 0.268941 + 0.731059 = 1.
    scores = true_class_scores(head, feats, torch.tensor([0, 1]))
    assert scores.tolist() == pytest.approx([2 * math.e / (1 + math.e), 1.0])
    assert not scores.requires_grad


def test_a_dropped_modality_is_exactly_zero_and_every_kept_feature_is_rescaled():
    feats = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "v": torch.tensor([[5.0, 6.0], [7.0, 8.0]])}
    keep = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # sample 0 loses its audio
    dropped = drop_features(feats, ["a", "v"], keep, torch.tensor(0.25))  # 1 / (1 - 0.25) = 4/3
    assert dropped["a"][0].tolist() == [0.0, 0.0]
    assert dropped["a"][1].tolist() == pytest.approx([4.0, 16 / 3])
    assert dropped["v"].flatten().tolist() == pytest.approx([20 / 3, 8.0, 28 / 3, 32 / 3])


def test_the_rescale_reaches_the_features_gradients_and_a_dropped_feature_gets_none():
    h = torch.ones(2, 3, requires_grad=True)
    keep = torch.tensor([[1.0], [0.0]])
    drop_features({"a": h}, ["a"], keep, torch.tensor(0.5))["a"].sum().backward()
    assert h.grad.tolist() == [[2.0] * 3, [0.0] * 3]


def test_features_drop_where_their_probability_is_one_and_never_where_it_is_zero():
    keep = keep_masks(torch.tensor([1.0, 0.0]), 5, torch.tensor(True))
    assert keep[:, 0].tolist() == [0.0] * 5 and keep[:, 1].tolist() == [1.0] * 5


def test_nothing_drops_on_a_step_whose_draw_did_not_run_the_dropping():
    assert keep_masks(torch.tensor([1.0, 1.0]), 4, torch.tensor(False)).tolist() == [[1.0, 1.0]] * 4


def test_samples_that_lost_every_modality_do_not_count_in_the_loss():
    keep = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    kept = kept_samples(keep)
    assert kept.tolist() == [True, False, True]
    # Losses 1, 100, 3: the removed sample's 100 is left out and the mean is over the two kept ones.
    assert kept_mean(torch.tensor([1.0, 100.0, 3.0]), kept).item() == 2.0
    assert kept_mean(torch.tensor([1.0, 2.0]), torch.tensor([False, False])).item() == 0.0


def hand_model():
    """Identity encoders and a head whose slices are the identity: logits = h_a + h_v."""
    encoders = {m: nn.Linear(2, 2) for m in ("a", "v")}
    head = ConcatHead(["a", "v"], 2, 2)
    with torch.no_grad():
        for encoder in encoders.values():
            encoder.weight.copy_(torch.eye(2))
            encoder.bias.zero_()
        head.fc.weight.copy_(torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
        head.fc.bias.zero_()
    return MultimodalModel(encoders, head)


# Audio is right with logit 3 on both samples (s_a = 2 * e^3 / (1 + e^3) = 1.905148); visual's logits are (1, 0)
# for labels (0, 1), so s_v = e / (1 + e) + 1 / (1 + e) = 1: rho_a = 1.905 > 1 leads, visual never drops.
INPUTS = {"a": torch.tensor([[3.0, 0.0], [0.0, 3.0]]), "v": torch.tensor([[1.0, 0.0], [1.0, 0.0]])}
LABELS = torch.tensor([0, 1])


def hand_setup(options):
    method = build_method("opm", options, ["a", "v"], 2, 2)
    model = hand_model()
    method.begin_epoch(1, 0, 1, CPU)
    return method, StepContext(model, torch.optim.SGD(model.parameters(), lr=0.1), CPU, "fp32")


def hand_step(options):
    method, step = hand_setup(options)
    loss = method.train_step(step, Batch(INPUTS, LABELS, 0))
    return loss, method.end_epoch().metrics


def test_a_step_that_drops_zeroes_the_leading_modality_and_doubles_the_other():
    # q_base 1: q_a = clip(1 + 0.5 r_a) = 1, so audio drops on both samples; theta = (1 + 0) / 2, visual x 2.
    # Fused logits (2, 0) for labels (0, 1): CE = (log(1 + e^-2) + log(1 + e^2)) / 2 = 1 + log(1 + e^-2).
    loss, metrics = hand_step({"q_base": 1.0, "p_exe": 1.0, **DROP_FROM_THE_START})
    assert loss.item() == pytest.approx(1 + math.log(1 + math.exp(-2)))
    assert metrics["opm_ratio.a"].item() == pytest.approx(2 * math.exp(3) / (1 + math.exp(3)), rel=1e-6)
    assert metrics["opm_drop_prob.a"].item() == 1.0 and metrics["opm_drop_prob.v"].item() == 0.0
    assert metrics["opm_dropped.a"].item() == 1.0 and metrics["opm_dropped.v"].item() == 0.0
    assert metrics["opm_drop_steps"].item() == 1.0 and metrics["opm_removed"].item() == 0.0


def test_a_step_whose_draw_did_not_run_trains_on_every_feature():
    # p_exe 0: fused logits (4, 0) and (1, 3): the plain CE (log(1 + e^-4) + log(1 + e^-2)) / 2.
    loss, metrics = hand_step({"q_base": 1.0, "p_exe": 0.0, **DROP_FROM_THE_START})
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-4)) + math.log(1 + math.exp(-2))) / 2)
    assert metrics["opm_drop_prob.a"].item() == 1.0  # computed, not applied
    assert metrics["opm_dropped.a"].item() == 0.0 and metrics["opm_drop_steps"].item() == 0.0


def test_before_the_modulation_window_the_step_is_plain_and_draws_nothing():
    method, step = hand_setup({"q_base": 1.0, "p_exe": 1.0, "modulation_start": 2})
    rng = torch.get_rng_state()
    loss = method.train_step(step, Batch(INPUTS, LABELS, 0))
    metrics = method.end_epoch().metrics
    assert torch.equal(torch.get_rng_state(), rng)
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-4)) + math.log(1 + math.exp(-2))) / 2)
    assert metrics["opm_ratio.a"].item() > 1 and metrics["opm_drop_prob.a"].item() == 0.0


def test_prediction_uses_every_feature():
    method = build_method("opm", {"q_base": 1.0, "p_exe": 1.0, **DROP_FROM_THE_START}, ["a", "v"], 2, 2)
    model = hand_model()
    method.begin_epoch(1, 0, 1, CPU)
    assert torch.equal(method.predict(model, INPUTS), model.head(INPUTS))


def test_the_dropping_step_never_synchronises_with_the_host():
    # The shared meta-device test runs epoch 1, before the default window's start: this one drops.
    device = torch.device("meta")
    method, model = with_av_model(build_method("opm", DROP_FROM_THE_START, ["audio", "visual"], 6, 512), device)
    steps_on_meta(method, model, device)


def test_the_defaults_are_the_authors():
    options = OPMOptions()
    assert (options.q_base, options.lam, options.p_exe) == (0.5, 0.5, 0.7)
    assert (options.modulation_start, options.modulation_end) == (7, None)  # after 6 warm-up epochs


def test_one_modality_is_refused_and_two_or_more_are_accepted():
    options = OPMOptions()
    assert options.check_modalities(["audio"]) == ((), "opm needs at least 2 modalities; this data set has 1")
    assert options.check_modalities(["a", "v", "t"]) is None


def run(tiny_config, folder, **overrides):
    result = train(tiny_config(method="opm", **overrides), folder)
    assert result.status == "succeeded", result.error
    return RunDir(folder).metrics()


def test_a_resumed_run_that_drops_ends_with_the_numbers_of_an_uninterrupted_one(tiny_config, tmp_path):
    options = {"method_options": DROP_FROM_THE_START}
    whole = without_timing(run(tiny_config, tmp_path / "whole", epochs=3, **options))
    run(tiny_config, tmp_path / "resumed", epochs=1, **options)
    resumed = train(tiny_config(method="opm", epochs=3, **options), tmp_path / "resumed", resume=True)
    assert resumed.status == "succeeded", resumed.error
    assert without_timing(RunDir(tmp_path / "resumed").metrics()) == whole


def test_it_drops_with_three_modalities_in_bf16(tiny_config, tmp_path):
    three = {"n_samples": 600, "dims": 8, "modalities": ["audio", "visual", "text"]}
    (record,) = run(tiny_config, tmp_path / "run", epochs=1, precision="bf16", dataset_options=three,
                    method_options=DROP_FROM_THE_START)
    assert math.isfinite(record["train_loss"]) and record["opm_drop_steps"] > 0
    assert all(0 <= record[f"opm_dropped.{m}"] <= 1 for m in three["modalities"])


def test_a_short_run_logs_every_opm_metric_every_epoch_with_sensible_values(tiny_config, tmp_path):
    first, second = run(tiny_config, tmp_path / "run", epochs=2, method_options={"modulation_start": 2})
    modalities = ("audio", "visual")
    for record in (first, second):
        assert all(record[f"opm_ratio.{m}"] > 0 for m in modalities)
        assert record["opm_removed"] == 0  # one of two modalities leads at a time: a sample keeps the other
    # Epoch 1 is before the window: nothing is dropped.
    assert first["opm_drop_steps"] == 0
    assert all(first[f"opm_drop_prob.{m}"] == 0 and first[f"opm_dropped.{m}"] == 0 for m in modalities)
    # Epoch 2 drops: each step one modality leads with q in [q_base, q_base * (1 + lam)] = [0.5, 0.75].
    assert 0 < second["opm_drop_steps"] <= 1
    assert 0.5 <= sum(second[f"opm_drop_prob.{m}"] for m in modalities) <= 0.75
    dropped = [second[f"opm_dropped.{m}"] for m in modalities]
    assert sum(dropped) > 0 and all(0 <= d <= 1 for d in dropped)

