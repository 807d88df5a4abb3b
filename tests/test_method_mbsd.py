"""MBSD (modality-balanced self-distillation): the weight, the logit gap, the divergence and the loss, by hand."""

import math

import pytest
import torch

from armscope.methods import build_method
from armscope.methods.mbsd import (
    distillation_terms,
    logit_gap,
    modality_pairs,
    pair_terms,
    strong_to_weak_divergence,
)
from armscope.models import MultimodalModel, UnimodalHeadsHead
from armscope.rundir import RunDir
from armscope.train import train

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def cross_entropy(logits, label):
    return math.log(sum(math.exp(v) for v in logits)) - logits[label]


# METHODS.md's Example 1: one sample, two classes, label 0; z_a = [2, 0], z_b = [0, 0].
# Two-class softmax: p_a = (sigmoid(2), sigmoid(-2)) = (0.880797, 0.119203), p_b = (0.5, 0.5).
S_A, S_B = sigmoid(2), 0.5
W_1 = S_A - S_B  # a predicts the label, so g = 1 and w = 0.380797
RS_1 = ((2 - 0) ** 2 + (0 - 0) ** 2) / 2  # 2.0
# KL(p_a || p_b) = 0.880797 * ln(0.880797 / 0.5) + 0.119203 * ln(0.119203 / 0.5)
#               = 0.880797 * 0.566219 + 0.119203 * (-1.433781) = 0.498725 - 0.170912 = 0.327813
KL_1 = S_A * math.log(S_A / 0.5) + (1 - S_A) * math.log((1 - S_A) / 0.5)
CE_FUSED_1, CE_A_1, CE_B_1 = cross_entropy([2, 0], 0), cross_entropy([2, 0], 0), cross_entropy([0, 0], 0)
# 0.126928 + 0.126928 + 0.693147 + 0.380797 * 2.0 + 0.380797 * 0.327813 = 0.947003 + 0.761594 + 0.124830
LOSS_1 = CE_FUSED_1 + CE_A_1 + CE_B_1 + W_1 * RS_1 + W_1 * KL_1


def summing_model(modalities):
    """Identity encoders, each modality's classifier the identity, the fused logits the sum of the unimodal ones.

    With two features per modality and two classes the features are the
    unimodal logits, and the fused logits are BalanceBenchmark's z = sum_m z_m.
    """
    head = UnimodalHeadsHead(modalities, 2, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.cat([torch.eye(2)] * len(modalities), dim=1))
        head.fc.bias.zero_()
        for classifier in head.unimodal.values():
            classifier.weight.copy_(torch.eye(2))
            classifier.bias.zero_()
    return MultimodalModel({m: torch.nn.Identity() for m in modalities}, head)


def method_loss(feats, labels, **options):
    modalities = list(feats)
    method = build_method("mbsd", options, modalities, 2, 2)
    method.begin_epoch(1, 0, 1, CPU)
    loss = method.loss(summing_model(modalities), feats, labels, 0)
    return method, loss


def test_example_1_weight_is_the_true_class_confidence_gap_where_a_modality_is_right():
    terms = pair_terms(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([0]))
    assert W_1 == pytest.approx(0.380797, abs=1e-6)
    assert terms.weight.tolist() == pytest.approx([W_1])
    assert terms.gate.tolist() == [True] and terms.first_strong.tolist() == [True]


def test_the_logit_gap_is_the_mean_over_classes_of_squared_logit_differences():
    assert logit_gap(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])).tolist() == [RS_1]
    # (1 - 4)^2 = 9 and (3 - 1)^2 = 4 over three classes with a zero gap: 13 / 3.
    assert logit_gap(torch.tensor([[1.0, 3.0, 5.0]]), torch.tensor([[4.0, 1.0, 5.0]])).tolist() == pytest.approx([13 / 3])


def test_the_divergence_is_kl_from_the_stronger_to_the_weaker_distribution_and_never_negative():
    log_a = torch.log_softmax(torch.tensor([[2.0, 0.0]]), 1)
    log_b = torch.log_softmax(torch.tensor([[0.0, 0.0]]), 1)
    assert KL_1 == pytest.approx(0.327813, abs=1e-6)
    assert strong_to_weak_divergence(log_a, log_b, torch.tensor([True])).tolist() == pytest.approx([KL_1])
    # The same pair listed the other way round: b first, a still the strong side.
    assert strong_to_weak_divergence(log_b, log_a, torch.tensor([False])).tolist() == pytest.approx([KL_1])
    # BalanceBenchmark's F.kl_div(ps, pw) on scalars: 0.5 * (ln 0.5 - 0.880797) = -0.786972, no divergence.
    assert 0.5 * (math.log(0.5) - S_A) == pytest.approx(-0.786972, abs=1e-6)


def test_example_1_loss_with_the_corrected_divergence():
    _, loss = method_loss({"audio": torch.tensor([[2.0, 0.0]]), "visual": torch.tensor([[0.0, 0.0]])}, torch.tensor([0]))
    assert LOSS_1 == pytest.approx(1.833428, abs=1e-6)
    assert loss.item() == pytest.approx(LOSS_1)


def test_example_2_a_sample_neither_modality_predicts_adds_no_distillation():
    # Second sample z_a = [0, 1], z_b = [0, 2], label 0: both predict class 1, so g = 0 and w = 0.
    feats = {"audio": torch.tensor([[2.0, 0.0], [0.0, 1.0]]), "visual": torch.tensor([[0.0, 0.0], [0.0, 2.0]])}
    labels = torch.tensor([0, 0])
    terms = pair_terms(feats["audio"], feats["visual"], labels)
    assert terms.gate.tolist() == [True, False]
    assert terms.weight.tolist() == pytest.approx([W_1, 0.0])
    # Batch means: fused [2, 0], [0, 3] -> (0.126928 + 3.048587) / 2 = 1.587758;
    # a: (0.126928 + 1.313262) / 2 = 0.720095; b: (0.693147 + 2.126928) / 2 = 1.410038.
    ce_fused = (CE_FUSED_1 + cross_entropy([0, 3], 0)) / 2
    ce_a = (CE_A_1 + cross_entropy([0, 1], 0)) / 2
    ce_b = (CE_B_1 + cross_entropy([0, 2], 0)) / 2
    assert (ce_fused, ce_a, ce_b) == pytest.approx((1.587758, 0.720095, 1.410038), abs=1e-6)
    # The distillation terms are Example 1's halved: 0.761594 / 2 = 0.380797 and 0.124830 / 2 = 0.062415.
    gap, divergence = distillation_terms([terms])
    assert (gap.item(), divergence.item()) == pytest.approx((W_1 * RS_1 / 2, W_1 * KL_1 / 2))
    _, loss = method_loss(feats, labels)
    expected = ce_fused + ce_a + ce_b + W_1 * RS_1 / 2 + W_1 * KL_1 / 2
    assert expected == pytest.approx(4.161103, abs=1e-6)
    assert loss.item() == pytest.approx(expected)


def test_three_modalities_average_the_terms_over_all_three_pairs():
    # Label 0. z_a = [2, 0] right; z_b = [0, 1] and z_c = [0, 2] wrong.
    # s_a = sigmoid(2) = 0.880797, s_b = sigmoid(-1) = 0.268941, s_c = sigmoid(-2) = 0.119203.
    feats = {"a": torch.tensor([[2.0, 0.0]]), "b": torch.tensor([[0.0, 1.0]]), "c": torch.tensor([[0.0, 2.0]])}
    s_a, s_b, s_c = sigmoid(2), sigmoid(-1), sigmoid(-2)
    w_ab, w_ac, w_bc = s_a - s_b, s_a - s_c, 0.0  # 0.611856, 0.761594; (b, c): neither right
    rs_ab, rs_ac = (2**2 + 1**2) / 2, (2**2 + 2**2) / 2  # 2.5, 4.0 (rs_bc = 0.5, weighted by 0)
    # KL(p_a || p_b) = s_a ln(s_a / s_b) + (1 - s_a) ln((1 - s_a) / (1 - s_b)) = 0.828725;
    # p_c is p_a reversed, so KL(p_a || p_c) = (s_a - (1 - s_a)) * ln(s_a / (1 - s_a)) = 0.761594 * 2 = 1.523188.
    kl_ab = s_a * math.log(s_a / s_b) + (1 - s_a) * math.log((1 - s_a) / (1 - s_b))
    kl_ac = (2 * s_a - 1) * 2
    rs_term = (w_ab * rs_ab + w_ac * rs_ac + w_bc * 0.5) / 3  # (1.529639 + 3.046377 + 0) / 3 = 1.525339
    kl_term = (w_ab * kl_ab + w_ac * kl_ac) / 3  # (0.507054 + 1.160057) / 3 = 0.555704
    assert (rs_term, kl_term) == pytest.approx((1.525339, 0.555704), abs=1e-6)

    method, _ = method_loss(feats, torch.tensor([0]))
    metrics = {key: value.item() for key, value in method.end_epoch().metrics.items()}
    assert metrics["mbsd_rs"] == pytest.approx(rs_term)
    assert metrics["mbsd_kl"] == pytest.approx(kl_term)
    assert metrics["mbsd_weight"] == pytest.approx((w_ab + w_ac) / 3)
    assert metrics["mbsd_gate"] == pytest.approx(2 / 3)
    # a leads both its pairs, b leads (b, c), c leads none.
    assert [metrics[f"mbsd_strong.{m}"] for m in "abc"] == pytest.approx([1.0, 0.5, 0.0])
    assert [metrics[f"mbsd_acc.{m}"] for m in "abc"] == [1.0, 0.0, 0.0]


def test_every_pair_of_modalities_is_distilled_not_only_the_first_three():
    assert modality_pairs(2) == [(0, 1)]
    assert modality_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert len(modality_pairs(4)) == 6 and (2, 3) in modality_pairs(4)


def test_no_gradient_flows_through_the_weight_nor_into_the_teaching_side():
    z_a = torch.tensor([[2.0, 0.0]], requires_grad=True)
    z_b = torch.tensor([[0.0, 0.0]], requires_grad=True)
    gap, divergence = distillation_terms([pair_terms(z_a, z_b, torch.tensor([0]))])
    # w a constant: d(w * RS)/dz_a = w * 2 (z_a - z_b) / C = 0.380797 * [2, 0], and the negative for z_b.
    grad_a, grad_b = torch.autograd.grad(gap, (z_a, z_b))
    assert grad_a.tolist() == [pytest.approx([W_1 * 2, 0.0])]
    assert grad_b.tolist() == [pytest.approx([-W_1 * 2, 0.0])]
    # KL(p_a || softmax(z_b)) with p_a constant: d/dz_b = w * (p_b - p_a) = 0.380797 * [-0.380797, 0.380797];
    # a is the teacher and gets nothing (a gradient through w would reach it).
    grad_a, grad_b = torch.autograd.grad(divergence, (z_a, z_b))
    assert grad_a.tolist() == [[0.0, 0.0]]
    assert grad_b.tolist() == [pytest.approx([W_1 * (0.5 - S_A), W_1 * (S_A - 0.5)])]


def test_outside_the_modulation_window_the_loss_is_the_fused_and_unimodal_cross_entropies():
    feats = {"audio": torch.tensor([[2.0, 0.0]]), "visual": torch.tensor([[0.0, 0.0]])}
    method, loss = method_loss(feats, torch.tensor([0]), modulation_start=2)
    assert loss.item() == pytest.approx(CE_FUSED_1 + CE_A_1 + CE_B_1)  # 0.947003
    assert method.end_epoch().metrics["mbsd_rs"].item() == pytest.approx(W_1 * RS_1)  # still measured


def test_a_short_run_logs_its_distillation_every_epoch(tiny_config, tmp_path):
    result = train(tiny_config(method="mbsd", epochs=2), tmp_path / "run")
    assert result.status == "succeeded", result.error
    records = RunDir(tmp_path / "run").metrics()
    assert len(records) == 2
    for record in records:
        # w = g * |s_a - s_b| <= g, so the mean weight never exceeds the share of gated pairs.
        assert 0 <= record["mbsd_weight"] <= record["mbsd_gate"] <= 1
        assert record["mbsd_rs"] >= 0 and record["mbsd_kl"] >= 0
        assert record["mbsd_strong.audio"] + record["mbsd_strong.visual"] == pytest.approx(1)
        # g = 1 where either classifier is right: at least the better one's accuracy, at most the two's sum.
        accuracies = [record[f"mbsd_acc.{m}"] for m in ("audio", "visual")]
        assert max(accuracies) <= record["mbsd_gate"] + 1e-6
        assert record["mbsd_gate"] <= sum(accuracies) + 1e-6
