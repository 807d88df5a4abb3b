"""CML (Calibrating Multimodal Learning): the removal chain, the calibration penalty and the loss, by hand."""

import math

import pytest
import torch

from armscope.methods import build_method
from armscope.methods.cml import (
    calibration_penalty,
    chain_cross_entropy,
    confidence,
    confidence_changes,
    reduce_penalty,
    removal_chain,
)
from armscope.models import ConcatHead, MultimodalModel
from armscope.rundir import RunDir
from armscope.train import train

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")

# METHODS.md's worked example: two samples, labels (0, 1); out_1 is out_0 with one modality removed.
LABELS = torch.tensor([0, 1])
OUT_0 = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
OUT_1 = torch.tensor([[3.0, 0.0], [0.0, 0.5]])


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# Two-class softmax: the larger probability is sigmoid of the logit gap.
CONF_0 = (sigmoid(2), sigmoid(1))  # 0.880797, 0.731059
CONF_1 = (sigmoid(3), sigmoid(0.5))  # 0.952574, 0.622459
CE_0 = (-math.log(CONF_0[0]) - math.log(CONF_0[1])) / 2  # 0.220095
CE_1 = (-math.log(CONF_1[0]) - math.log(CONF_1[1])) / 2  # 0.261332
HINGE = CONF_1[0] - CONF_0[0]  # 0.071777: sample 0's rise; sample 1's confidence falls by 0.108599


def identity_model(modalities, head):
    return MultimodalModel({m: torch.nn.Identity() for m in modalities}, head)


def example_model():
    """A concat head whose fused logits are OUT_0 and whose logits without visual are OUT_1."""
    head = ConcatHead(["audio", "visual"], 2, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
        head.fc.bias.zero_()
    feats = {"audio": OUT_1.clone(), "visual": OUT_0 - OUT_1}
    return identity_model(["audio", "visual"], head), feats


def test_confidence_is_the_maximum_softmax_probability():
    assert confidence(OUT_0).tolist() == pytest.approx(CONF_0)
    assert confidence(OUT_1).tolist() == pytest.approx(CONF_1)
    assert CONF_0 == pytest.approx((0.880797, 0.731059), abs=1e-6)
    assert CONF_1 == pytest.approx((0.952574, 0.622459), abs=1e-6)


def test_the_penalty_is_a_hinge_per_sample_so_a_fall_does_not_cancel_a_rise():
    per_sample = calibration_penalty([OUT_0, OUT_1], LABELS, margin=0.0, mask_corrections=True)
    assert per_sample.tolist() == pytest.approx([HINGE, 0.0])
    assert HINGE == pytest.approx(0.071777, abs=1e-6)
    # BalanceMM's hinge on the batch sum: max(0, 0.071777 - 0.108599) = 0.
    assert max(0.0, sum(CONF_1) - sum(CONF_0)) == 0.0


def test_the_batch_penalty_is_the_authors_sum_or_else_the_mean():
    per_sample = calibration_penalty([OUT_0, OUT_1], LABELS, margin=0.0, mask_corrections=True)
    assert reduce_penalty(per_sample, "sum").item() == pytest.approx(HINGE)
    assert reduce_penalty(per_sample, "mean").item() == pytest.approx(HINGE / 2)


def test_a_rise_within_the_margin_is_not_penalised():
    per_sample = calibration_penalty([OUT_0, OUT_1], LABELS, margin=0.05, mask_corrections=True)
    assert per_sample.tolist() == pytest.approx([HINGE - 0.05, 0.0], abs=1e-6)


def test_a_removal_that_corrects_a_wrong_prediction_is_not_penalised_unless_told():
    more = torch.tensor([[0.0, 1.0]])  # predicts 1 with confidence sigmoid(1): wrong for label 0
    fewer = torch.tensor([[2.0, 0.0]])  # predicts 0 with confidence sigmoid(2): right
    label = torch.tensor([0])
    assert calibration_penalty([more, fewer], label, 0.0, mask_corrections=True).tolist() == [0.0]
    unmasked = calibration_penalty([more, fewer], label, 0.0, mask_corrections=False)
    assert unmasked.tolist() == pytest.approx([sigmoid(2) - sigmoid(1)])  # 0.149738


def test_the_cross_entropy_is_averaged_over_the_chain():
    assert chain_cross_entropy([OUT_0], LABELS).item() == pytest.approx(CE_0)
    assert chain_cross_entropy([OUT_1], LABELS).item() == pytest.approx(CE_1)
    assert (CE_0, CE_1) == pytest.approx((0.220095, 0.261332), abs=1e-6)
    assert chain_cross_entropy([OUT_0, OUT_1], LABELS).item() == pytest.approx((CE_0 + CE_1) / 2)


def test_the_loss_of_the_worked_example_adds_lam_times_the_summed_hinge():
    model, feats = example_model()
    method = build_method("cml", {}, ["audio", "visual"], 2, 2)
    method.begin_epoch(1, 0, 1, CPU)
    method.removed = ["visual"]
    loss = method.loss(model, feats, LABELS, 0)
    # (0.220095 + 0.261332) / 2 + 0.1 * 0.071777 = 0.247891
    assert loss.item() == pytest.approx((CE_0 + CE_1) / 2 + 0.1 * HINGE)
    assert loss.item() == pytest.approx(0.247891, abs=1e-6)


def test_outside_the_modulation_window_the_loss_is_plain_cross_entropy_on_the_fused_logits():
    model, feats = example_model()
    method = build_method("cml", {"modulation_start": 2}, ["audio", "visual"], 2, 2)
    method.begin_epoch(1, 0, 1, CPU)
    method.removed = ["visual"]
    assert method.loss(model, feats, LABELS, 0).item() == pytest.approx(CE_0)


def test_three_modalities_are_removed_one_more_at_each_step():
    feats = {"audio": torch.tensor([[1.0]]), "visual": torch.tensor([[1.0]]), "text": torch.tensor([[1.0]])}
    chain = removal_chain(feats, ["text", "audio"])
    present = [[m for m in ("audio", "visual", "text") if reduced[m].any()] for reduced in chain]
    assert present == [["audio", "visual", "text"], ["audio", "visual"], ["visual"]]
    head = ConcatHead(["audio", "visual", "text"], 1, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 2.0, 4.0], [0.0, 0.0, 0.0]]))
        head.fc.bias.copy_(torch.tensor([0.5, -0.5]))
    logits = [head(reduced) for reduced in chain]
    # class 0: 1 + 2 + 4 + 0.5, then without text 1 + 2 + 0.5, then visual alone 2 + 0.5; class 1: the bias -0.5.
    # BalanceMM's out - u_text + b/3 = 7.5 - (4 + 0.5/3) + 0.5/3 = 3.5 gives the same second link.
    assert [row.tolist() for row in logits] == [[[7.5, -0.5]], [[3.5, -0.5]], [[2.5, -0.5]]]
    changes = confidence_changes(logits)
    assert changes.shape == (2, 1)
    assert changes[:, 0].tolist() == pytest.approx([sigmoid(4) - sigmoid(8), sigmoid(3) - sigmoid(4)], abs=1e-6)


class RecordingHead(ConcatHead):
    """A concat head that notes which modalities were zeroed in each call."""

    def __init__(self, *args):
        super().__init__(*args)
        self.zeroed = []

    def forward(self, feats):
        self.zeroed.append(tuple(m for m in self.modalities if not feats[m].any()))
        return super().forward(feats)


def removals_per_batch(seed, epochs, batches):
    modalities = ["audio", "visual", "text"]
    torch.manual_seed(seed)
    method = build_method("cml", {}, modalities, 3, 4)
    head = RecordingHead(modalities, 4, 3)
    model = identity_model(modalities, head)
    per_epoch = []
    for epoch in range(1, epochs + 1):
        method.begin_epoch(epoch, 0, batches, CPU)
        chains = []
        for step in range(batches):
            head.zeroed.clear()
            feats = {m: torch.randn(5, 4) for m in modalities}
            method.loss(model, feats, torch.randint(0, 3, (5,)), step)
            chains.append(tuple(head.zeroed))
        per_epoch.append(chains)
    return per_epoch


def test_every_batch_of_an_epoch_removes_the_modalities_in_the_same_order():
    for chains in removals_per_batch(seed=0, epochs=4, batches=3):
        assert len(set(chains)) == 1
        first, one, two = chains[0]
        assert first == () and len(one) == 1 and len(two) == 2 and set(one) < set(two)


def test_the_removal_order_is_drawn_afresh_each_epoch_from_the_global_generator():
    orders = [chains[0] for chains in removals_per_batch(seed=0, epochs=6, batches=1)]
    assert len(set(orders)) > 1
    assert [chains[0] for chains in removals_per_batch(seed=0, epochs=6, batches=1)] == orders


def test_a_short_run_logs_its_calibration_every_epoch(tiny_config, tmp_path):
    result = train(tiny_config(method="cml", epochs=2), tmp_path / "run")
    assert result.status == "succeeded", result.error
    records = RunDir(tmp_path / "run").metrics()
    assert len(records) == 2
    for record in records:
        # Per sample at most one full unit of confidence per removal: 64 samples x 1 removal bound the sum.
        assert 0 < record["cml_penalty"] <= 64
        assert 0 < record["cml_rise_fraction"] < 1  # at random init some removals raise confidence, not all
        assert -1 <= record["cml_conf_change"] <= 1
