"""LFM: the alignment divergence, the fused logits and the step loss, the Hessian-vector product, the alpha
update and the fitted schedule, by hand; the held-out batch V and the epoch pass; and what a run logs."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from armscope.data.base import TensorSplit
from armscope.epoch_pass import TrainingData
from armscope.methods import build_method
from armscope.methods.lfm import (
    alignment_loss,
    draw_holdout,
    fitted_alpha_cls,
    fused_logits,
    halved_step_size,
    hessian_vector_product,
    jensen_shannon,
    reversed_divergence,
    step_loss,
    updated_alpha_align,
)
from armscope.models import MultimodalModel
from armscope.rundir import RunDir
from armscope.train import train

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")
LN3 = math.log(3)


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def log_probs(*logits):
    return F.log_softmax(t(*logits)[None], dim=1)


# METHODS.md's example: z_a = [0, 0] gives p = [.5, .5], z_b = [ln 3, 0] gives q = [.75, .25]; m = [.625, .375].
# KL(m||p) = .625 ln(.625/.5) + .375 ln(.375/.5) = 0.1394647 - 0.1078808 = 0.0315839
# KL(m||q) = .625 ln(.625/.75) + .375 ln(.375/.25) = -0.1139510 + 0.1520494 = 0.0380984
# A = (0.0315839 + 0.0380984) / 2 = 0.0348411
A_EXAMPLE = 0.0348411


def test_the_authors_divergence_runs_from_the_mixture_to_each_prediction():
    assert reversed_divergence(log_probs(0, 0), log_probs(LN3, 0)).item() == pytest.approx(A_EXAMPLE, abs=1e-6)


def test_the_true_jensen_shannon_runs_from_each_prediction_to_the_mixture():
    # KL(p||m) = .5 ln(.5/.625) + .5 ln(.5/.375) = -0.1115718 + 0.1438410 = 0.0322693
    # KL(q||m) = .75 ln(.75/.625) + .25 ln(.25/.375) = 0.1367412 - 0.1013663 = 0.0353749; JS = 0.0338221
    assert jensen_shannon(log_probs(0, 0), log_probs(LN3, 0)).item() == pytest.approx(0.0338221, abs=1e-6)


def test_identical_predictions_are_perfectly_aligned():
    same = log_probs(1.0, -2.0, 0.5)
    assert reversed_divergence(same, same).item() == pytest.approx(0.0, abs=1e-7)
    assert jensen_shannon(same, same).item() == pytest.approx(0.0, abs=1e-7)


def test_the_alignment_loss_of_two_modalities_is_their_divergence():
    loss = alignment_loss([t(0, 0)[None], t(LN3, 0)[None]], "reversed")
    assert loss.item() == pytest.approx(A_EXAMPLE, abs=1e-6)


def test_the_alignment_loss_averages_every_modality_pair():
    # a = c = [0, 0], b = [ln 3, 0]: pairs (a, b) and (b, c) give A, (a, c) gives 0; mean 2A / 3 = 0.0232274.
    logits = [t(0, 0)[None], t(LN3, 0)[None], t(0, 0)[None]]
    assert alignment_loss(logits, "reversed").item() == pytest.approx(2 * A_EXAMPLE / 3, abs=1e-6)


def test_the_fused_logits_are_the_mean_of_the_modalities_logits():
    assert fused_logits([t(0, 0), t(LN3, 0)]).tolist() == pytest.approx([LN3 / 2, 0])


def test_the_step_loss_of_the_authors_example():
    # Fused [ln3 / 2, 0]: p_0 = sqrt3 / (sqrt3 + 1) = 0.6339746, CE = 0.4557464;
    # L = 2 (0.05 x 0.4557464 + 0.95 x 0.0348411) = 2 (0.0227873 + 0.0330991) = 0.1117728.
    loss_cls = F.cross_entropy(fused_logits([t(0, 0)[None], t(LN3, 0)[None]]), torch.tensor([0]))
    assert loss_cls.item() == pytest.approx(0.4557464, abs=1e-6)
    loss = step_loss(t(0.05), t(0.95), loss_cls, t(A_EXAMPLE))
    assert loss.item() == pytest.approx(0.111773, abs=1e-6)


def test_the_step_loss_of_balancebenchmarks_example():
    # BalanceBenchmark sums the slices: fused [ln 3, 0], CE = -ln(3/4) = 0.2876821, and its alphas are reversed:
    # L = 2 (0.95 x 0.2876821 + 0.05 x 0.0348411) = 2 (0.2732980 + 0.0017421) = 0.5500801.
    loss = step_loss(t(0.95), t(0.05), t(0.2876821), t(A_EXAMPLE))
    assert loss.item() == pytest.approx(0.550080, abs=1e-6)


def test_the_hessian_vector_product_of_a_scalar_parameter():
    # METHODS.md: theta = 0.5, L_cls = theta^2, L_align = 2 (theta - 1)^2, alphas (0.95, 0.05):
    # H_tot = 0.95 x 2 + 0.05 x 4 = 2.1, g_cls = 2 theta = 1, v = 2.1.
    theta = torch.tensor(0.5, requires_grad=True)
    loss_cls, loss_align = theta**2, 2 * (theta - 1) ** 2
    (v,) = hessian_vector_product(0.95 * loss_cls + 0.05 * loss_align, loss_cls, [theta], [theta])
    assert v.item() == pytest.approx(2.1)


def test_the_first_tensors_part_of_the_product_keeps_the_hessians_cross_terms():
    # theta = (a, b) = (1, 2), L_cls = a b, L_align = a^2, alphas (0.5, 0.5): L_tot = 0.5 a b + 0.5 a^2,
    # H_tot = [[1, 0.5], [0.5, 0]], g_cls = (b, a) = (2, 1); H g = (1 x 2 + 0.5 x 1, 0.5 x 2) = (2.5, 1).
    a, b = torch.tensor(1.0, requires_grad=True), torch.tensor(2.0, requires_grad=True)
    loss_cls = a * b
    total = 0.5 * loss_cls + 0.5 * a**2
    (first,) = hessian_vector_product(total, loss_cls, [a, b], [a])
    assert first.item() == pytest.approx(2.5)


def test_a_negative_s_raises_the_alignment_weight():
    # 0.05 - 1e-4 x (-200) = 0.05 + 0.02 = 0.07; alpha_cls = 0.93.
    alpha_align = updated_alpha_align(t(0.05), 1e-4, t(-200))
    assert alpha_align.item() == pytest.approx(0.07)
    assert (1 - alpha_align).item() == pytest.approx(0.93)


def test_the_alignment_weight_is_clipped_to_the_authors_range():
    # 0.05 - 1e-4 x 2.1 = 0.04979, below 0.05; 0.95 + 1e-4 x 1000 = 1.05, above 0.95.
    assert updated_alpha_align(t(0.05), 1e-4, t(2.1)).item() == pytest.approx(0.05)
    assert updated_alpha_align(t(0.95), 1e-4, t(-1000)).item() == pytest.approx(0.95)


def test_a_nan_s_leaves_the_alignment_weight_as_it_was():
    assert updated_alpha_align(t(0.3), 1e-4, t(math.nan)).item() == pytest.approx(0.3)


@pytest.mark.parametrize(("epoch", "eta"), [(1, 1e-4), (2, 1e-4), (20, 1e-4), (21, 5e-5), (22, 1e-4), (41, 5e-5)])
def test_the_step_size_halves_before_epochs_21_41_and_so_on(epoch, eta):
    # The authors halve at their epochs 20, 40, ... counted from 0: epochs 21, 41, ... here.
    assert halved_step_size(1e-4, epoch, 20) == pytest.approx(eta)


@pytest.mark.parametrize(
    ("authors_epoch", "alpha_cls"),
    [
        # c_0 alone.
        (0, 0.204623704),
        # 0.204623704 + 0.0335472727 + 0.0122989557 - 0.00292947416 + 0.000223835486 - 0.00000539717505
        (10, 0.2477589),
        # 0.204623704 + 0.1006418181 + 0.1106906013 - 0.0790958023 + 0.0181306744 - 0.0013115136
        (30, 0.3536795),
        # 0.204623704 + 0.335472727 + 1.22989557 - 2.92947416 + 2.23835486 - 0.539717505
        (100, 0.5391552),
    ],
)
def test_the_fitted_schedule_is_the_authors_polynomial(authors_epoch, alpha_cls):
    assert fitted_alpha_cls(authors_epoch) == pytest.approx(alpha_cls, abs=1e-7)


def test_the_fitted_schedule_is_clipped_past_the_epochs_it_was_fitted_on():
    # e = 250: 0.2046237 + 0.8386818 + 7.6868473 - 45.7730338 + 87.4357367 - 52.7067876 = -2.3139319.
    assert fitted_alpha_cls(250) == 0.05


def test_the_held_out_samples_never_appear_in_an_epochs_order():
    torch.manual_seed(0)
    method = build_method("lfm", {}, ["audio", "visual"], 3, 4)
    orders = [method.sample_order(epoch, 100, torch.Generator().manual_seed(epoch)) for epoch in (1, 2, 3)]
    held = set(method.holdout.tolist())
    assert len(held) == 8
    for order in orders:
        assert held.isdisjoint(order.tolist())
        assert sorted(order.tolist() + sorted(held)) == list(range(100))


def test_the_held_out_set_is_at_most_half_a_small_split():
    torch.manual_seed(0)
    assert draw_holdout(6, 8).numel() == 3
    with pytest.raises(ValueError, match="at least 2"):
        draw_holdout(1, 8)


def test_the_fitted_schedule_holds_nothing_out():
    method = build_method("lfm", {"schedule": "fitted"}, ["audio", "visual"], 3, 4)
    assert method.sample_order(1, 100, torch.Generator().manual_seed(0)) is None


def test_the_state_restores_the_alphas_the_step_size_and_the_held_out_set():
    torch.manual_seed(0)
    first = build_method("lfm", {}, ["audio", "visual"], 3, 4)
    first.sample_order(1, 50, torch.Generator())
    first.alpha_align, first.eta = t(0.4), 2.5e-5
    second = build_method("lfm", {}, ["audio", "visual"], 3, 4)
    second.load_state_dict(first.state_dict())
    assert second.alpha_align.item() == pytest.approx(0.4) and second.eta == 2.5e-5
    assert torch.equal(second.holdout, first.holdout)


def small_model(method):
    torch.manual_seed(1)
    encoders = {m: nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)) for m in ("audio", "visual")}
    return MultimodalModel(encoders, method.build_head())


def test_the_epoch_pass_moves_alpha_by_s_and_leaves_the_model_as_it_was():
    method = build_method("lfm", {"alpha_cls_init": 0.5, "eta_alpha": 10.0}, ["audio", "visual"], 3, 4)
    model = small_model(method)
    inputs = {m: torch.randn(20, 5) for m in ("audio", "visual")}
    data = TrainingData(TensorSplit(inputs, torch.randint(0, 3, (20,))), model, epoch=1, step=0, batch_size=4,
                        device=CPU, precision="fp32", channels_last=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method.epoch_pass(data)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert method.s.item() != 0
    assert method.alpha_align.item() == pytest.approx(min(max(0.5 - 10.0 * method.s.item(), 0.05), 0.95))


def test_the_prediction_is_the_fused_prediction_training_minimises():
    method = build_method("lfm", {}, ["audio", "visual"], 3, 4)
    model = small_model(method)
    feats = {"audio": torch.randn(2, 4), "visual": torch.randn(2, 4)}
    own = model.head.unimodal
    expected = (own["audio"](feats["audio"]) + own["visual"](feats["visual"])) / 2
    assert torch.allclose(method.predict(model, feats), expected)


def test_a_run_logs_its_weights_and_losses_every_epoch(tiny_config, tmp_path):
    options = {"alpha_cls_init": 0.5, "eta_alpha": 10.0}
    result = train(tiny_config(method="lfm", epochs=2, method_options=options), tmp_path / "run")
    assert result.status == "succeeded", result.error
    records = RunDir(tmp_path / "run").metrics()
    previous = 0.5
    for record in records:
        assert record["lfm_eta"] == pytest.approx(10.0)
        expected = min(max(previous - 10.0 * record["lfm_s"], 0.05), 0.95)
        assert record["lfm_alpha_align"] == pytest.approx(expected, abs=1e-6)
        assert record["lfm_alpha_cls"] + record["lfm_alpha_align"] == pytest.approx(1.0)
        assert record["lfm_loss_cls"] > 0 and record["lfm_loss_align"] >= 0
        assert all(0 <= record[f"lfm_acc.{m}"] <= 1 for m in ("audio", "visual"))
        previous = record["lfm_alpha_align"]
    assert records[0]["lfm_alpha_align"] != records[1]["lfm_alpha_align"]


def test_a_fitted_run_follows_the_polynomial_and_makes_no_update(tiny_config, tmp_path):
    result = train(tiny_config(method="lfm", epochs=2, method_options={"schedule": "fitted"}), tmp_path / "run")
    assert result.status == "succeeded", result.error
    first, second = RunDir(tmp_path / "run").metrics()
    # Epoch 1 is the authors' e = 0: c_0; epoch 2 is e = 1: the sum of the coefficients, 0.2080985.
    assert first["lfm_alpha_cls"] == pytest.approx(0.2046237, abs=1e-6)
    assert second["lfm_alpha_cls"] == pytest.approx(0.2080985, abs=1e-6)
    assert first["lfm_s"] == first["lfm_eta"] == 0
