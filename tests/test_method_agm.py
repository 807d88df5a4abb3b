"""AGM (Li et al., ICCV 2023): Shapley responses, coefficients, running scores, the scaled gradient, the clip."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from armscope.builtin.methods.agm import AGMOptions
from armscope.methods import build_method
from armscope.methods.agm import (
    agm_coefficients,
    clip_factor,
    coalition_outputs,
    coalitions,
    head_spiked,
    response_losses,
    running_mean,
    scale_gradient,
    shapley_matrix,
    shapley_responses,
)
from armscope.models import ConcatHead, MultimodalModel
from armscope.rundir import RunDir
from armscope.train import train

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")


def test_coalitions_are_every_non_empty_subset_in_bit_order():
    assert coalitions(2) == [(0,), (1,), (0, 1)]
    assert coalitions(3) == [(0,), (1,), (0, 1), (2,), (0, 2), (1, 2), (0, 1, 2)]


def test_two_modality_responses_match_the_worked_example():
    # METHODS.md Example 2, checked by hand: phi_a = 0.5 * (f(a,v) - f(0,v) + f(a,0))
    # = 0.5 * ((2, 0) - (0.8, 0.2) + (1.5, 0.5)) = (1.35, 0.15); phi_v = 0.5 * ((2, 0) - (1.5, 0.5) + (0.8, 0.2)) = (0.65, -0.15).
    outputs = torch.tensor([[[1.5, 0.5]], [[0.8, 0.2]], [[2.0, 0.0]]])  # f(a,0), f(0,v), f(a,v)
    phi = shapley_responses(outputs, shapley_matrix(2))
    assert phi[0, 0].tolist() == pytest.approx([1.35, 0.15])
    assert phi[1, 0].tolist() == pytest.approx([0.65, -0.15])


def test_three_modality_shapley_weights_are_the_authors():
    # phi_a = 1/3 (f(avt) - f(vt)) + 1/6 (f(av) - f(v) + f(at) - f(t)) + 1/3 f(a), in the order of coalitions(3):
    # a, v, av, t, at, vt, avt.
    third, sixth = 1 / 3, 1 / 6
    assert shapley_matrix(3)[0].tolist() == pytest.approx([third, -sixth, sixth, -sixth, sixth, -third, third])


def test_an_additive_game_gives_each_modality_its_own_value():
    # f(S) = sum of v_k over k in S, v = (1, 2, 4): a coalition's value is the sum of its members'.
    values = torch.tensor([1.0, 2.0, 4.0])
    outputs = torch.stack([values[list(c)].sum() for c in coalitions(3)])[:, None, None]
    assert shapley_responses(outputs, shapley_matrix(3)).flatten().tolist() == pytest.approx([1.0, 2.0, 4.0])


def test_a_pure_synergy_is_shared_equally_and_the_responses_sum_to_the_fused_output():
    # f(S) = 6 for the full coalition only: each of three modalities gets 2.
    outputs = torch.tensor([0.0, 0, 0, 0, 0, 0, 6.0])[:, None, None]
    phi = shapley_responses(outputs, shapley_matrix(3))
    assert phi.flatten().tolist() == pytest.approx([2.0, 2.0, 2.0])
    assert phi.sum(0).item() == pytest.approx(6.0)


def test_coalition_outputs_zero_the_absent_modalities_at_the_head():
    head = ConcatHead(["a", "v"], 1, 1)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[2.0, 3.0]]))
        head.fc.bias.fill_(1.0)
    feats = {"a": torch.tensor([[1.0]]), "v": torch.tensor([[10.0]])}
    # f(a,0) = 2 * 1 + 1 = 3; f(0,v) = 3 * 10 + 1 = 31; f(a,v) = 2 + 30 + 1 = 33.
    outputs = coalition_outputs(head, feats, ["a", "v"], torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    assert outputs.flatten().tolist() == [3.0, 31.0, 33.0]


def test_response_loss_is_the_mean_cross_entropy_with_probabilities_floored_at_1e_8():
    # Modality 0: equal logits, p_y = 1/2 for both samples: s = log 2.
    # Modality 1: sample 1 (label 1, logits (0, 1)) has p_y = e / (1 + e), -log p_y = log(1 + e^-1);
    # sample 2 (label 0, logits (0, 100)) has p_y ~ e^-100 < 1e-8, floored: -log 1e-8 = 8 log 10.
    responses = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 100.0]]])
    labels = torch.tensor([1, 0])
    losses = response_losses(responses, labels)
    assert losses.tolist() == pytest.approx([math.log(2), (math.log(1 + math.exp(-1)) + 8 * math.log(10)) / 2])


def test_two_modality_coefficients_match_the_worked_example():
    # METHODS.md Example 1, checked by hand: mean s = 0.75, r_a = exp(2 * 0.25) = 1.648721,
    # r*_a = exp(2 * 0.15) = 1.349859, c_a = exp(1.349859 - 1.648721) = 0.741661; r_v = exp(-0.5) = 0.606531,
    # r*_v = exp(-0.3) = 0.740818, c_v = exp(0.134287) = 1.143722.
    ratio, target, coeff = agm_coefficients(torch.tensor([0.5, 1.0]), torch.tensor([0.6, 0.9]), alpha=1.0, clamp=10)
    assert ratio.tolist() == pytest.approx([1.648721, 0.606531], abs=1e-6)
    assert target.tolist() == pytest.approx([1.349859, 0.740818], abs=1e-6)
    assert coeff.tolist() == pytest.approx([0.741661, 1.143722], abs=1e-6)


def test_the_modality_stronger_than_usual_is_slowed_down():
    # The authors' sign: audio's loss (0.5) is below its running mean (0.6), so it is slowed (c < 1).
    _, _, coeff = agm_coefficients(torch.tensor([0.5, 1.0]), torch.tensor([0.6, 0.9]), alpha=1.0, clamp=10)
    assert coeff[0] < 1 < coeff[1]


def test_three_modality_coefficients_match_the_worked_example():
    # Factor 3/2, mean s = 0.8: r = (exp(0.6), 1, exp(-0.6)) = (1.822119, 1, 0.548812);
    # r* = (exp(0.45), 1, exp(-0.45)) = (1.568312, 1, 0.637628); c = exp(r* - r) = (0.775842, 1, 1.092880).
    ratio, target, coeff = agm_coefficients(
        torch.tensor([0.4, 0.8, 1.2]), torch.tensor([0.5, 0.8, 1.1]), alpha=1.0, clamp=10
    )
    assert ratio.tolist() == pytest.approx([1.822119, 1.0, 0.548812], abs=1e-6)
    assert target.tolist() == pytest.approx([1.568312, 1.0, 0.637628], abs=1e-6)
    assert coeff.tolist() == pytest.approx([0.775842, 1.0, 1.092880], abs=1e-6)


def test_alpha_scales_the_exponent_and_the_clamp_bounds_it():
    # Example 1 with alpha = 2: c_a = exp(2 * -0.298862) = 0.550061.
    _, _, coeff = agm_coefficients(torch.tensor([0.5, 1.0]), torch.tensor([0.6, 0.9]), alpha=2.0, clamp=10)
    assert coeff[0].item() == pytest.approx(0.550061, abs=1e-6)
    # s = (0, 3), S = (3, 0): r*_v - r_v = exp(3) - exp(-3) = 20.04 > K = 2, so c_v = exp(0.5 * 2) = e.
    _, _, coeff = agm_coefficients(torch.tensor([0.0, 3.0]), torch.tensor([3.0, 0.0]), alpha=0.5, clamp=2)
    assert coeff[1].item() == pytest.approx(math.e)


def test_the_running_scores_are_the_mean_over_every_step_so_far():
    # METHODS.md Example 1 at t = 4: S_a = 0.6 * 3/4 + 0.5/4 = 0.575, S_v = 0.9 * 3/4 + 1.0/4 = 0.925.
    updated = running_mean(torch.tensor([0.6, 0.9]), torch.tensor([0.5, 1.0]), iteration=4)
    assert updated.tolist() == pytest.approx([0.575, 0.925])
    # The first step replaces the zeros S starts from.
    assert running_mean(torch.zeros(2), torch.tensor([0.5, 1.0]), iteration=1).tolist() == [0.5, 1.0]


def test_the_modulated_gradient_of_each_modality_is_its_coefficient_times_the_plain_one():
    torch.manual_seed(0)
    head = ConcatHead(["a", "v"], 3, 4)
    labels = torch.tensor([0, 3])
    plain_feats = {m: torch.randn(2, 3, requires_grad=True) for m in ("a", "v")}
    F.cross_entropy(head(plain_feats), labels).backward()
    feats = {m: h.detach().clone().requires_grad_() for m, h in plain_feats.items()}
    masks = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    phi = shapley_responses(coalition_outputs(head, feats, ["a", "v"], masks), shapley_matrix(2))
    fused = scale_gradient(phi, torch.tensor([0.5, 2.0])[:, None, None]).sum(0)
    assert torch.allclose(fused, head(feats), atol=1e-6)  # the prediction is the plain one
    F.cross_entropy(fused, labels).backward()
    assert torch.allclose(feats["a"].grad, 0.5 * plain_feats["a"].grad, atol=1e-6)
    assert torch.allclose(feats["v"].grad, 2.0 * plain_feats["v"].grad, atol=1e-6)


def test_scale_gradient_leaves_the_value_untouched():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = scale_gradient(x, torch.tensor(3.0))
    assert torch.equal(y, x)
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_the_clip_triggers_only_when_a_head_gradient_entry_leaves_the_band():
    assert not head_spiked([torch.tensor([0.5, -1.0]), torch.tensor([0.2])], limit=1.0)
    assert head_spiked([torch.tensor([0.5, -1.5]), torch.tensor([0.2])], limit=1.0)
    # Norm 4, spiked: clip_grad_norm_'s factor 1 / (4 + 1e-6); not spiked: untouched.
    norm = torch.tensor(4.0)
    assert clip_factor(norm, torch.tensor(True), 1.0).item() == pytest.approx(0.25)
    assert clip_factor(norm, torch.tensor(False), 1.0).item() == 1.0
    assert clip_factor(torch.tensor(0.5), torch.tensor(True), 1.0).item() == 1.0  # already within the norm


def test_after_backward_clips_the_whole_models_gradient_norm_to_one_when_the_head_spikes():
    method = build_method("agm", {}, ["a", "v"], 2, 2)
    model = MultimodalModel({"a": torch.nn.Linear(2, 2), "v": torch.nn.Linear(2, 2)}, ConcatHead(["a", "v"], 2, 2))
    for p in model.parameters():
        p.grad = torch.full_like(p, 3.0)
    method.begin_epoch(1, 0, 1, CPU)
    method.after_backward(model, 0)
    total = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
    assert total.item() == pytest.approx(1.0, abs=1e-5)
    assert method.clipped.item() == 1


def hand_model():
    head = ConcatHead(["a", "v"], 2, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))
        head.fc.bias.zero_()
    return MultimodalModel({"a": torch.nn.Identity(), "v": torch.nn.Identity()}, head)


def test_a_step_uses_the_running_scores_before_updating_them_and_counts_steps_across_epochs():
    method = build_method("agm", {}, ["a", "v"], 2, 2)
    model = hand_model()
    # Audio's slice is the identity (logit 3 on the true class), visual's is zero (p = 1/2): s = (log(1 + e^-3), log 2).
    feats = {"a": torch.tensor([[3.0, 0.0], [0.0, 3.0]]), "v": torch.ones(2, 2)}
    labels = torch.tensor([0, 1])
    s = [math.log(1 + math.exp(-3)), math.log(2)]
    method.begin_epoch(1, 0, 2, CPU)
    method.loss(model, feats, labels, 0)
    # First step: S = 0, so r* = 1 and c_m = exp(1 - r_m); r_a = exp(s_v - s_a).
    r_a = math.exp(s[1] - s[0])
    summary = method.end_epoch()
    assert summary.metrics["agm_coeff.a"].item() == pytest.approx(math.exp(1 - r_a))
    assert summary.metrics["agm_coeff.v"].item() == pytest.approx(math.exp(1 - 1 / r_a))
    assert summary.metrics["agm_running_score.a"].item() == pytest.approx(s[0])
    assert summary.metrics["agm_response_acc.a"].item() == 1.0
    assert summary.metrics["agm_response_acc.v"].item() == 0.5  # ties go to class 0: one sample right
    state = method.state_dict()
    assert state["iterations"] == 1 and state["running_scores"].tolist() == pytest.approx(s)


def test_outside_the_modulation_window_the_gradient_is_plain_but_the_scores_still_run():
    method = build_method("agm", {"modulation_start": 2}, ["a", "v"], 2, 2)
    model = hand_model()
    feats = {"a": torch.tensor([[3.0, 0.0], [0.0, 3.0]]), "v": torch.ones(2, 2)}
    method.begin_epoch(1, 0, 1, CPU)
    method.loss(model, feats, torch.tensor([0, 1]), 0)
    summary = method.end_epoch()
    assert summary.metrics["agm_coeff.a"].item() == 1.0 and summary.metrics["agm_coeff_max.v"].item() == 1.0
    assert summary.metrics["agm_ratio.a"].item() > 1  # audio is the stronger modality on this batch
    assert method.iterations == 1


def test_the_running_scores_and_step_count_survive_a_checkpoint():
    method = build_method("agm", {}, ["a", "v"], 2, 2)
    method.load_state_dict({"running_scores": torch.tensor([0.6, 0.9]), "iterations": 3})
    method.begin_epoch(2, 3, 1, CPU)
    # Zero features and bias: every response is uniform, s = (log 2, log 2).
    method.loss(hand_model(), {"a": torch.zeros(2, 2), "v": torch.zeros(2, 2)}, torch.tensor([0, 1]), 3)
    # t = 4: S = (0.6 * 3/4 + log 2 / 4, 0.9 * 3/4 + log 2 / 4).
    expected = [0.45 + math.log(2) / 4, 0.675 + math.log(2) / 4]
    assert method.state_dict()["running_scores"].tolist() == pytest.approx(expected)


def test_one_modality_is_refused_and_two_or_more_are_accepted():
    options = AGMOptions()
    assert options.check_modalities(["audio"]) == ((), "agm needs at least 2 modalities; this data set has 1")
    assert options.check_modalities(["a", "v", "t"]) is None


def test_a_short_run_logs_every_agm_metric_every_epoch_with_sensible_values(tiny_config, tmp_path):
    result = train(tiny_config(method="agm", epochs=2), tmp_path / "run")
    assert result.status == "succeeded", result.error
    records = RunDir(tmp_path / "run").metrics()
    assert len(records) == 2
    families = ["agm_coeff", "agm_coeff_min", "agm_coeff_max", "agm_ratio", "agm_target_ratio", "agm_score",
                "agm_running_score", "agm_response_acc"]
    for record in records:
        assert 0 <= record["agm_clipped_steps"]
        for m in ("audio", "visual"):
            values = {f: record[f"{f}.{m}"] for f in families}
            assert all(math.isfinite(v) for v in values.values())
            assert 0 < values["agm_coeff_min"] <= values["agm_coeff"] <= values["agm_coeff_max"]
            assert values["agm_ratio"] > 0 and values["agm_target_ratio"] > 0 and values["agm_score"] > 0
            assert 0 <= values["agm_response_acc"] <= 1
    # After the first epoch S is the mean over its steps of s: the epoch's mean response loss itself.
    first = records[0]
    assert first["agm_running_score.audio"] == pytest.approx(first["agm_score.audio"], rel=1e-5)
