"""Diagnosing and Re-learning (Wei et al., ECCV 2024): purity, gap, re-init strength, the soft re-init,
the held-out split, the k-means, and runs that re-initialise at the configured epochs.

The worked example is METHODS.md's (Part B, section 4), checked by hand below:
- train labels [0, 0, 1, 1] in clusters [0, 0, 0, 1]: cluster 0 holds classes {0, 0, 1} (majority 2),
  cluster 1 holds {1} (majority 1), so P_D = (2 + 1) / 4 = 0.75;
- held-out labels [0, 1, 0, 1] in clusters [0, 0, 1, 1]: each cluster holds {0, 1}, a tie whose majority
  count is 1 whichever label wins, so P_V = (1 + 1) / 4 = 0.5;
- g = |0.75 - 0.5| = 0.25 and alpha = tanh(3 x 0.25) = tanh(0.75) = (e^1.5 - 1) / (e^1.5 + 1)
  = 3.481689 / 5.481689 = 0.635149;
- theta_init = 1, theta = 3: 0.635149 x 1 + 0.364851 x 3 = 0.635149 + 1.094553 = 1.729702.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from armscope.builtin.methods.relearning import RelearningOptions
from armscope.data.base import TensorSplit
from armscope.epoch_pass import TrainingData
from armscope.holdout import held_out_count
from armscope.methods.relearning import (
    Relearning,
    diagnosis_due,
    distance_from,
    kmeans,
    minmax_scale,
    purity,
    reinit_strength,
    soft_reinit_,
)
from armscope.models.heads import ConcatHead, MultimodalModel
from armscope.rundir import RunDir
from armscope.train import train
from tests.support import without_timing

pytestmark = pytest.mark.unit

MODALITIES = ["audio", "visual"]


def test_the_example_training_purity_counts_each_clusters_majority_class():
    clusters, labels = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 1])
    assert purity(clusters, labels, 2, 2).item() == pytest.approx(0.75)


def test_the_example_held_out_purity_counts_a_tied_vote_once():
    clusters, labels = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    assert purity(clusters, labels, 2, 2).item() == pytest.approx(0.5)


def test_a_cluster_without_points_and_a_class_without_points_add_nothing():
    # 3 clusters, 3 classes; cluster 2 and class 2 are empty: majorities 2 (cluster 0) and 1 (cluster 1) of 4.
    clusters, labels = torch.tensor([0, 0, 1, 0]), torch.tensor([1, 1, 0, 0])
    assert purity(clusters, labels, 3, 3).item() == pytest.approx(0.75)


def test_the_example_gap_of_a_quarter_re_initialises_by_tanh_of_three_quarters():
    assert reinit_strength(torch.tensor(0.25), 3.0).item() == pytest.approx(0.635149, abs=1e-6)


@pytest.mark.parametrize(
    ("gap", "alpha"),
    [
        (0.0, 0.0),  # no gap, no re-init
        (0.1, 0.291313),  # tanh(0.3) = (e^0.6 - 1) / (e^0.6 + 1) = 0.822119 / 2.822119
        (0.5, 0.905148),  # tanh(1.5) = (e^3 - 1) / (e^3 + 1) = 19.085537 / 21.085537
    ],
)
def test_the_strength_grows_with_the_gap_towards_a_full_reset(gap, alpha):
    assert reinit_strength(torch.tensor(gap), 3.0).item() == pytest.approx(alpha, abs=1e-6)


def test_the_example_soft_re_init_moves_theta_from_3_to_1_729702():
    parameter = nn.Parameter(torch.tensor([3.0]))
    soft_reinit_([parameter], [torch.tensor([1.0])], torch.tensor(0.635149))
    assert parameter.item() == pytest.approx(1.729702, abs=1e-6)


def test_the_soft_re_init_is_elementwise_and_full_at_alpha_one_and_none_at_zero():
    weight, bias = nn.Parameter(torch.tensor([[2.0, -4.0]])), nn.Parameter(torch.tensor([10.0]))
    initial = [torch.tensor([[0.0, 0.0]]), torch.tensor([2.0])]
    soft_reinit_([weight, bias], initial, torch.tensor(0.5))  # halfway: (2 + 0) / 2, (-4 + 0) / 2, (10 + 2) / 2
    assert weight.tolist() == [[1.0, -2.0]] and bias.tolist() == [6.0]
    soft_reinit_([weight, bias], initial, torch.tensor(0.0))
    assert weight.tolist() == [[1.0, -2.0]] and bias.tolist() == [6.0]
    soft_reinit_([weight, bias], initial, torch.tensor(1.0))
    assert weight.tolist() == [[0.0, 0.0]] and bias.tolist() == [2.0]


def test_the_distance_from_the_snapshot_is_one_norm_over_every_parameter():
    # differences (3, 0) and (4,): sqrt(9 + 0 + 16) = 5
    parameters = [nn.Parameter(torch.tensor([4.0, 1.0])), nn.Parameter(torch.tensor([6.0]))]
    assert distance_from(parameters, [torch.tensor([1.0, 1.0]), torch.tensor([2.0])]).item() == pytest.approx(5.0)


def test_min_max_scaling_maps_each_column_onto_minus_one_to_one_and_a_constant_column_to_minus_one():
    features = torch.tensor([[0.0, 5.0, 2.0], [10.0, 5.0, 4.0], [5.0, 5.0, 3.0]])
    # column 0: min 0, max 10 -> 2 x (x - 0) / 10 - 1; column 1 constant; column 2: min 2, max 4 -> (x - 2) - 1
    assert minmax_scale(features).tolist() == [[-1.0, -1.0, -1.0], [1.0, -1.0, 1.0], [0.0, -1.0, 0.0]]


def blobs() -> tuple[Tensor, Tensor]:
    """Three groups of five points around (0, 0), (10, 0) and (0, 10), at most 0.5 from their centre."""
    offsets = torch.tensor([[0.0, 0.0], [0.5, 0.0], [-0.5, 0.0], [0.0, 0.5], [0.0, -0.5]])
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = (centres[:, None] + offsets[None]).reshape(15, 2)
    return points, torch.arange(3).repeat_interleave(5)


@pytest.mark.parametrize("restarts", [1, 10])
def test_k_means_recovers_well_separated_clusters(restarts):
    points, groups = blobs()
    clusters = kmeans(points, 3, iterations=20, restarts=restarts, seed=0)
    # each group falls in one cluster, and the three groups in three different clusters
    assert all(clusters[groups == g].unique().numel() == 1 for g in range(3))
    assert clusters[[0, 5, 10]].unique().numel() == 3
    assert purity(clusters, groups, 3, 3).item() == 1.0


def test_k_means_depends_on_its_own_seed_and_not_on_the_run_generator():
    points = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    first = kmeans(points, 4, iterations=10, restarts=3, seed=0)
    state = torch.get_rng_state()
    torch.manual_seed(6)
    assert torch.equal(kmeans(points, 4, iterations=10, restarts=3, seed=0), first)
    torch.manual_seed(5)
    kmeans(points, 4, iterations=10, restarts=3, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_the_diagnosis_follows_every_r_th_epoch_at_most_n_times():
    due = [e for e in range(0, 10) if diagnosis_due(e, every=2, limit=2, done=0)]
    assert due == [2, 4, 6, 8]
    assert not diagnosis_due(6, every=2, limit=2, done=2)
    assert diagnosis_due(4, every=2, limit=2, done=1)


def test_the_held_out_share_is_rounded_and_leaves_both_parts_non_empty():
    assert held_out_count(600, 0.1) == 60
    assert held_out_count(6698, 744 / 6698) == 744
    assert held_out_count(4, 0.1) == 1  # 0.4 rounds to 0: at least one
    assert held_out_count(2, 0.5) == 1


def small_run_parts(**options):
    """A Relearning method, an MLP model and 40 samples of two modalities, four classes."""
    torch.manual_seed(0)
    method = Relearning(RelearningOptions(**options), MODALITIES, 4, 3)
    encoders = {m: nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3), nn.ReLU()) for m in MODALITIES}
    model = MultimodalModel(encoders, ConcatHead(MODALITIES, 3, 4))
    inputs = {m: torch.randn(40, 5) for m in MODALITIES}
    return method, model, TensorSplit(inputs, torch.arange(40) % 4)


def epoch_data(split, model, epoch, device=torch.device("cpu")):
    return TrainingData(split, model.to(device), epoch=epoch, step=0, batch_size=16, device=device,
                        precision="fp32", channels_last=False)


def test_the_held_out_samples_are_never_in_an_epochs_order_and_stay_the_same():
    method, model, split = small_run_parts(holdout_fraction=0.25)
    method.epoch_pass(epoch_data(split, model, 1))
    held = set(method.holdout_index.tolist())
    assert len(held) == 10
    generator = torch.Generator().manual_seed(0)
    orders = [method.sample_order(epoch, 40, generator) for epoch in (1, 2, 3)]
    for order in orders:
        assert sorted(order.tolist()) == sorted(set(range(40)) - held)  # every trained sample once, no V
    assert not torch.equal(orders[0], orders[1])  # shuffled anew each epoch, from the generator given
    assert set(method.holdout_index.tolist()) == held


def test_a_diagnosis_moves_each_encoder_back_by_its_alpha_and_leaves_head_and_running_statistics():
    method, model, split = small_run_parts(reinit_every=1, kmeans_iterations=10)
    method.epoch_pass(epoch_data(split, model, 1))
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():  # stands in for an epoch of training: every parameter moved by +1
        for p in model.parameters():
            p.add_(1.0)
    running = {m: model.encoders[m][1].running_mean.clone() for m in MODALITIES}
    method.epoch_pass(epoch_data(split, model, 2))
    summary = method.end_epoch()
    assert method.reinits == 1
    for m in MODALITIES:
        on_train, on_holdout = (summary.metrics[f"relearn_purity_{part}.{m}"].item() for part in ("train", "holdout"))
        gap, alpha = summary.metrics[f"relearn_gap.{m}"].item(), summary.metrics[f"relearn_alpha.{m}"].item()
        assert 0 < on_train <= 1 and 0 < on_holdout <= 1
        assert gap == pytest.approx(abs(on_train - on_holdout)) and alpha == pytest.approx(math.tanh(3 * gap))
        for name, p in model.encoders[m].named_parameters():
            # alpha x init + (1 - alpha) x (init + 1) = init + (1 - alpha)
            expected = initial[f"encoders.{m}.{name}"] + (1 - alpha)
            assert torch.allclose(p, expected, atol=1e-6)
        assert torch.equal(model.encoders[m][1].running_mean, running[m])
    for name, p in model.head.named_parameters():
        assert torch.equal(p, initial[f"head.{name}"] + 1)


def test_the_diagnosis_never_reads_a_value_back_from_the_device():
    method, model, split = small_run_parts(reinit_every=1, kmeans_iterations=3, kmeans_restarts=2)
    meta = torch.device("meta")  # any .item(), bool() or .cpu() of a meta tensor raises
    method.epoch_pass(epoch_data(split, model, 1, meta))
    method.epoch_pass(epoch_data(split, model, 2, meta))
    assert method.reinits == 1 and method.diagnosis.device.type == "meta"


def relearning_run(tiny_config, folder, epochs, **options):
    result = train(tiny_config(method="relearning", epochs=epochs, method_options=options), folder)
    assert result.status == "succeeded", result.error
    return RunDir(folder)


def test_a_short_run_logs_every_metric_with_zero_diagnosis_before_the_first(tiny_config, tmp_path):
    records = relearning_run(tiny_config, tmp_path / "run", 2).metrics()
    for record in records:
        assert record["relearn_reinits"] == 0
        for m in MODALITIES:
            for family in ("purity_train", "purity_holdout", "gap", "alpha"):
                assert record[f"relearn_{family}.{m}"] == 0.0
            assert record[f"relearn_drift.{m}"] > 0  # trained away from the snapshot
    # synthetic-shift trains on 480 of its 600 samples: each epoch sees them less the 48 held out
    assert [r["samples_seen"] for r in records] == [432, 864]


def test_a_run_re_initialises_after_every_r_th_epoch_at_most_n_times(tiny_config, tmp_path):
    run = relearning_run(tiny_config, tmp_path / "run", 7, reinit_every=2, reinit_limit=2, kmeans_iterations=20)
    records = run.metrics()
    assert [r["relearn_reinits"] for r in records] == [0, 0, 1, 1, 2, 2, 2]
    for m in MODALITIES:
        alphas = [r[f"relearn_alpha.{m}"] for r in records]
        assert alphas[:2] == [0.0, 0.0] and alphas[2] == alphas[3] and alphas[4:] == [alphas[4]] * 3
        for r in records[2:]:
            assert r[f"relearn_gap.{m}"] == pytest.approx(abs(r[f"relearn_purity_train.{m}"] - r[f"relearn_purity_holdout.{m}"]))
            assert r[f"relearn_alpha.{m}"] == pytest.approx(math.tanh(3 * r[f"relearn_gap.{m}"]), abs=1e-6)
    events = [e for e in run.events() if e["kind"] == "relearning_reinit"]
    assert [(e["epoch"], e["data"]["after_epoch"]) for e in events] == [(3, 2), (5, 4)]


def test_a_run_resumed_across_a_re_init_ends_with_the_numbers_of_an_uninterrupted_one(tiny_config, tmp_path):
    options = {"reinit_every": 1, "reinit_limit": 2, "kmeans_iterations": 20}
    whole = relearning_run(tiny_config, tmp_path / "whole", 4, **options).metrics()
    relearning_run(tiny_config, tmp_path / "resumed", 2, **options)
    resumed = train(tiny_config(method="relearning", epochs=4, method_options=options), tmp_path / "resumed", resume=True)
    assert resumed.status == "succeeded", resumed.error
    assert without_timing(RunDir(tmp_path / "resumed").metrics()) == without_timing(whole)
