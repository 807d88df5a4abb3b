"""ReconBoost: boosting one modality's learner at a time against the others' ensemble (METHODS.md B.5).

The worked examples, checked by hand (C = 2 classes, label y = 0, boosted learner's logits z = (1, 0)):
p = softmax(z) = (e / (e + 1), 1 / (e + 1)) = (0.731059, 0.268941); CE = -log 0.731059 = 0.313262.
- Others' ensemble o = (0, 0): q_y = 0.5, weight w1 - w2 q_y = 5 - 0.5 = 4.5, loss = 4.5 / 2 * 0.313262 = 0.704839;
  d loss / dz = 2.25 * (p - e_y) = 2.25 * (-0.268941, 0.268941) = (-0.605118, 0.605118).
- q_y = 0.9: weight 4.1, loss = 2.05 * 0.313262 = 0.642186.
- Reconcilement against f_prev = (0, 0), target (0.5, 0.5): gap (0.231059, -0.231059), mean square 0.053388.
  Its gradient, f_prev fixed: d/dp = 2/C * gap = gap; d/dz = p0 p1 (gap0 - gap1, gap1 - gap0), with
  p0 p1 = 0.196612: (0.196612 * 0.462117, -...) = (0.090858, -0.090858).
- Rectification, f_a = (2, 0), f_b = (0, 1), S = (2, 1): beta = 1, CE = log(1 + e^-1) = 0.313262; beta = 0.01,
  CE(0.02, 0.01) = log(1 + e^-0.01) = 0.688160; d CE / d beta = sum_c (p_c - y_c) S_c with p = (0.502500, 0.497500):
  (0.5025 - 1) * 2 + 0.4975 * 1 = -0.497500.
"""

import pytest
import torch
from torch import nn

from armscope.builtin.methods.reconboost import ReconBoostOptions, reconboost_head_size
from armscope.methods import build_method
from armscope.methods.reconboost import (
    BOOST,
    RECTIFY,
    WARMUP,
    ReconBoostHead,
    Stage,
    boosting_loss,
    boosting_weights,
    ensemble_logits,
    fused_cross_entropy,
    reconcilement,
    stage_at,
    true_class_probability,
)
from armscope.models import MultimodalModel
from armscope.rundir import RunDir
from armscope.step import Batch, StepContext
from armscope.train import train
from tests.test_gpu_path import batch as av_batch
from tests.test_gpu_path import with_av_model

pytestmark = pytest.mark.unit

Z, LABEL = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
AV = ["audio", "visual"]


def assert_values(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected), rtol=0, atol=1e-6)


def test_the_others_true_class_probability_is_one_half_when_their_ensemble_is_undecided():
    assert_values(true_class_probability(torch.zeros(1, 2), LABEL), [0.5])


def test_a_sample_the_others_get_right_weighs_less():
    assert_values(boosting_weights(torch.tensor([0.0, 0.5, 1.0]), 5.0, 1.0), [5.0, 4.5, 4.0])


@pytest.mark.parametrize(("q_true", "expected"), [(0.5, 0.704839), (0.9, 0.642186)])
def test_the_boosting_loss_is_the_weighted_cross_entropy_over_the_classes(q_true, expected):
    loss = boosting_loss(Z, LABEL, torch.tensor([q_true]), 5.0, 1.0)
    assert_values(loss, [expected])


def test_the_boosting_loss_gradient_is_the_weighted_cross_entropy_gradient():
    z = Z.clone().requires_grad_()
    boosting_loss(z, LABEL, torch.tensor([0.5]), 5.0, 1.0).sum().backward()
    assert_values(z.grad, [[-0.605118, 0.605118]])


def test_the_boosting_weight_carries_no_gradient_to_the_other_modalities():
    others = torch.zeros(1, 2, requires_grad=True)
    z = Z.clone().requires_grad_()
    boosting_loss(z, LABEL, true_class_probability(others, LABEL).detach(), 5.0, 1.0).sum().backward()
    assert others.grad is None


def test_the_reconcilement_term_is_the_mean_squared_gap_of_the_class_probabilities():
    assert_values(reconcilement(Z, torch.zeros(1, 2)), [0.053388])


def test_the_reconcilement_term_pulls_the_boosted_learner_and_leaves_the_previous_one_fixed():
    # The authors detach both sides, so their term has no gradient at all; here only f_prev is detached.
    z, previous = Z.clone().requires_grad_(), torch.zeros(1, 2, requires_grad=True)
    reconcilement(z, previous).sum().backward()
    assert_values(z.grad, [[0.090858, -0.090858]])
    assert previous.grad is None


@pytest.mark.parametrize(("beta", "expected"), [(1.0, 0.313262), (0.01, 0.688160)])
def test_rectification_is_the_cross_entropy_of_beta_times_the_learners_sum(beta, expected):
    learners = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    assert fused_cross_entropy(torch.tensor(beta), learners, LABEL).item() == pytest.approx(expected, abs=1e-6)


def test_rectification_moves_beta_by_the_learners_sum_against_the_residual():
    beta = torch.tensor(0.01, requires_grad=True)
    fused_cross_entropy(beta, [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])], LABEL).backward()
    assert beta.grad.item() == pytest.approx(-0.497500, abs=1e-6)


def test_the_ensemble_is_beta_times_the_sum_of_the_learners():
    learners = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])]
    assert_values(ensemble_logits(torch.tensor(0.5), learners), [[1.5, 1.0]])


def test_the_schedule_warms_up_then_boosts_each_modality_in_turn_between_rectifications():
    stages = [stage_at(epoch, AV, warmup=1, boost=1, rectify=1) for epoch in range(1, 8)]
    assert stages == [
        Stage(WARMUP),
        Stage(BOOST, 0, "audio", None),
        Stage(RECTIFY, 0, "audio", None),
        Stage(BOOST, 1, "visual", "audio"),
        Stage(RECTIFY, 1, "visual", "audio"),
        Stage(BOOST, 2, "audio", "visual"),
        Stage(RECTIFY, 2, "audio", "visual"),
    ]


def test_the_authors_schedule_boosts_four_epochs_then_rectifies_four():
    phases = [stage_at(epoch, AV, warmup=0, boost=4, rectify=4) for epoch in range(1, 10)]
    assert [(s.phase, s.modality) for s in phases] == [
        *[(BOOST, "audio")] * 4, *[(RECTIFY, "audio")] * 4, (BOOST, "visual"),
    ]


def test_three_modalities_are_boosted_round_robin_each_reconciled_with_the_one_before():
    stages = [stage_at(epoch, ["text", "visual", "audio"], warmup=0, boost=1, rectify=0) for epoch in range(1, 5)]
    assert [(s.modality, s.previous) for s in stages] == [
        ("text", None), ("visual", "text"), ("audio", "visual"), ("text", "audio"),
    ]


def example_head():
    """A head whose shared learner is the identity on 2 features (2 classes) and beta = 1."""
    head = ReconBoostHead(AV, 2, 2)
    head.learner = nn.Identity()
    return head


def test_a_masked_modalitys_learner_is_left_out_of_the_prediction():
    head = example_head()
    h_audio, zeros = torch.tensor([[2.0, 0.0], [1.0, 3.0]]), torch.zeros(2, 2)
    with torch.no_grad():
        head.beta.fill_(0.5)
    assert_values(head({"audio": h_audio, "visual": zeros}), [[1.0, 0.0], [0.5, 1.5]])
    # A sample whose features are all zero is masked; a feature that happens to be zero is not.
    assert_values(head({"audio": zeros, "visual": torch.tensor([[0.0, 4.0], [0.0, 0.0]])}), [[0.0, 2.0], [0.0, 0.0]])


def test_the_head_holds_one_shared_learner_and_beta_whatever_the_number_of_modalities():
    head = ReconBoostHead(["a", "b", "c"], 16, 7)
    # 16 -> 8 -> 7 with biases, plus beta: 16 * 8 + 8 + 8 * 7 + 7 + 1 = 200.
    assert sum(p.numel() for p in head.parameters()) == 200
    assert reconboost_head_size(3, 16, 7).parameters == 200
    assert reconboost_head_size(2, 16, 7).parameters == 200
    assert head.beta.item() == 1.0


def test_the_defaults_are_the_authors_and_a_negative_boosting_weight_is_refused():
    options = ReconBoostOptions()
    assert (options.w1, options.w2, options.alpha, options.beta_init) == (5.0, 1.0, 0.5, 1.0)
    assert build_method("reconboost", {"beta_init": 0.01}, AV, 2, 2).build_head().beta.item() == pytest.approx(0.01)
    with pytest.raises(ValueError, match="w2 must not exceed w1"):
        ReconBoostOptions(w1=1.0, w2=2.0)


def small_model(method):
    torch.manual_seed(0)
    encoders = {m: nn.Sequential(nn.Linear(3, 4), nn.ReLU()) for m in AV}
    return MultimodalModel(encoders, method.build_head())


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def moved(module, before):
    return any(not torch.equal(p, b) for p, b in zip(module.parameters(), before))


def one_step(method, model, optimizer, epoch):
    method.begin_epoch(epoch, 0, 1, torch.device("cpu"))
    inputs = {m: torch.randn(8, 3) for m in AV}
    method.train_step(StepContext(model, optimizer, torch.device("cpu"), "fp32"), Batch(inputs, torch.arange(8) % 2, 0))


@pytest.mark.parametrize(("epoch", "boosted", "fixed"), [(1, "audio", "visual"), (3, "visual", "audio")])
def test_a_boosting_step_moves_only_the_boosted_encoder_and_the_shared_learner(epoch, boosted, fixed):
    method = build_method("reconboost", {"warmup_epochs": 0}, AV, 2, 4)
    model = small_model(method)
    # Momentum and weight decay from earlier steps must not move the fixed encoder (BalanceMM's torch < 2 bug).
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    one_step(method, model, optimizer, 2)  # a rectification step: every parameter gets momentum
    head = model.head
    before = {m: snapshot(model.encoders[m]) for m in AV}
    learner, beta = snapshot(head.learner), head.beta.detach().clone()
    one_step(method, model, optimizer, epoch)
    assert moved(model.encoders[boosted], before[boosted])
    assert not moved(model.encoders[fixed], before[fixed])
    assert moved(head.learner, learner)
    assert torch.equal(head.beta, beta)


@pytest.mark.parametrize(("epoch", "beta_moves"), [(1, False), (3, True)])
def test_warm_up_and_rectification_steps_move_every_encoder_and_rectification_beta_too(epoch, beta_moves):
    method = build_method("reconboost", {}, AV, 2, 4)  # epoch 1 warms up, epoch 3 rectifies
    model = small_model(method)
    before = {m: snapshot(model.encoders[m]) for m in AV}
    beta = model.head.beta.detach().clone()
    one_step(method, model, torch.optim.SGD(model.parameters(), lr=0.1), epoch)
    assert all(moved(model.encoders[m], before[m]) for m in AV)
    assert (not torch.equal(model.head.beta, beta)) == beta_moves


def test_boosting_and_rectification_steps_never_synchronise_with_the_host():
    # The shared meta-device test runs epoch 1 (the warm-up); here the other phases, reconcilement included.
    device = torch.device("meta")
    method, model = with_av_model(build_method("reconboost", {"warmup_epochs": 0}, AV, 6, 512), torch.device("meta"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for epoch in (1, 2, 3):  # boost audio, rectify, boost visual against audio
        method.begin_epoch(epoch, 0, 1, device)
        inputs, labels = av_batch()
        loss = method.train_step(StepContext(model, optimizer, device, "fp32"), Batch(
            {m: x.to(device) for m, x in inputs.items()}, labels.to(device), 0))
        assert loss.device.type == "meta"


def test_a_short_run_logs_each_phase_and_its_terms_every_epoch(tiny_config, tmp_path):
    result = train(tiny_config(method="reconboost", epochs=4), tmp_path / "run")
    assert result.status == "succeeded", result.error
    records = RunDir(tmp_path / "run").metrics()
    phases = [
        (r["reconboost_warmup"], r["reconboost_boosted.audio"], r["reconboost_boosted.visual"], r["reconboost_rectifying"])
        for r in records
    ]
    # Warm-up, boost audio (stage 0), rectify, boost visual (stage 1, reconciled with audio).
    assert phases == [(1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 0, 1), (0, 0, 1, 0)]
    warmup, boost_audio, rectify, boost_visual = records
    for record in (warmup, rectify):
        assert record["reconboost_boost_loss"] == record["reconboost_q_true"] == record["reconboost_weight"] == 0
    for record in (boost_audio, boost_visual):
        assert record["reconboost_boost_loss"] > 0 and 0 < record["reconboost_q_true"] < 1
        # The mean weight is w1 - w2 times the mean q_y (5 and 1 by default).
        assert record["reconboost_weight"] == pytest.approx(5 - record["reconboost_q_true"], abs=1e-5)
    assert boost_audio["reconboost_reconcile"] == 0 and boost_visual["reconboost_reconcile"] > 0
    # Only rectification trains beta.
    assert warmup["reconboost_beta"] == boost_audio["reconboost_beta"] == 1.0
    assert rectify["reconboost_beta"] != 1.0 and boost_visual["reconboost_beta"] == rectify["reconboost_beta"]
    assert all(0 <= r[f"reconboost_acc.{m}"] <= 1 for r in records for m in AV)
