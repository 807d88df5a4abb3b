"""MLA: the test-time uncertainty fusion, the projection of the shared classifier's gradient, the alternating
step and what a run logs and checkpoints (METHODS.md Part C section 1).

The worked examples, checked by hand:
- Fusion. z_a = (0, 0): p = (1/2, 1/2), H_a = ln 2 = 0.693147. z_v = (ln 3, 0): p = (3/4, 1/4),
  H_v = ln 4 - (3/4) ln 3 = 0.562335. exp(-H_a) = 1/2, exp(-H_v) = 3^(3/4)/4 = 0.569877, so
  lambda = (0.5, 0.569877) / 1.069877 = (0.467344, 0.532656); fused = (0.532656 ln 3, 0) = (0.585183, 0).
- Three modalities. z_t = (ln 9, 0): p = (9/10, 1/10), H_t = ln 10 - (9/10) ln 9 = 0.325083,
  exp(-H_t) = 9^(9/10)/10 = 0.722467; lambda = (0.5, 0.569877, 0.722467) / 1.792344
  = (0.278964, 0.317951, 0.403085).
- Projection. P = I_2, r = (1, 0), b = 0 so a = 0.1^1 = 0.1: k = P r = (1, 0), r k = 1,
  P - k k^T / 1.1 = diag(1/11, 1), ||.||_F = sqrt(122)/11, so P = diag(1, 11)/sqrt(122) = diag(0.090536, 0.995893).
  G = [[1, 1]]: G P^T = [[0.090536, 0.995893]] (BalanceMM's addition would give [[1.090536, 1.995893]]).
"""

import math

import pytest
import torch
from torch.nn import functional as F

from armscope.builtin.methods.mla import shared_head_size
from armscope.methods import build_method
from armscope.methods.mla import (
    SharedHead,
    batch_alpha,
    entropy,
    fuse,
    fusion_weights,
    kept_fraction,
    projected_gradient,
    projection_shift,
    updated_projection,
)
from armscope.models import MultimodalModel, build_encoder
from armscope.rundir import RunDir
from armscope.step import Batch, StepContext
from armscope.train import train

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")
LN3, LN9 = math.log(3), math.log(9)
ALL_PRESENT_2 = torch.ones(2, 1, dtype=torch.bool)
EXAMPLE_P = [[0.090536, 0.0], [0.0, 0.995893]]


def assert_values(actual, expected, atol=1e-6):
    torch.testing.assert_close(actual, torch.tensor(expected), rtol=0, atol=atol)


def stacked(*rows):
    """Logits of one sample per modality, stacked M x B x C with B = 1."""
    return torch.tensor([[list(row)] for row in rows])


def test_the_entropy_is_per_sample_over_the_classes():
    assert_values(entropy(stacked((0.0, 0.0), (LN3, 0.0), (LN9, 0.0))), [[0.693147], [0.562335], [0.325083]])


def test_two_modalities_are_weighted_by_softmax_of_minus_their_entropies():
    logits = stacked((0.0, 0.0), (LN3, 0.0))
    weights = fusion_weights(logits, ALL_PRESENT_2)
    assert_values(weights, [[0.467344], [0.532656]])
    assert_values(fuse(logits, weights), [[0.585183, 0.0]])


def test_three_modalities_are_weighted_alike():
    weights = fusion_weights(stacked((0.0, 0.0), (LN3, 0.0), (LN9, 0.0)), torch.ones(3, 1, dtype=torch.bool))
    assert_values(weights, [[0.278964], [0.317951], [0.403085]])


def test_the_weights_are_per_sample():
    # Sample 0 as the two-modality example; sample 1 swaps the modalities, so it swaps the weights.
    logits = torch.tensor([[[0.0, 0.0], [LN3, 0.0]], [[LN3, 0.0], [0.0, 0.0]]])
    assert_values(fusion_weights(logits, torch.ones(2, 2, dtype=torch.bool)), [[0.467344, 0.532656], [0.532656, 0.467344]])


def test_mean_fusion_gives_every_present_modality_the_same_weight():
    weights = fusion_weights(stacked((0.0, 0.0), (LN3, 0.0), (LN9, 0.0)), torch.ones(3, 1, dtype=torch.bool), False)
    assert_values(weights, [[1 / 3], [1 / 3], [1 / 3]])


def test_an_absent_modality_gets_no_weight_and_a_sample_with_none_present_weights_all_alike():
    # Sample 0: only v present, so lambda = (0, 1) however confident a's logits look. Sample 1: none present.
    logits = torch.tensor([[[5.0, 0.0], [0.0, 0.0]], [[LN3, 0.0], [0.0, 0.0]]])
    present = torch.tensor([[False, False], [True, False]])
    assert_values(fusion_weights(logits, present), [[0.0, 0.5], [1.0, 0.5]])


def example_head():
    """psi with weight [[1, 0], [0, 0]] and bias (2, 0): a peaked bias, as psi(0) would give a masked modality."""
    head = SharedHead(["audio", "visual"], 2, 2)
    with torch.no_grad():
        head.classifier.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        head.classifier.bias.copy_(torch.tensor([2.0, 0.0]))
    return head


def test_the_head_fuses_the_shared_classifiers_logits_of_each_modality():
    # h_a = (-2, 0) gives z_a = (0, 0); h_v = (ln 3 - 2, 0) gives z_v = (ln 3, 0): the two-modality example.
    feats = {"audio": torch.tensor([[-2.0, 0.0]]), "visual": torch.tensor([[LN3 - 2, 0.0]])}
    assert_values(example_head()(feats), [[0.585183, 0.0]])


def test_a_masked_modality_is_left_out_so_the_prediction_is_the_other_modalitys_own():
    # visual zeroed: psi(0) = (2, 0) is lower in entropy than z_a = (0, 0) and would take most of the weight.
    feats = {"audio": torch.tensor([[-2.0, 0.0]]), "visual": torch.zeros(1, 2)}
    assert_values(example_head()(feats), [[0.0, 0.0]])


def test_with_every_modality_masked_the_prediction_is_the_bias():
    assert_values(example_head()({"audio": torch.zeros(1, 2), "visual": torch.zeros(1, 2)}), [[2.0, 0.0]])


def test_the_head_holds_one_classifier_whatever_the_number_of_modalities():
    head = SharedHead(["a", "b", "c"], 16, 7)
    assert sum(p.numel() for p in head.parameters()) == 16 * 7 + 7 == shared_head_size(3, 16, 7).parameters


def test_the_regulariser_falls_from_a_to_a_squared_over_an_epoch():
    assert batch_alpha(0.1, 0, 10) == pytest.approx(0.1)
    assert batch_alpha(0.1, 5, 10) == pytest.approx(0.1**1.5)  # 0.031623
    assert batch_alpha(0.1, 9, 10) == pytest.approx(0.1**1.9)  # 0.012589, the epoch's last batch


def test_the_projection_shrinks_along_the_mean_feature_and_is_normalised():
    projection = updated_projection(torch.eye(2), torch.tensor([1.0, 0.0]), batch_alpha(0.1, 0, 10))
    assert_values(projection, EXAMPLE_P)
    assert torch.linalg.matrix_norm(projection).item() == pytest.approx(1.0)


def test_the_weight_gradient_is_replaced_by_its_projection_not_added_to_it():
    projected = projected_gradient(torch.tensor([[1.0, 1.0]]), torch.tensor(EXAMPLE_P))
    assert_values(projected, [[0.090536, 0.995893]])


def test_the_kept_fraction_is_the_ratio_of_gradient_norms():
    # ||(0.090536, 0.995893)|| = sqrt(1/122 + 121/122) = 1, ||(1, 1)|| = sqrt(2): 1/sqrt(2) = 0.707107 kept.
    grad = torch.tensor([[1.0, 1.0]])
    assert kept_fraction(grad, projected_gradient(grad, torch.tensor(EXAMPLE_P))).item() == pytest.approx(0.707107)
    assert kept_fraction(torch.zeros(1, 2), torch.zeros(1, 2)).item() == 1.0


def test_the_projection_shift_measures_the_distance_from_a_scaled_identity():
    # P^ = diag(1, 11)/sqrt(122): ||P^ - I/sqrt(2)||^2 = 2 - 2 tr(P^)/sqrt(2) = 2 - 24/sqrt(244) = 0.463557.
    assert projection_shift(torch.eye(4)).item() == pytest.approx(0.0, abs=1e-7)
    assert projection_shift(torch.tensor(EXAMPLE_P)).item() == pytest.approx(math.sqrt(0.463557), abs=1e-6)


def av_model(**options):
    torch.manual_seed(0)
    method = build_method("mla", options, ["audio", "visual"], 3, 4)
    encoders = {m: build_encoder({"name": "mlp", "hidden": [8]}, (5,), 4) for m in ("audio", "visual")}
    model = MultimodalModel(encoders, method.build_head())
    inputs = {m: torch.randn(16, 5) for m in ("audio", "visual")}
    return method, model, inputs, torch.randint(0, 3, (16,))


class RecordingContext(StepContext):
    """Notes, at each update, which encoders and whether the head the update moved."""

    def __init__(self, model, optimizer):
        super().__init__(model, optimizer, CPU, "fp32")
        self.moved = []

    def update(self, parameters=None):
        parts = {**self.model.encoders, "head": self.model.head}
        before = {name: [p.detach().clone() for p in part.parameters()] for name, part in parts.items()}
        super().update(parameters)
        self.moved.append(
            {name for name, part in parts.items() if any(not torch.equal(p, b) for p, b in zip(part.parameters(), before[name]))}
        )


def test_each_sub_step_moves_only_its_modalitys_encoder_and_the_shared_head():
    method, model, inputs, labels = av_model()
    method.begin_epoch(1, 0, 2, CPU)
    context = RecordingContext(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    for index in range(2):
        method.train_step(context, Batch(inputs, labels, index))
    assert context.moved == [{"audio", "head"}, {"visual", "head"}] * 2


def test_the_step_returns_the_mean_of_the_unimodal_losses_before_their_updates():
    method, model, inputs, labels = av_model()
    with torch.no_grad():
        expected = [F.cross_entropy(model.head.classifier(model.encoders[m](inputs[m])), labels) for m in ("audio", "visual")]
    method.begin_epoch(1, 0, 1, CPU)
    context = StepContext(model, torch.optim.SGD(model.parameters(), lr=0.0), CPU, "fp32")
    loss = method.train_step(context, Batch(inputs, labels, 0))
    assert loss.item() == pytest.approx((expected[0].item() + expected[1].item()) / 2)


def test_the_head_gradient_a_step_leaves_is_the_projected_one_and_the_first_sub_step_of_the_run_is_not_projected():
    method, model, inputs, labels = av_model()
    head = model.head
    with torch.no_grad():
        features = {m: model.encoders[m](inputs[m]) for m in ("audio", "visual")}
    plain = torch.autograd.grad(F.cross_entropy(head.classifier(features["visual"]), labels), head.classifier.weight)[0]
    method.begin_epoch(1, 0, 1, CPU)
    context = StepContext(model, torch.optim.SGD(model.parameters(), lr=0.0), CPU, "fp32")
    method.train_step(context, Batch(inputs, labels, 0))
    # The run's first sub-step (audio) left P at I; the visual sub-step updated it once, with a = 0.1.
    projection = updated_projection(torch.eye(4), features["visual"].mean(0), 0.1)
    torch.testing.assert_close(method.projection, projection)
    torch.testing.assert_close(head.classifier.weight.grad, plain @ projection.T)
    summary = method.end_epoch().metrics
    assert summary["mla_grad_kept.audio"].item() == 1.0
    assert 0 < summary["mla_grad_kept.visual"].item() < 1


def test_without_gradient_modification_the_head_keeps_its_plain_gradient_and_p_stays_the_identity():
    method, model, inputs, labels = av_model(gradient_modification=False)
    head = model.head
    with torch.no_grad():
        features = model.encoders["visual"](inputs["visual"])
    plain = torch.autograd.grad(F.cross_entropy(head.classifier(features), labels), head.classifier.weight)[0]
    method.begin_epoch(1, 5, 10, CPU)
    context = StepContext(model, torch.optim.SGD(model.parameters(), lr=0.0), CPU, "fp32")
    method.train_step(context, Batch(inputs, labels, 7))
    torch.testing.assert_close(head.classifier.weight.grad, plain)
    assert torch.equal(method.projection, torch.eye(4))


def test_p_is_the_methods_state_and_a_fresh_method_continues_from_it():
    method, model, inputs, labels = av_model()
    method.begin_epoch(1, 0, 1, CPU)
    method.train_step(StepContext(model, torch.optim.SGD(model.parameters(), lr=0.1), CPU, "fp32"), Batch(inputs, labels, 0))
    resumed = build_method("mla", {}, ["audio", "visual"], 3, 4)
    resumed.load_state_dict(method.state_dict())
    resumed.begin_epoch(2, 1, 1, CPU)
    assert torch.equal(resumed.projection, method.projection) and not torch.equal(resumed.projection, torch.eye(4))


def test_a_run_logs_its_losses_fusion_weights_kept_gradient_and_p_and_checkpoints_p(tiny_config, tmp_path):
    config = tiny_config(method="mla", epochs=2)
    result = train(config, tmp_path / "run")
    assert result.status == "succeeded", result.error
    records = RunDir(tmp_path / "run").metrics()
    modalities = config.dataset_options["modalities"]
    assert len(records) == 2
    for record in records:
        for m in modalities:
            assert 0 < record[f"mla_loss.{m}"] < 10
            assert 0 < record[f"mla_weight.{m}"] < 1
            assert 0 < record[f"mla_grad_kept.{m}"] <= 1
        assert sum(record[f"mla_weight.{m}"] for m in modalities) == pytest.approx(1.0)
        assert 0 < record["mla_projection_shift"] <= math.sqrt(2)
    projection = RunDir(tmp_path / "run").load_checkpoint()["method"]["projection"]
    assert projection.shape == (16, 16)
    assert records[-1]["mla_projection_shift"] == pytest.approx(projection_shift(projection).item())
