"""OGM's two forms: the CVPR 2022 rule (the default) and the T-PAMI 2024 version's (``form: tpami2024``).

The T-PAMI form's ratio is the mean of a modality's ratios to each other one, a modality is slowed only
when its ratio is strictly above 1, and training starts with six unmodulated epochs; the coefficient
1 - tanh(alpha * rho) is the same in both.
"""

from __future__ import annotations

import math

import pytest
import torch

from armscope.builtin.methods.ogm import OGMOptions
from armscope.methods import build_method
from armscope.methods.ogm import mean_pairwise_ratios, ogm_coefficients, tpami_coefficients
from armscope.models import ConcatHead, MultimodalModel
from armscope.rundir import RunDir
from armscope.train import train
from tests.support import without_timing

CPU = torch.device("cpu")


def test_with_two_modalities_the_tpami_ratio_is_one_score_over_the_other():
    ratio, coeff = tpami_coefficients(torch.tensor([2.0, 6.0]), alpha=0.5)
    # rho = (2/6, 6/2) = (1/3, 3): the second leads and gets 1 - tanh(0.5 * 3) = 1 - tanh(1.5).
    assert ratio.tolist() == pytest.approx([1 / 3, 3.0])
    assert coeff.tolist() == pytest.approx([1.0, 1 - math.tanh(1.5)])


def test_with_three_modalities_the_tpami_ratio_is_the_mean_of_the_ratios_to_each_other_modality():
    # s = (30, 20, 10): rho_1 = (30/20 + 30/10) / 2 = 2.25, rho_2 = (20/30 + 20/10) / 2 = 4/3,
    # rho_3 = (10/30 + 10/20) / 2 = 5/12.
    assert mean_pairwise_ratios(torch.tensor([30.0, 20.0, 10.0])).tolist() == pytest.approx([2.25, 4 / 3, 5 / 12])


def test_with_three_modalities_every_modality_whose_tpami_ratio_exceeds_one_is_slowed():
    # alpha 0.5 on rho = (2.25, 4/3, 5/12): k = (1 - tanh(1.125), 1 - tanh(2/3), 1) = (0.190699, 0.417217, 1).
    _, coeff = tpami_coefficients(torch.tensor([30.0, 20.0, 10.0]), alpha=0.5)
    assert coeff.tolist() == pytest.approx([0.190699, 0.417217, 1.0], abs=1e-6)


def test_the_cvpr_form_leaves_the_middle_modality_of_the_same_scores_alone():
    # Over the others' mean: 20 / ((30 + 10) / 2) = 1, no lead, where the T-PAMI form reads 4/3.
    ratio, coeff = ogm_coefficients(torch.tensor([30.0, 20.0, 10.0]), alpha=0.5)
    assert ratio.tolist() == pytest.approx([2.0, 1.0, 0.4])
    assert coeff.tolist() == pytest.approx([1 - math.tanh(1.0), 1.0, 1.0])


def test_on_an_exact_tie_the_tpami_form_slows_no_modality():
    _, coeff = tpami_coefficients(torch.tensor([4.0, 4.0]), alpha=0.3)
    assert coeff.tolist() == [1.0, 1.0]


def test_a_zero_score_gives_no_nan_and_stops_the_modalities_ahead_of_it():
    # Against a score of 0 the others' ratios are unbounded: tanh saturates and k = 0; the zero one reads 0.
    ratio, coeff = tpami_coefficients(torch.tensor([0.0, 5.0, 5.0]), alpha=0.5)
    assert not torch.isnan(ratio).any()
    assert ratio[0].item() == 0.0
    assert coeff.tolist() == [1.0, 0.0, 0.0]


def test_the_default_form_is_the_cvpr_rule_without_warm_up():
    options = OGMOptions()
    assert options.form == "cvpr2022" and options.warmup == 0
    assert options.modulates(1)


def test_the_tpami_form_trains_six_epochs_unmodulated_first():
    options = OGMOptions(form="tpami2024")
    assert options.warmup == 6
    assert [options.modulates(epoch) for epoch in range(1, 9)] == [False] * 6 + [True] * 2


def test_an_explicit_warm_up_overrides_the_forms_own():
    assert OGMOptions(form="tpami2024", warmup_epochs=0).modulates(1)
    assert not OGMOptions(form="cvpr2022", warmup_epochs=2).modulates(2)


def test_the_warm_up_and_the_window_both_gate_the_modulation():
    options = OGMOptions(form="tpami2024", modulation_start=3, modulation_end=8)
    assert [epoch for epoch in range(1, 12) if options.modulates(epoch)] == [7, 8]


# s_m = sum over the two samples of sigmoid(true-class logit): 2 e^x / (e^x + 1) for logits 3, 0.75 and 0.
SCORES = tuple(2 * math.exp(x) / (math.exp(x) + 1) for x in (3.0, 0.75, 0.0))


def three_modality_model():
    """Identity-sliced head, no bias: modality m's slice logits are its features themselves."""
    modalities = ["a", "v", "t"]
    head = ConcatHead(modalities, 2, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 0, 1, 0, 1, 0], [0, 1.0, 0, 1, 0, 1]]))
        head.fc.bias.zero_()
    return MultimodalModel({m: torch.nn.Identity() for m in modalities}, head)


def coefficients_after_a_step(options):
    method = build_method("ogm", options, ["a", "v", "t"], 2, 2)
    feats = {"a": torch.tensor([[3.0, 0.0], [0.0, 3.0]]), "v": 0.75 * torch.eye(2), "t": torch.zeros(2, 2)}
    method.begin_epoch(1, 0, 1, CPU)
    method.loss(three_modality_model(), feats, torch.tensor([0, 1]), 0)
    return method.coeff


def test_the_method_applies_the_tpami_coefficients_to_its_own_scores():
    # Each sample's true class gets logit 3 (a), 0.75 (v), 0 (t) against 0 for the other class: s_a = 1.905148,
    # s_v = 1.358357, s_t = 1; rho_v = (1.358357 / 1.905148 + 1.358357) / 2 = 1.035675, so v is slowed too.
    s_a, s_v, s_t = SCORES
    rho_a = (s_a / s_v + s_a / s_t) / 2
    rho_v = (s_v / s_a + s_v / s_t) / 2
    assert rho_v == pytest.approx(1.035675, abs=1e-6)
    coeff = coefficients_after_a_step({"form": "tpami2024", "alpha": 1.0})
    assert coeff.tolist() == pytest.approx([1 - math.tanh(rho_a), 1 - math.tanh(rho_v), 1.0])


def test_the_method_built_with_defaults_applies_the_cvpr_coefficients():
    # The CVPR form compares with the others' mean: v's 1.358357 is below (1.905148 + 1) / 2 = 1.452574.
    s_a, s_v, s_t = SCORES
    rho_a = s_a / ((s_v + s_t) / 2)
    assert s_v / ((s_a + s_t) / 2) == pytest.approx(0.935138, abs=1e-6)
    coeff = coefficients_after_a_step({"alpha": 1.0})
    assert coeff.tolist() == pytest.approx([1 - math.tanh(rho_a), 1.0, 1.0])


def metrics_of(tiny_config, folder, options):
    result = train(tiny_config(method="ogm", epochs=2, method_options=options), folder)
    assert result.status == "succeeded", result.error
    return without_timing(RunDir(folder).metrics())


def test_a_tpami_run_in_its_warm_up_trains_exactly_as_one_outside_its_window(tiny_config, tmp_path):
    warm = metrics_of(tiny_config, tmp_path / "warm", {"form": "tpami2024"})
    idle = metrics_of(tiny_config, tmp_path / "idle", {"modulation_start": 3})
    measured = ("ogm_ratio.", "ogm_coeff.")  # each form's own ratio, logged during the warm-up too
    for record, other in zip(warm, idle, strict=True):
        kept = {k: v for k, v in record.items() if not k.startswith(measured)}
        assert kept == {k: v for k, v in other.items() if not k.startswith(measured)}
        assert record["ogm_coeff.audio"] < 1 or record["ogm_coeff.visual"] < 1


def test_a_three_modality_tpami_run_without_warm_up_trains_and_logs_finite_ratios(tiny_config, tmp_path):
    three = {"n_samples": 600, "dims": 8, "modalities": ["audio", "visual", "text"]}
    config = tiny_config(method="ogm-ge", epochs=1, dataset_options=three,
                         method_options={"form": "tpami2024", "warmup_epochs": 0})
    result = train(config, tmp_path)
    assert result.status == "succeeded", result.error
    (record,) = RunDir(tmp_path).metrics()
    ratios = [record[f"ogm_ratio.{m}"] for m in three["modalities"]]
    assert all(math.isfinite(r) and r > 0 for r in ratios) and math.isfinite(record["train_loss"])
