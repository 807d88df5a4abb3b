import math

import pytest
import torch

from armscope.arm_terms import GUARD_NONFINITE, GUARD_RANGE, GUARD_SIGN, arm_terms, asymmetric_weights, confidence
from armscope.information import ncmi, nmi
from armscope.methods import build_method
from armscope.methods.ogm import ogm_coefficients
from armscope.models import ARMHead, ConcatHead, MultimodalModel, build_encoder
from armscope.models.heads import arm_lens


def test_ogm_slows_the_modality_whose_ratio_exceeds_one():
    ratio, coeff = ogm_coefficients(torch.tensor([2.0, 6.0]), alpha=0.5)
    assert ratio.tolist() == pytest.approx([1 / 3, 3.0])
    assert coeff.tolist() == pytest.approx([1.0, 1 - math.tanh(1.5)])


def test_ogm_slows_the_first_modality_on_a_tie():
    _, coeff = ogm_coefficients(torch.tensor([4.0, 4.0]), alpha=0.3)
    assert coeff.tolist() == pytest.approx([1 - math.tanh(0.3), 1.0])


def test_ogm_coefficients_from_hand_built_logits():
    method = build_method("ogm-ge", {"alpha": 1.0}, ["audio", "visual"], 2, 2)
    head = ConcatHead(["audio", "visual"], 2, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))
        head.fc.bias.zero_()
    model = MultimodalModel({"audio": torch.nn.Identity(), "visual": torch.nn.Identity()}, head)
    feats = {"audio": torch.tensor([[3.0, 0.0], [0.0, 3.0]]), "visual": torch.ones(2, 2)}
    labels = torch.tensor([0, 1])
    method.begin_epoch(1, 0, 1, torch.device("cpu"))
    method.loss(model, feats, labels, 0)
    # audio's slice is the identity: each sample puts logit 3 on its own class.
    s_audio = 2 * math.exp(3) / (math.exp(3) + 1)
    s_visual = 2 * 0.5  # visual's slice is all zeros: uniform probabilities
    rho_audio = s_audio / s_visual
    assert method.coeff.tolist() == pytest.approx([1 - math.tanh(rho_audio), 1.0])
    summary = method.end_epoch()
    assert summary.metrics["ogm_ratio.audio"].item() == pytest.approx(rho_audio)
    assert summary.metrics["ogm_coeff.visual"].item() == pytest.approx(1.0)


def test_ogm_ge_scales_encoder_gradients_and_adds_noise_only_when_modulating():
    method = build_method("ogm", {"alpha": 1.0, "modulation_start": 2}, ["a", "b"], 2, 2)
    enc = {"a": torch.nn.Linear(2, 2), "b": torch.nn.Linear(2, 2)}
    model = MultimodalModel(enc, ConcatHead(["a", "b"], 2, 2))
    method.coeff = torch.tensor([0.5, 1.0])
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    method.begin_epoch(1, 0, 1, torch.device("cpu"))
    method.coeff = torch.tensor([0.5, 1.0])
    method.after_backward(model, 0)
    assert torch.all(enc["a"].weight.grad == 1)
    method.begin_epoch(2, 0, 1, torch.device("cpu"))
    method.coeff = torch.tensor([0.5, 1.0])
    method.after_backward(model, 0)
    assert torch.all(enc["a"].weight.grad == 0.5)
    assert torch.all(enc["a"].bias.grad == 1), "biases are not modulated"
    assert torch.all(enc["b"].weight.grad == 1)


def test_ogm_ge_modulation_is_the_published_per_parameter_formula_bit_for_bit():
    """grad = k * grad + N(0, 1) * (std(grad) + 1e-8), one parameter after another, as in the original code."""
    torch.manual_seed(0)
    method = build_method("ogm-ge", {"alpha": 1.0}, ["a", "b"], 3, 8)
    model = MultimodalModel(
        {m: build_encoder({"name": "mlp", "hidden": [32, 16]}, (6,), 8) for m in ("a", "b")}, ConcatHead(["a", "b"], 8, 3)
    )
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    method.begin_epoch(1, 0, 1, torch.device("cpu"))
    method.coeff = torch.tensor([0.3, 1.0])
    expected = {}
    torch.manual_seed(7)
    for i, m in enumerate(["a", "b"]):
        for name, p in model.encoders[m].named_parameters():
            g = p.grad
            if g.dim() >= 2:
                expected[m, name] = g * method.coeff[i] + torch.randn_like(g) * (g.std() + 1e-8)
    torch.manual_seed(7)
    method.after_backward(model, 0)
    assert len(expected) == 6
    for (m, name), grad in expected.items():
        assert torch.equal(dict(model.encoders[m].named_parameters())[name].grad, grad), (m, name)


def test_arm_weights_for_two_modalities_equal_the_reference_formula():
    torch.manual_seed(0)
    head = ARMHead(["audio", "visual"], 16, 5)
    feats = {"audio": torch.relu(torch.randn(32, 16)), "visual": torch.relu(torch.randn(32, 16) * 2)}
    labels = torch.randint(0, 5, (32,))
    for estimator in ("plugin", "reference"):
        terms = arm_terms(feats, arm_lens(feats, head.modalities, *head.lens_parameters), labels, estimator=estimator, nmi_bins=30, ncmi_bins=2, w_min=1e-6, w_max=1e6)
        f = head.probe(torch.cat([feats["audio"], feats["visual"]], 1))
        p_f = confidence(head.classifier(f), labels)
        p_a = confidence(head.classifier(feats["audio"]), labels)
        p_v = confidence(head.classifier(feats["visual"]), labels)
        nmi_a, nmi_v = nmi(feats["audio"], f), nmi(feats["visual"], f)
        ncmi_a = ncmi(feats["audio"], f, feats["visual"], estimator=estimator)
        ncmi_v = ncmi(feats["visual"], f, feats["audio"], estimator=estimator)
        phi_a = p_f * nmi_a + p_v * (nmi_a - ncmi_a)
        phi_v = p_f * nmi_v + p_a * (nmi_v - ncmi_v)
        assert terms.score.tolist() == pytest.approx([phi_a.item(), phi_v.item()], rel=1e-6)
        assert terms.weight.tolist() == pytest.approx([(phi_v / phi_a).item(), (phi_a / phi_v).item()], rel=1e-6)


def test_weights_for_three_modalities_use_the_geometric_mean_of_the_others():
    weight, guard = asymmetric_weights(torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64), 0.01, 100)
    assert weight.tolist() == pytest.approx([math.sqrt(8) / 1, math.sqrt(4) / 2, math.sqrt(2) / 4])
    assert guard.item() == 0


@pytest.mark.parametrize(
    "scores, expected_guard",
    [([float("nan"), 1.0], GUARD_NONFINITE), ([-0.5, 1.0], GUARD_SIGN), ([0.0, 1.0], GUARD_SIGN)],
)
def test_unusable_scores_give_neutral_weights_and_a_guard_flag(scores, expected_guard):
    weight, guard = asymmetric_weights(torch.tensor(scores), 0.1, 10)
    assert weight.tolist() == [1.0, 1.0]
    assert guard.item() == expected_guard


def test_extreme_weights_are_clamped_and_flagged():
    weight, guard = asymmetric_weights(torch.tensor([0.001, 1.0]), 0.1, 10)
    assert weight.tolist() == pytest.approx([10.0, 0.1])
    assert guard.item() == GUARD_RANGE


def test_arm_training_step_records_guard_events_with_their_step():
    method = build_method("arm", {"estimator": "reference"}, ["a", "b"], 3, 4)
    model = MultimodalModel({"a": torch.nn.Identity(), "b": torch.nn.Identity()}, method.build_head())
    method.begin_epoch(1, 100, 2, torch.device("cpu"))
    broken = {"a": torch.full((8, 4), float("nan")), "b": torch.ones(8, 4)}
    method.loss(model, broken, torch.zeros(8, dtype=torch.long), 100)
    summary = method.end_epoch()
    assert summary.events and summary.events[0]["step"] == 100
    assert summary.events[0]["kind"] == "guard_clamp"


def test_arm_moves_the_evaluation_weights_towards_the_training_weights():
    torch.manual_seed(1)
    method = build_method("arm", {"ema_decay": 0.5}, ["a", "b"], 3, 8)
    model = MultimodalModel({"a": torch.nn.Identity(), "b": torch.nn.Identity()}, method.build_head())
    method.begin_epoch(1, 0, 1, torch.device("cpu"))
    feats = {"a": torch.relu(torch.randn(64, 8)), "b": torch.relu(torch.randn(64, 8)) * 5}
    method.loss(model, feats, torch.randint(0, 3, (64,)), 0)
    train_w = method.end_epoch().metrics
    expected = [0.5 + 0.5 * train_w["arm_train_weight.a"].item(), 0.5 + 0.5 * train_w["arm_train_weight.b"].item()]
    assert model.head.eval_weights.tolist() == pytest.approx(expected, rel=1e-5)
