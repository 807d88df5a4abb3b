"""PMR (Fan et al., CVPR 2023): prototype scores, the rebalancing rule, the prototype updates and a short run.

The hand-worked example is METHODS.md's (Part A, section 2), checked by hand below:
with two classes at distances 0 and 2, p_y = e^0 / (e^0 + e^-2) = 1 / (1 + e^-2) = 0.880797
and -ln 0.880797 = 0.126928; at equal distances p_y = 0.5 and -ln 0.5 = 0.693147.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from armscope.builtin.methods.pmr import PMROptions
from armscope.data.base import TensorSplit
from armscope.epoch_pass import TrainingData
from armscope.methods.pmr import (
    PMR,
    first_prototypes,
    momentum_prototypes,
    prototype_batch_count,
    prototype_logits,
    rebalance_weights,
    true_class_score,
)
from armscope.models.heads import ConcatHead, MultimodalModel
from armscope.rundir import RunDir
from armscope.train import train

pytestmark = pytest.mark.unit

LABELS = torch.tensor([0, 1])
AUDIO_PROTOTYPES = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
AUDIO_FEATURES = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # each sample on its class's prototype, 2 from the other
VISUAL_PROTOTYPES = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
VISUAL_FEATURES = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # both samples at distance 1 from both prototypes

P_NEAR = 1 / (1 + math.exp(-2))  # 0.880797


def test_the_audio_example_scores_the_summed_true_class_probability_and_its_prototype_cross_entropy():
    logits = prototype_logits(AUDIO_FEATURES, AUDIO_PROTOTYPES)
    assert torch.equal(logits, torch.tensor([[0.0, -2.0], [-2.0, 0.0]]))
    assert true_class_score(logits, LABELS).item() == pytest.approx(2 * P_NEAR) == pytest.approx(1.761594)
    assert F.cross_entropy(logits, LABELS).item() == pytest.approx(-math.log(P_NEAR)) == pytest.approx(0.126928)


def test_the_visual_example_at_equal_distances_scores_one_half_per_sample():
    logits = prototype_logits(VISUAL_FEATURES, VISUAL_PROTOTYPES)
    assert torch.equal(logits, torch.tensor([[-1.0, -1.0], [-1.0, -1.0]]))
    assert true_class_score(logits, LABELS).item() == pytest.approx(1.0)
    assert F.cross_entropy(logits, LABELS).item() == pytest.approx(math.log(2)) == pytest.approx(0.693147)


def test_the_distance_is_euclidean_not_squared():
    # (3, 4) from the origin: 5, where the squared distance would be 25.
    logits = prototype_logits(torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2))
    assert logits.item() == pytest.approx(-5.0)


def test_the_example_boosts_visual_whose_score_is_lower_rho_above_one():
    scores = torch.tensor([2 * P_NEAR, 1.0])  # rho = s_a / s_v = 1.761594 > 1
    assert torch.equal(rebalance_weights(scores, 1.0), torch.tensor([0.0, 1.0]))
    extra = (rebalance_weights(scores, 0.6) * torch.tensor([0.126928, 0.693147])).sum()
    assert extra.item() == pytest.approx(0.6 * 0.693147) == pytest.approx(0.415888)


def test_rho_below_one_boosts_audio_and_a_tie_boosts_neither():
    assert torch.equal(rebalance_weights(torch.tensor([1.0, 1.5]), 1.0), torch.tensor([1.0, 0.0]))
    assert torch.equal(rebalance_weights(torch.tensor([1.2, 1.2]), 1.0), torch.zeros(2))


def test_with_more_modalities_every_modality_below_the_best_score_is_boosted():
    assert torch.equal(rebalance_weights(torch.tensor([3.0, 1.0, 2.0]), 0.5), torch.tensor([0.0, 0.5, 0.5]))
    assert torch.equal(rebalance_weights(torch.tensor([2.0, 2.0, 1.0]), 0.5), torch.tensor([0.0, 0.0, 0.5]))


def test_the_prototype_update_keeps_mu_of_the_old_prototype():
    previous = torch.tensor([[1.0, 1.0]])
    sums, counts = torch.tensor([[6.0, -2.0]]), torch.tensor([2.0])  # class mean (3, -1)
    # 0.8 * (3, -1) + 0.2 * (1, 1) = (2.6, -0.6); 0.5 * (3, -1) + 0.5 * (1, 1) = (2, 0)
    assert torch.allclose(momentum_prototypes(sums, counts, previous, 0.2), torch.tensor([[2.6, -0.6]]))
    assert torch.allclose(momentum_prototypes(sums, counts, previous, 0.5), torch.tensor([[2.0, 0.0]]))


def test_a_class_absent_from_the_pass_keeps_its_previous_prototype():
    previous = torch.tensor([[1.0, 1.0], [7.0, -7.0]])
    sums, counts = torch.tensor([[3.0, -1.0], [0.0, 0.0]]), torch.tensor([1.0, 0.0])
    updated = momentum_prototypes(sums, counts, previous, 0.2)
    assert torch.equal(updated[1], torch.tensor([7.0, -7.0]))
    assert torch.allclose(updated[0], torch.tensor([2.6, -0.6]))


def test_the_first_prototypes_are_class_means_and_an_absent_class_gets_the_mean_of_every_feature_read():
    # class 0: features (1, 0) and (3, 2), mean (2, 1); class 1: (4, 4) alone; class 2: absent.
    sums, counts = torch.tensor([[4.0, 2.0], [4.0, 4.0], [0.0, 0.0]]), torch.tensor([2.0, 1.0, 0.0])
    # every feature: (1 + 3 + 4, 0 + 2 + 4) / 3 = (8/3, 2)
    expected = torch.tensor([[2.0, 1.0], [4.0, 4.0], [8 / 3, 2.0]])
    assert torch.allclose(first_prototypes(sums, counts), expected)


@pytest.mark.parametrize(("batches", "fraction", "read"), [(30, 0.1, 3), (10, 0.1, 1), (11, 0.1, 2), (5, 0.1, 1), (4, 1.0, 4)])
def test_the_pass_reads_the_first_tenth_of_the_batches_rounded_up_and_at_least_one(batches, fraction, read):
    assert prototype_batch_count(batches, fraction) == read


def identity_model(method: PMR) -> MultimodalModel:
    """Encoders that pass the inputs through: the features are the hand-made vectors themselves."""
    return MultimodalModel({m: nn.Identity() for m in method.modalities}, method.build_head())


def pmr(**options: object) -> PMR:
    return PMR(PMROptions.model_validate(options), ["audio", "visual"], 2, 2)


def test_the_epoch_pass_averages_only_its_share_of_the_first_batches():
    method = pmr(prototype_fraction=0.25)
    inputs = {
        "audio": torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [4.0, 0.0], [9.0, 9.0], [9.0, 9.0], [9.0, 9.0], [9.0, 9.0]]),
        "visual": torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 3.0], [9.0, 9.0], [9.0, 9.0], [9.0, 9.0], [9.0, 9.0]]),
    }
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    model = identity_model(method)
    data = TrainingData(TensorSplit(inputs, labels), model, epoch=1, step=0, batch_size=2, device=torch.device("cpu"),
                        precision="fp32", channels_last=False)
    method.epoch_pass(data)  # 4 batches x 0.25: only the first, samples 0 and 1
    assert torch.equal(method.prototypes["audio"], torch.tensor([[0.0, 0.0], [2.0, 0.0]]))
    assert torch.equal(method.prototypes["visual"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.equal(method.drift, torch.zeros(2))


def example_loss(method: PMR, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's loss on METHODS.md's example, and the fused cross-entropy alone."""
    method.prototypes = {"audio": AUDIO_PROTOTYPES, "visual": VISUAL_PROTOTYPES}
    method.begin_epoch(epoch, 0, 1, torch.device("cpu"))
    model = identity_model(method)
    feats = {"audio": AUDIO_FEATURES, "visual": VISUAL_FEATURES}
    head = model.head
    assert isinstance(head, ConcatHead)
    return method.loss(model, feats, LABELS, 0), F.cross_entropy(head(feats), LABELS)


def test_inside_the_window_the_step_adds_alpha_times_the_weaker_modalitys_prototype_cross_entropy():
    loss, fused = example_loss(pmr(alpha=0.6), epoch=1)
    assert (loss - fused).item() == pytest.approx(0.415888, abs=1e-6)


def test_outside_the_window_the_step_is_plain_cross_entropy():
    loss, fused = example_loss(pmr(modulation_start=2), epoch=1)
    assert torch.equal(loss, fused)


def test_the_prototype_loss_moves_the_features_and_not_the_prototypes():
    features = VISUAL_FEATURES.clone().requires_grad_()
    F.cross_entropy(prototype_logits(features, VISUAL_PROTOTYPES), LABELS).backward()
    # Sample 0 (class 0) is pulled towards (0, 0), down; sample 1 (class 1) towards (0, 2), up.
    assert features.grad[0, 1] > 0 > features.grad[1, 1]
    assert not VISUAL_PROTOTYPES.requires_grad


def test_a_short_run_logs_each_modalitys_prototype_measures_every_epoch(tiny_config, tmp_path):
    config = tiny_config(method="pmr", epochs=2)
    result = train(config, tmp_path / "run")
    assert result.status == "succeeded", result.error
    records = RunDir(tmp_path / "run").metrics()
    modalities = config.dataset_options["modalities"]
    assert len(records) == 2
    for record in records:
        for m in modalities:
            assert 0 < record[f"pmr_score.{m}"] <= 1
            assert 0 <= record[f"pmr_proto_acc.{m}"] <= 1
            assert record[f"pmr_pce.{m}"] > 0
        # Two modalities: each step boosts the one of lower score (a tie, none).
        assert 0 < sum(record[f"pmr_boosted.{m}"] for m in modalities) <= 1
    assert all(records[0][f"pmr_drift.{m}"] == 0 for m in modalities)
    assert all(records[1][f"pmr_drift.{m}"] > 0 for m in modalities)
