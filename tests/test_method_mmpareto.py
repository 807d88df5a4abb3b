"""MMPareto: the conflict test, the min-norm weights and their clamps, the rescaled integration, by hand;
a real step's encoder gradients; and what a run logs."""

import math

import pytest
import torch
from torch.nn import functional as F

from armscope.methods import build_method
from armscope.methods.mmpareto import cosine, gram, integrated_gradients, min_norm_weight, pareto_weights
from armscope.models import MultimodalModel, build_encoder
from armscope.rundir import RunDir
from armscope.step import Batch, StepContext
from armscope.train import train

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")
GAMMA_S = 1.5


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def integrate(fused, unimodal, gamma_s=GAMMA_S):
    """The whole rule for one encoder: Gram entries, weights, integrated gradients."""
    weights = pareto_weights(gram(fused, unimodal))
    grads, rho = integrated_gradients(fused, unimodal, weights, gamma_s)
    return weights, grads, rho


def test_conflicting_gradients_get_the_min_norm_weights_and_are_rescaled_to_the_summed_norm():
    # METHODS.md Example 1. g_mm = (1, 0), g_u = (-1, 1): v11 = 1, v12 = -1, v22 = 2, cos = -1 / sqrt(2).
    # gamma = (v22 - v12) / (v11 + v22 - 2 v12) = 3 / 5 = 0.6; g_new = 2 (0.6 (1, 0) + 0.4 (-1, 1)) = (0.4, 0.8),
    # |g_new| = sqrt(0.8); g_sum = (0, 1), rho = 1 / sqrt(0.8) = 1.118034; final = 1.5 rho (0.4, 0.8).
    fused, unimodal = [t(1, 0)], [t(-1, 1)]
    assert gram(fused, unimodal).tolist() == [1, -1, 2]
    assert cosine(gram(fused, unimodal)).item() == pytest.approx(-1 / math.sqrt(2))
    (w1, w2), (grad,), rho = integrate(fused, unimodal)
    assert (w1.item(), w2.item()) == pytest.approx((0.6, 0.4))
    assert rho.tolist() == pytest.approx([1 / math.sqrt(0.8)])
    assert grad.tolist() == pytest.approx([0.670820, 1.341641], abs=1e-6)


def test_the_integrated_gradient_of_a_conflict_lowers_both_losses():
    (_, (grad,), _) = integrate([t(1, 0)], [t(-1, 1)])
    assert grad @ t(1, 0) > 0 and grad @ t(-1, 1) > 0  # 0.670820 and -0.670820 + 1.341641 = 0.670820


def test_agreeing_gradients_are_summed_and_scaled_by_gamma_s():
    # METHODS.md Example 2. g_mm = (1, 0), g_u = (1, 1): cos > 0, weights 0.5 each, g_new = g_sum = (2, 1),
    # rho = 1, final = 1.5 (2, 1) = (3, 1.5).
    (w1, w2), (grad,), rho = integrate([t(1, 0)], [t(1, 1)])
    assert (w1.item(), w2.item()) == (0.5, 0.5)
    assert rho.tolist() == [1.0]
    assert grad.tolist() == [3.0, 1.5]


def test_orthogonal_gradients_count_as_conflicting_as_the_authors_branch_on_cos_above_zero():
    # g_mm = (1, 0), g_u = (0, 2): v12 = 0, gamma = (4 - 0) / (1 + 4) = 0.8; g_new = 2 (0.8, 0.4) = (1.6, 0.8),
    # |g_new|^2 = 3.2; |g_sum|^2 = |(1, 2)|^2 = 5, rho = sqrt(5 / 3.2) = 1.25; final = 1.5 * 1.25 * (1.6, 0.8) = (3, 1.5).
    (w1, _), (grad,), rho = integrate([t(1, 0)], [t(0, 2)])
    assert w1.item() == pytest.approx(0.8)
    assert rho.tolist() == pytest.approx([1.25])
    assert grad.tolist() == pytest.approx([3.0, 1.5])


@pytest.mark.parametrize(
    ("v11", "v12", "v22", "weight"),
    [
        (1.0, -1.0, 2.0, 0.6),  # interior: (2 + 1) / (1 + 2 + 2)
        (1.0, 2.0, 5.0, 0.999),  # v12 >= v11: g1 alone is the shortest; the authors stop at 0.999
        (1.0, 1.0, 5.0, 0.999),  # the boundary belongs to the clamp (>=)
        (5.0, 2.0, 1.0, 0.001),  # v12 >= v22: g2 alone is the shortest; the authors stop at 0.001
        (0.0, 0.0, 0.0, 0.999),  # both zero: the first clamp, no 0 / 0
    ],
)
def test_the_min_norm_weight_is_clamped_short_of_either_end(v11, v12, v22, weight):
    assert min_norm_weight(t(v11)[0], t(v12)[0], t(v22)[0]).item() == pytest.approx(weight)


def test_a_zero_multimodal_gradient_leaves_the_unimodal_gradient_times_gamma_s():
    # g_mm = 0, g_u = (1, 2): cos = 0, so the min-norm branch; v12 = 0 >= v11 = 0 gives w1 = 0.999.
    # g_new = 2 * 0.001 * (1, 2) = (0.002, 0.004); rho = |(1, 2)| / |g_new| = 500; final = 1.5 * 500 * g_new = (1.5, 3).
    (w1, _), (grad,), rho = integrate([t(0, 0)], [t(1, 2)])
    assert w1.item() == pytest.approx(0.999)
    assert rho.tolist() == pytest.approx([500], rel=1e-4)
    assert grad.tolist() == pytest.approx([1.5, 3.0], rel=1e-4)


def test_the_weights_are_per_encoder_but_rho_is_per_parameter_tensor():
    # Example 1 split over two tensors: the same Gram entries, so w = (0.6, 0.4), g_new = ((0.4), (0.8)).
    # Tensor 1: g_sum = 1 - 1 = 0, rho = 0, not scaled up: 1.5 * 0.4 = 0.6. Tensor 2: g_sum = 1, rho = 1 / 0.8 = 1.25:
    # 1.5 * 1.25 * 0.8 = 1.5.
    (w1, _), grads, rho = integrate([t(1), t(0)], [t(-1), t(1)])
    assert w1.item() == pytest.approx(0.6)
    assert rho.tolist() == pytest.approx([0.0, 1.25])
    assert [g.item() for g in grads] == pytest.approx([0.6, 1.5])


def test_a_tensor_without_gradient_stays_at_zero_with_rho_one_not_nan():
    (_, grads, rho) = integrate([t(1, 0), t(0)], [t(1, 1), t(0)])
    assert grads[1].tolist() == [0.0]
    assert rho.tolist() == [1.0, 1.0]


def mirrored_av_model(**options):
    """Two small MLP encoders; each unimodal head is the negative of its slice of the fused head, so at
    initialisation the multimodal and unimodal losses pull each encoder in nearly opposite directions."""
    torch.manual_seed(0)
    method = build_method("mmpareto", options, ["audio", "visual"], 3, 4)
    encoders = {m: build_encoder({"name": "mlp", "hidden": [8]}, (5,), 4) for m in ("audio", "visual")}
    model = MultimodalModel(encoders, method.build_head())
    head = model.head
    with torch.no_grad():
        for i, m in enumerate(head.modalities):
            head.unimodal[m].weight.copy_(-head.fc.weight[:, 4 * i : 4 * (i + 1)])
    inputs = {m: torch.randn(16, 5) for m in ("audio", "visual")}
    return method, model, inputs, torch.randint(0, 3, (16,))


def separate_gradients(model, inputs, labels):
    """g_mm and g_u of each encoder, and the head's gradient of the whole objective, each from its own backward."""
    head = model.head
    feats = model.encode(inputs)
    fused_loss = F.cross_entropy(head(feats), labels)
    unimodal_losses = {m: F.cross_entropy(logits, labels) for m, logits in head.unimodal_heads(feats).items()}
    grads = {}
    for m, encoder in model.encoders.items():
        params = list(encoder.parameters())
        grads[m] = (
            torch.autograd.grad(fused_loss, params, retain_graph=True),
            torch.autograd.grad(unimodal_losses[m], params, retain_graph=True),
        )
    head_grad = torch.autograd.grad(fused_loss + sum(unimodal_losses.values()), list(head.parameters()))
    return grads, head_grad


def stepped_gradients(method, model, inputs, labels, epoch=1):
    """The gradients the method's step leaves on every parameter (a zero learning rate keeps the weights)."""
    method.begin_epoch(epoch, 0, 1, CPU)
    context = StepContext(model, torch.optim.SGD(model.parameters(), lr=0.0), CPU, "fp32")
    method.train_step(context, Batch(inputs, labels, 0))
    return {m: [p.grad for p in encoder.parameters()] for m, encoder in model.encoders.items()}


def dot(first, second):
    return sum((a * b).sum() for a, b in zip(first, second))


def test_in_a_real_step_a_conflicted_encoder_moves_against_neither_loss():
    method, model, inputs, labels = mirrored_av_model()
    expected, _ = separate_gradients(model, inputs, labels)
    applied = stepped_gradients(method, model, inputs, labels)
    for m, (fused, unimodal) in expected.items():
        assert dot(fused, unimodal) < 0, f"the mirrored heads should make {m}'s gradients conflict"
        assert dot(applied[m], fused) >= 0 and dot(applied[m], unimodal) >= 0
        assert dot(applied[m], [a + b for a, b in zip(fused, unimodal)]) > 0


def test_the_heads_keep_the_plain_gradient_of_the_whole_objective():
    method, model, inputs, labels = mirrored_av_model()
    _, head_grad = separate_gradients(model, inputs, labels)
    stepped_gradients(method, model, inputs, labels)
    for p, g in zip(model.head.parameters(), head_grad):
        torch.testing.assert_close(p.grad, g)


def test_outside_the_modulation_window_the_encoders_get_the_plain_summed_gradient():
    method, model, inputs, labels = mirrored_av_model(modulation_start=2)
    expected, _ = separate_gradients(model, inputs, labels)
    applied = stepped_gradients(method, model, inputs, labels, epoch=1)
    for m, (fused, unimodal) in expected.items():
        for got, a, b in zip(applied[m], fused, unimodal):
            torch.testing.assert_close(got, a + b)


def test_a_run_logs_each_encoders_conflicts_cosine_weight_and_rho_every_epoch(tiny_config, tmp_path):
    config = tiny_config(method="mmpareto", epochs=2)
    result = train(config, tmp_path / "run")
    assert result.status == "succeeded", result.error
    records = RunDir(tmp_path / "run").metrics()
    assert len(records) == 2
    for record in records:
        for m in config.dataset_options["modalities"]:
            assert 0 <= record[f"mmpareto_conflict.{m}"] <= 1
            assert -1 <= record[f"mmpareto_cos.{m}"] <= 1
            assert 0.001 <= record[f"mmpareto_w_mm.{m}"] <= 0.999
            assert math.isfinite(record[f"mmpareto_rho.{m}"]) and record[f"mmpareto_rho.{m}"] >= 0
