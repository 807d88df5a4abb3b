"""AMCo: the modality the fusion depends on has a growing random part of its class logits masked (METHODS.md C.4).

The worked examples, checked by hand:
- Shares. u_a = (2, 0), u_v = (0, 0): the softmax over (2, 0, 0, 0) gives audio (e^2 + 1) / (e^2 + 3)
  = 8.389056 / 10.389056 = 0.807490 and visual 2 / 10.389056 = 0.192510; 0.807490 > 0.5 flags audio.
- Schedule. C = 10, eps = 0.3, epoch 2 (l grows by 2/10 a step): l = 0, 0.2, 0.4 give
  p = sin(0) = 0, sin(pi/2 * 2/3) = sin(pi/3) = sqrt(3)/2 = 0.866025, sin(pi/2 * min(0.3, 0.4)/0.3) = 1,
  so N = floor(10p) = 0, 8, 10; with one class kept, the last is 9.
- Loss. C = 2, y = 0: CE of logits (2, 0) is ln(1 + e^-2) = 0.126928; of (0, 0) it is ln 2 = 0.693147.
"""

import math

import pytest
import torch

from armscope.builtin.methods.amco import amco_head_size
from armscope.methods import build_method
from armscope.methods.amco import (
    AMCoHead,
    amco_loss,
    apply_mask,
    class_mask,
    dependence_flags,
    mask_schedule,
    masked_class_count,
    modality_shares,
)
from armscope.models import MultimodalModel
from armscope.rundir import RunDir
from armscope.train import train

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")
LN_2 = 0.693147
CE_2_0 = 0.126928  # ln(1 + e^-2)


def assert_values(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected), rtol=0, atol=1e-6)


def stacked(*per_modality):
    """M x B x C from one B x C list per modality."""
    return torch.tensor(per_modality)


def test_the_share_of_a_modality_is_its_part_of_the_softmax_over_all_modalities_logits():
    assert_values(modality_shares(stacked([[2.0, 0.0]], [[0.0, 0.0]])), [0.807490, 0.192510])


def test_shares_are_batch_means_and_sum_to_one():
    # Sample 1 is the example (0.807490, 0.192510); sample 2 has equal logits, so (0.5, 0.5).
    shares = modality_shares(stacked([[2.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]]))
    assert_values(shares, [(0.807490 + 0.5) / 2, (0.192510 + 0.5) / 2])


def test_a_modality_is_flagged_only_when_its_share_exceeds_sigma():
    assert dependence_flags(torch.tensor([0.807490, 0.192510]), 0.5).tolist() == [True, False]
    assert dependence_flags(torch.tensor([0.5, 0.5]), 0.5).tolist() == [False, False]
    assert dependence_flags(torch.tensor([0.2, 0.35, 0.45]), 0.3).tolist() == [False, True, True]


@pytest.mark.parametrize(("progress", "p"), [(0.0, 0.0), (0.2, math.sqrt(3) / 2), (0.4, 1.0)])
def test_the_schedule_rises_as_a_sine_and_saturates_at_eps(progress, p):
    assert mask_schedule(progress, 0.3) == pytest.approx(p, abs=1e-12)


def test_the_worked_schedule_masks_0_8_and_10_of_10_classes_in_balancemms_epoch_2():
    assert [masked_class_count(mask_schedule(progress, 0.3), 10, 0) for progress in (0.0, 0.2, 0.4)] == [0, 8, 10]


def test_keeping_one_class_caps_a_saturated_schedule_at_c_minus_1():
    assert [masked_class_count(mask_schedule(progress, 0.3), 10, 1) for progress in (0.0, 0.2, 0.4)] == [0, 8, 9]


def test_armscopes_epoch_e_steps_the_schedule_by_e_over_10_as_balancemms_epoch_e():
    method = build_method("amco", {"keep_classes": 0}, ["audio", "visual"], 10, 1)
    model = MultimodalModel({"audio": torch.nn.Identity(), "visual": torch.nn.Identity()}, method.build_head())
    feats = {"audio": torch.ones(4, 1), "visual": torch.ones(4, 1)}
    method.begin_epoch(2, 0, 3, CPU)
    for step in range(3):
        method.loss(model, feats, torch.zeros(4, dtype=torch.long), step)
    # N = 0, 8, 10 of 10 classes, as in the worked schedule: (0 + 0.8 + 1) / 3.
    assert method.end_epoch().metrics["amco_masked_classes"].item() == pytest.approx(0.6)


def test_a_class_mask_has_n_zeros_and_the_seed_decides_where():
    torch.manual_seed(3)
    first = class_mask(4, 10, CPU)
    torch.manual_seed(3)
    again = class_mask(4, 10, CPU)
    assert sorted(first.tolist()) == [0.0] * 4 + [1.0] * 6
    assert torch.equal(first, again)


def test_the_mask_applies_only_to_the_flagged_modalities():
    unimodal = stacked([[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]], [[7.0, 8.0, 9.0]])
    masked = apply_mask(unimodal, torch.tensor([False, True, False]), torch.tensor([1.0, 0.0, 0.0]))
    assert_values(masked, [[[1.0, 2.0, 3.0]], [[4.0, 0.0, 0.0]], [[7.0, 8.0, 9.0]]])


def test_the_loss_adds_each_modalitys_cross_entropy_to_the_fused_one():
    fused = torch.tensor([[2.0, 0.0]])
    loss = amco_loss(fused, stacked([[2.0, 0.0]], [[0.0, 0.0]]), torch.tensor([0]))
    assert_values(loss, CE_2_0 + CE_2_0 + LN_2)


def example_head():
    """M = 2, one feature each, C = 2: u_a = (2h_a, 0) + b/2, u_v = (0, 0) + b/2 with b = (0.2, 0.4); A swaps classes."""
    head = AMCoHead(["audio", "visual"], 1, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.0]]))
        head.fc.bias.copy_(torch.tensor([0.2, 0.4]))
        head.star.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        head.star.bias.copy_(torch.tensor([1.0, -1.0]))
    return head


def test_the_head_fuses_the_summed_unimodal_logits_through_its_class_layer():
    head = example_head()
    feats = {"audio": torch.tensor([[1.0]]), "visual": torch.tensor([[3.0]])}
    # u_a = (2 + 0.1, 0.2), u_v = (0.1, 0.2); sum (2.2, 0.4); A swaps: (0.4, 2.2); + a: (1.4, 1.2).
    assert_values(head.stacked_unimodal(feats), [[[2.1, 0.2]], [[0.1, 0.2]]])
    assert_values(head(feats), [[1.4, 1.2]])


def test_the_head_holds_the_concat_classifier_and_a_c_by_c_layer():
    head = AMCoHead(["a", "b", "c"], 5, 4)
    # concat: 3 * 5 * 4 weights + 4 biases = 64; class layer: 4 * 4 + 4 = 20.
    assert sum(p.numel() for p in head.parameters()) == 84
    assert amco_head_size(3, 5, 4).parameters == 84 and amco_head_size(3, 5, 4).buffers == 0


def identity_model():
    return MultimodalModel({"audio": torch.nn.Identity(), "visual": torch.nn.Identity()}, example_head())


def test_a_step_flags_the_dominant_modality_for_the_next_and_predictions_stay_unmasked():
    method = build_method("amco", {}, ["audio", "visual"], 2, 1)
    model = identity_model()
    feats = {"audio": torch.tensor([[1.0], [2.0]]), "visual": torch.tensor([[0.0], [0.0]])}
    method.begin_epoch(2, 0, 3, CPU)
    method.loss(model, feats, torch.tensor([0, 0]), 0)
    assert method.flags.tolist() == [True, False]
    before = model.head(feats)
    method.loss(model, feats, torch.tensor([0, 0]), 1)
    torch.testing.assert_close(method.predict(model, feats), before)
    # Step 2 of epoch 2: p = sqrt(3)/2, N = floor(2p) = 1 of C = 2, applied to audio only.
    metrics = method.end_epoch().metrics
    assert metrics["amco_masked.audio"].item() == 0.5 and metrics["amco_masked.visual"].item() == 0
    assert metrics["amco_masked_classes"].item() == pytest.approx((0 + 1 / 2) / 2)


def test_outside_the_window_the_loss_is_the_fused_cross_entropy_and_nothing_is_flagged():
    method = build_method("amco", {"modulation_start": 3}, ["audio", "visual"], 2, 1)
    model = identity_model()
    feats = {"audio": torch.tensor([[1.0]]), "visual": torch.tensor([[0.0]])}
    method.begin_epoch(2, 0, 3, CPU)
    for step in range(3):
        loss = method.loss(model, feats, torch.tensor([1]), step)
    # o = (1.4, 1.2) as in the head's example with h_v = 0 (u_v = (0.1, 0.2) either way): CE for y = 1.
    assert_values(loss.detach(), math.log(1 + math.exp(0.2)))
    assert method.flags.tolist() == [False, False]
    assert method.end_epoch().metrics["amco_masked_classes"].item() == 0


def test_a_run_logs_shares_masked_steps_and_the_masked_fraction_every_epoch(tiny_config, tmp_path):
    train(tiny_config(method="amco", epochs=2), tmp_path / "run")
    records = RunDir(tmp_path / "run").metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert record["amco_share.audio"] + record["amco_share.visual"] == pytest.approx(1, abs=1e-6)
        # sigma = 0.5: at most one modality is masked in a step.
        assert 0 <= record["amco_masked.audio"] + record["amco_masked.visual"] <= 1
        # The cap keeps one of the 10 classes; the first step of an epoch masks none.
        assert 0 < record["amco_masked_classes"] < 0.9
    # Epoch 2's schedule rises faster (N = 0, 8, 9, ... against 0, 5, 8, 9, ...).
    assert records[1]["amco_masked_classes"] > records[0]["amco_masked_classes"]
