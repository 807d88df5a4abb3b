"""sample-valuation (Wei, Feng, Wang, Hu, CVPR 2024): per-sample Shapley values, the copies they ask for, the copy
batch, the schedule and a short run.

The two-modality table is METHODS.md's (Part C, section 5), checked by hand: phi_a = (v(a) + v(av) - v(v)) / 2.
On the authors' scale v(S) = |S| * 1[right], so a right fused prediction is worth v(av) = 2:
(1,0,1): phi = ((1 + 2 - 0) / 2, (0 + 2 - 1) / 2) = (1.5, 0.5); (1,1,1): ((1 + 2 - 1) / 2, same) = (1, 1);
(0,1,0): ((0 + 0 - 1) / 2, (1 + 0 - 0) / 2) = (-0.5, 0.5); (0,0,0): (0, 0).
On BalanceMM's v(S) = 1[right]: (1,0,1): ((1 + 1 - 0) / 2, (0 + 1 - 1) / 2) = (1, 0); (1,1,1): (0.5, 0.5).
Copies: 1 in (0.4, 0.9), 2 in (-0.1, 0.4), 3 below -0.1, none otherwise (the authors' bounds).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from armscope.builtin.methods.sample_valuation import SampleValuationOptions
from armscope.data.base import TensorSplit
from armscope.epoch_pass import TrainingData
from armscope.methods.sample_valuation import (
    SampleValuation,
    characteristic_values,
    copy_batch,
    copy_weights,
    modality_copies,
    modality_gaps,
    resample_share,
    resampled_loss,
    sample_copies,
    weakest_modality,
)
from armscope.models.heads import MultimodalModel
from armscope.rundir import RunDir
from armscope.shapley import shapley_values, subset_masks
from armscope.step import TrainingStep
from armscope.train import train
from tests.support import without_timing
from tests.test_gpu_path import steps_on_meta, with_av_model

pytestmark = pytest.mark.unit

TWO = subset_masks(2)  # rows: {}, {a}, {v}, {a, v}


def correct_of(v_a: int, v_v: int, v_av: int) -> torch.Tensor:
    """One sample's right/wrong per subset, in subset_masks' order; the empty set is never right."""
    return torch.tensor([[False, bool(v_a), bool(v_v), bool(v_av)]])


def test_subsets_are_numbered_by_bits_in_modality_order():
    assert TWO.tolist() == [[False, False], [True, False], [False, True], [True, True]]
    assert subset_masks(3)[5].tolist() == [True, False, True]  # 5 = 0b101: the first and the third


def test_the_authors_value_of_a_subset_is_its_size_when_right_and_the_empty_set_is_worth_nothing():
    correct = torch.tensor([[True, True, False, True]])  # even a "right" empty set counts 0
    assert characteristic_values(correct, TWO).tolist() == [[0, 1, 0, 2]]


@pytest.mark.parametrize(
    ("values", "phi", "copies"),
    [
        ((1, 0, 1), [1.5, 0.5], [0, 1]),
        ((1, 1, 1), [1.0, 1.0], [0, 0]),
        ((0, 1, 0), [-0.5, 0.5], [3, 1]),
        ((0, 0, 0), [0.0, 0.0], [2, 2]),
    ],
)
def test_the_worked_examples_on_the_authors_scale(values, phi, copies):
    shapley = shapley_values(characteristic_values(correct_of(*values), TWO))
    assert shapley.tolist() == [phi]
    assert sample_copies(shapley).tolist() == [copies]


@pytest.mark.parametrize(
    ("values", "phi", "copies"),
    [
        ((1, 0, 1), [1.0, 0.0], [0, 2]),
        ((1, 1, 1), [0.5, 0.5], [1, 1]),
        ((0, 1, 0), [-0.5, 0.5], [3, 1]),
        ((0, 0, 0), [0.0, 0.0], [2, 2]),
    ],
)
def test_balancemms_indicator_values_give_its_column_of_the_table(values, phi, copies):
    shapley = shapley_values(correct_of(*values).long())
    assert shapley.tolist() == [phi]
    assert sample_copies(shapley).tolist() == [copies]


def test_three_modalities_a_sample_only_audio_gets_right_values_audio_at_two():
    # Right from {a}, {a,v}, {a,t}, {a,v,t}; wrong from {v}, {t}, {v,t}. Authors' v: a=1, av=2, at=2, avt=3.
    # Weights by |S| = 0, 1, 2: 1/3, 1/6, 1/3.
    # phi_a = 1/3 * 1 + 1/6 * (2 - 0) + 1/6 * (2 - 0) + 1/3 * (3 - 0) = 1/3 + 1/3 + 1/3 + 1 = 2
    # phi_v = 1/3 * 0 + 1/6 * (2 - 1) + 1/6 * (0 - 0) + 1/3 * (3 - 2) = 1/6 + 1/3 = 0.5, and phi_t alike.
    masks = subset_masks(3)
    correct = masks[:, 0].unsqueeze(0)  # right exactly where audio is kept
    shapley = shapley_values(characteristic_values(correct, masks))
    assert shapley.tolist() == [[2.0, 0.5, 0.5]]
    assert shapley.sum().item() == 3.0  # efficiency: the values share v(avt) = 3
    assert sample_copies(shapley).tolist() == [[0, 1, 1]]


def test_three_modalities_methods_md_accuracy_example():
    # v(a)=.5, v(v)=.3, v(av)=.7, v(t)=.2, v(at)=.6, v(vt)=.4, v(avt)=.8, in subset_masks' order.
    # phi_a = 1/3 * .5 + 1/6 * (.7 - .3) + 1/6 * (.6 - .2) + 1/3 * (.8 - .4) = 0.433333
    values = torch.tensor([0.0, 0.5, 0.3, 0.7, 0.2, 0.6, 0.4, 0.8], dtype=torch.float64)
    assert shapley_values(values).tolist() == pytest.approx([0.433333, 0.233333, 0.133333], abs=1e-6)


def test_the_copy_bounds_are_the_authors_and_strict():
    phi = torch.tensor([-0.5, -0.1, 0.0, 0.39, 0.4, 0.5, 0.89, 0.9, 1.0, 1.5], dtype=torch.float64)
    assert sample_copies(phi).tolist() == [3, 0, 2, 2, 0, 1, 1, 0, 0, 0]


def test_five_modalities_values_on_the_bounds_land_exactly_on_them_and_get_no_copy():
    # v(S) = 1 where S holds modality 0 and at most one other. Weights by |S| = 0..4: 1/5, 1/20, 1/30, 1/20, 1/5.
    # phi_0 = 1/5 * v({0}) + 4 * 1/20 * (v({0,j}) - v({j})) = 1/5 + 4/20 = 0.4 (larger S with 0 are worth 0).
    # phi_1 = 3 * 1/30 * (v({0,1,j}) - v({0,j})) = -0.1, from the three S = {0, j}; every other term is 0.
    masks = subset_masks(5)
    correct = (masks[:, 0] & (masks.sum(1) <= 2)).unsqueeze(0)
    shapley = shapley_values(correct.long())
    assert shapley.tolist() == [[0.4, -0.1, -0.1, -0.1, -0.1]]
    assert sample_copies(shapley).tolist() == [[0, 0, 0, 0, 0]]


def test_the_copy_batch_keeps_the_originals_then_one_block_per_modality_with_the_others_zeroed():
    feats = {"audio": torch.tensor([[1.0], [2.0]]), "visual": torch.tensor([[3.0], [4.0]]),
             "text": torch.tensor([[5.0], [6.0]])}
    batch = copy_batch(feats)
    assert batch["audio"].flatten().tolist() == [1, 2, 1, 2, 0, 0, 0, 0]
    assert batch["visual"].flatten().tolist() == [3, 4, 0, 0, 3, 4, 0, 0]
    assert batch["text"].flatten().tolist() == [5, 6, 0, 0, 0, 0, 5, 6]


def test_each_copy_block_is_weighted_by_its_samples_copies():
    copies = torch.tensor([[0, 1, 2], [3, 0, 1]])  # sample x modality
    assert copy_weights(copies).tolist() == [1, 1, 0, 3, 1, 0, 2, 1]


def test_a_row_of_weight_c_counts_as_c_rows_of_the_cross_entropy():
    # Two classes. Row 0, label 0, logits (ln 3, 0): p = 3/4, CE = ln(4/3). Row 1, label 0, logits (0, 0): CE = ln 2.
    # Weights 1 and 3: (ln(4/3) + 3 ln 2) / 4.
    logits = torch.tensor([[math.log(3), 0.0], [0.0, 0.0]])
    loss = resampled_loss(logits, torch.tensor([0]), torch.tensor([1.0, 3.0]))
    assert loss.item() == pytest.approx((math.log(4 / 3) + 3 * math.log(2)) / 4)


def test_modality_level_follows_the_authors_on_methods_md_example():
    # mean phi (0.8, 0.3): gaps (0.2, 0.7); P = 2/3 * |0.2 - 0.7| * 1 = 1/3; int(6400 / 3) = 2133 copies keeping v.
    gaps = modality_gaps(torch.tensor([0.8, 0.3], dtype=torch.float64))
    share = resample_share(gaps, alpha=1.0)
    assert share.item() == pytest.approx(1 / 3)
    assert math.floor(share.item() * 6400) == 2133
    assert weakest_modality(gaps).item() == 1


def test_modality_level_on_a_tie_keeps_the_later_modality_as_the_authors_do():
    assert weakest_modality(torch.tensor([0.5, 0.5])).item() == 1
    assert weakest_modality(torch.tensor([0.9, 0.2, 0.9])).item() == 2


def test_modality_level_copies_count_the_first_draws_only_in_the_kept_modalitys_column():
    draws = torch.tensor([2, 0, 2, 1, 1])  # count 3: samples 2, 0, 2; the last two are masked
    copies = modality_copies(draws, torch.tensor(3.0), torch.tensor(1), n_samples=3, n_modalities=2)
    assert copies.tolist() == [[0, 1], [0, 0], [0, 2]]


# Identity encoders and a head adding the two modalities' 2-d features (logits = x_a + x_v): each sample's
# right and wrong subsets are set by hand.
INPUTS = {
    "audio": torch.tensor([[1.0, 0.0], [0.2, 0.0], [0.0, 1.0]]),
    "visual": torch.tensor([[0.0, 0.5], [0.0, 1.0], [0.5, 0.0]]),
}
LABELS = torch.tensor([0, 1, 0])
# sample 0: a (1, 0) right, v (0, .5) wrong, av (1, .5) right -> (1,0,1): phi (1.5, 0.5), copies (0, 1)
# sample 1: a (.2, 0) wrong, v (0, 1) right, av (.2, 1) right -> (0,1,1): phi (0.5, 1.5), copies (1, 0)
# sample 2: a (0, 1) wrong, v (.5, 0) right, av (.5, 1) wrong -> (0,1,0): phi (-0.5, 0.5), copies (3, 1)
PHI_MEAN = [(1.5 + 0.5 - 0.5) / 3, (0.5 + 1.5 + 0.5) / 3]
COPIES = [[0, 1], [1, 0], [3, 1]]


def identity_encoder() -> nn.Linear:
    """An encoder that passes its 2-d input through, with parameters for the step to update."""
    encoder = nn.Linear(2, 2)
    with torch.no_grad():
        encoder.weight.copy_(torch.eye(2))
        encoder.bias.zero_()
    return encoder


def hand_made(**options: object) -> tuple[SampleValuation, MultimodalModel]:
    method = SampleValuation(SampleValuationOptions.model_validate(options), ["audio", "visual"], 2, 2)
    model = MultimodalModel({m: identity_encoder() for m in method.modalities}, method.build_head())
    with torch.no_grad():
        model.head.fc.weight.copy_(torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
        model.head.fc.bias.zero_()
    return method, model


def epoch_pass(method: SampleValuation, model: MultimodalModel, epoch: int) -> list[tuple[str, int, int]]:
    reports: list[tuple[str, int, int]] = []
    data = TrainingData(TensorSplit(INPUTS, LABELS), model, epoch=epoch, step=0, batch_size=2,
                        device=torch.device("cpu"), precision="fp32", channels_last=False,
                        report=lambda what, done, total: reports.append((what, done, total)))
    method.epoch_pass(data)
    return reports


def test_the_valuation_pass_values_every_sample_and_reports_its_progress():
    method, model = hand_made(warmup_epochs=0)
    assert epoch_pass(method, model, epoch=1) == [("valuation", 1, 2), ("valuation", 2, 2)]
    assert method.phi_mean.tolist() == pytest.approx(PHI_MEAN)
    assert method.copies.tolist() == COPIES


def test_copies_start_only_after_the_warm_up_and_warm_up_epochs_are_valued_for_the_log():
    method, model = hand_made(warmup_epochs=2)
    for epoch in (1, 2):
        epoch_pass(method, model, epoch)
        assert method.copies.tolist() == [[0, 0]] * 3
        assert method.phi_mean.tolist() == pytest.approx(PHI_MEAN)
    epoch_pass(method, model, epoch=3)
    assert method.copies.tolist() == COPIES


def test_the_epochs_metrics_count_the_copies_it_trains_with():
    method, model = hand_made(warmup_epochs=0)
    epoch_pass(method, model, epoch=1)
    metrics = {k: v.item() for k, v in method.end_epoch().metrics.items()}
    assert metrics == pytest.approx({
        "sv_phi.audio": PHI_MEAN[0], "sv_phi.visual": PHI_MEAN[1],
        "sv_copied.audio": 2 / 3, "sv_copied.visual": 2 / 3,  # samples 1, 2 and samples 0, 2
        "sv_copies.audio": 4 / 3, "sv_copies.visual": 2 / 3,  # (0 + 1 + 3) / 3 and (1 + 0 + 1) / 3
        "sv_copies_total": 6.0,
    })


def test_the_step_trains_on_the_originals_and_their_copies_as_one_cross_entropy():
    method, model = hand_made(warmup_epochs=0)
    epoch_pass(method, model, epoch=1)
    method.begin_epoch(1, 0, 1, torch.device("cpu"))
    step = TrainingStep(model, method, torch.optim.SGD(model.parameters(), lr=0.0), torch.device("cpu"))
    loss, _ = step(INPUTS, LABELS, 0, torch.arange(3))
    # The same samples written out: 3 originals, then sample 0 once keeping v, sample 1 once keeping a,
    # sample 2 three times keeping a and once keeping v; each keeps-a row is (x_a, 0), each keeps-v row (0, x_v).
    a, v = INPUTS["audio"], INPUTS["visual"]
    rows = torch.cat([a + v, v[[0]], a[[1]], a[[2]].repeat(3, 1), v[[2]]])
    labels = torch.tensor([0, 1, 0, 0, 1, 0, 0, 0, 0])
    assert loss.item() == pytest.approx(F.cross_entropy(rows, labels).item())


def test_in_the_warm_up_the_step_is_plain_fused_cross_entropy():
    method, model = hand_made(warmup_epochs=1)
    epoch_pass(method, model, epoch=1)
    method.begin_epoch(1, 0, 1, torch.device("cpu"))
    step = TrainingStep(model, method, torch.optim.SGD(model.parameters(), lr=0.0), torch.device("cpu"))
    loss, _ = step(INPUTS, LABELS, 0, torch.arange(3))
    assert loss.item() == pytest.approx(F.cross_entropy(INPUTS["audio"] + INPUTS["visual"], LABELS).item())


def test_the_order_is_every_original_once_shuffled_by_the_given_generator():
    method, _ = hand_made()
    order = method.sample_order(1, 10, torch.Generator().manual_seed(3))
    assert sorted(order.tolist()) == list(range(10))
    assert torch.equal(order, method.sample_order(1, 10, torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("resampling", ["sample", "modality"])
def test_a_resampling_step_never_synchronises_with_the_host(resampling):
    method = SampleValuation(SampleValuationOptions(resampling=resampling, warmup_epochs=0),
                             ["audio", "visual"], 6, 512)
    method, model = with_av_model(method, torch.device("meta"))
    steps_on_meta(method, model, torch.device("meta"))


def run(tiny_config, folder, epochs, **options):
    result = train(tiny_config(method="sample-valuation", epochs=epochs, method_options=options), folder)
    assert result.status == "succeeded", result.error
    return without_timing(RunDir(folder).metrics())


@pytest.mark.parametrize("resampling", ["sample", "modality"])
def test_a_run_resumed_after_copies_began_ends_with_the_numbers_of_an_uninterrupted_one(
    tiny_config, tmp_path, resampling
):
    options = {"warmup_epochs": 1, "resampling": resampling}
    whole = run(tiny_config, tmp_path / "whole", 3, **options)
    run(tiny_config, tmp_path / "resumed", 2, **options)
    config = tiny_config(method="sample-valuation", epochs=3, method_options=options)
    assert train(config, tmp_path / "resumed", resume=True).status == "succeeded"
    assert without_timing(RunDir(tmp_path / "resumed").metrics()) == whole


def test_a_short_run_logs_the_valuation_and_the_copies_every_epoch(tiny_config, tmp_path):
    records = run(tiny_config, tmp_path / "run", 2, warmup_epochs=1)
    modalities = ["audio", "visual"]
    warm, resampled = records
    for record in records:
        for m in modalities:
            assert -0.5 <= record[f"sv_phi.{m}"] <= 1.5  # two modalities: phi is a multiple of 1/2 in there
    assert warm["sv_copies_total"] == 0 and all(warm[f"sv_copies.{m}"] == 0 for m in modalities)
    samples = resampled["samples_seen"] - warm["samples_seen"]  # every original once an epoch
    for m in modalities:
        assert 0 < resampled[f"sv_copied.{m}"] <= 1
        assert resampled[f"sv_copied.{m}"] <= resampled[f"sv_copies.{m}"] <= 3 * resampled[f"sv_copied.{m}"]
    per_modality = sum(resampled[f"sv_copies.{m}"] * samples for m in modalities)
    assert resampled["sv_copies_total"] == pytest.approx(per_modality) and resampled["sv_copies_total"] > 0


@pytest.mark.parametrize("overrides", [{"precision": "bf16"},
                                       {"dataset_options": {"n_samples": 600, "dims": 8,
                                                            "modalities": ["audio", "visual", "text"]}}])
def test_resampling_trains_in_bf16_and_with_three_modalities(tiny_config, tmp_path, overrides):
    config = tiny_config(method="sample-valuation", epochs=1, method_options={"warmup_epochs": 0}, **overrides)
    assert train(config, tmp_path / "run").status == "succeeded"
    (record,) = RunDir(tmp_path / "run").metrics()
    modalities = config.dataset_options["modalities"]
    assert math.isfinite(record["train_loss"]) and record["sv_copies_total"] > 0
    # A sample's values sum to M when its fused prediction is right, else to 0: the mean lies in [0, M].
    assert 0 <= sum(record[f"sv_phi.{m}"] for m in modalities) <= len(modalities)
