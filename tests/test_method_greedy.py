"""Greedy (Wu, Geras et al., ICML 2022): conditional learning speeds, the re-balancing rule, MMTM blocks between stages."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from armscope.config import RunConfig
from armscope.methods import build_method
from armscope.methods.greedy import (
    MMTM,
    Flow,
    conditional_speed,
    encoder_stages,
    learning_speed,
    mixed_excitation,
    rebalancing_decision,
    speed_gap,
)
from armscope.models import MultimodalModel, build_encoder
from armscope.rundir import RunDir
from armscope.step import TrainingStep
from armscope.train import train
from tests.test_gpu_path import FRAMES, SPECTROGRAM, batch

pytestmark = pytest.mark.unit


def test_the_first_worked_example_cares_for_modality_0():
    # mu = (b0, m0, b1, m1) = (0.01, 0.001, 0.002, 0.002): BDR = (log10 10, log10 1) = (1, 0), d = 1 > 0.01.
    bdr = conditional_speed(torch.tensor([0.01, 0.002]), torch.tensor([0.001, 0.002]))
    assert torch.allclose(bdr, torch.tensor([1.0, 0.0]))
    start, caring = rebalancing_decision(bdr, 0.01)
    assert bool(start) and int(caring) == 0


def test_the_second_worked_example_accumulates_to_a_gap_of_log10_2():
    # M_b0 = 0.01 + 0.01 = 0.02, M_m0 = 0.001 + 0.009 = 0.01; branch 1 stays at 0.004 / 0.004: d = log10 2 = 0.301030.
    bdr = conditional_speed(torch.tensor([0.02, 0.004]), torch.tensor([0.01, 0.004]))
    assert speed_gap(bdr).item() == pytest.approx(0.301030, abs=1e-6)


def test_a_gap_within_alpha_starts_nothing_and_a_negative_gap_cares_for_modality_1():
    start, _ = rebalancing_decision(torch.tensor([0.005, 0.0]), 0.01)
    assert not bool(start)
    start, caring = rebalancing_decision(torch.tensor([0.0, 0.5]), 0.01)
    assert bool(start) and int(caring) == 1


def test_an_empty_accumulator_gives_a_speed_ratio_of_zero_not_nan():
    assert torch.equal(conditional_speed(torch.zeros(2), torch.tensor([0.0, 1.0])), torch.zeros(2))


def test_learning_speed_is_squared_gradient_over_squared_weight():
    # weights (1, 2) and (2,): sum of squares 1 + 4 + 4 = 9; gradients (3, 0) and none: 9. mu = 9 / 9 = 1.
    a, b = torch.nn.Parameter(torch.tensor([1.0, 2.0])), torch.nn.Parameter(torch.tensor([2.0]))
    a.grad = torch.tensor([3.0, 0.0])
    assert learning_speed([a, b]).item() == pytest.approx(1.0)


def test_an_mmtm_block_squeezes_both_branches_and_scales_each_channel():
    block = MMTM([6, 4], ratio=4)
    assert block.squeeze.in_features == 10 and block.squeeze.out_features == 5  # 2 * (6 + 4) / 4
    maps = Flow(torch.randn(2 * 3, 6, 5, 5), batch=2, frames=3)  # 2 clips of 3 frames
    vectors = Flow(torch.randn(2, 4), batch=2)
    out_maps, out_vectors = block([maps, vectors])
    assert out_maps.x.shape == (6, 6, 5, 5) and out_vectors.x.shape == (2, 4)
    scales = out_vectors.x / vectors.x
    assert ((scales > 0) & (scales < 1)).all()  # sigmoid scales


def test_a_running_mean_averages_the_steps_batch_means():
    block = MMTM([2, 1], ratio=1)
    block.record([torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[1.0], [1.0]])])
    block.record([torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([[0.0], [0.0]])])
    # branch 0: step means (0.5, 0) and (0, 1) -> (0.25, 0.5); branch 1: 1 and 0 -> 0.5 (its own, not branch 0's).
    assert torch.equal(block.running(0), torch.tensor([0.25, 0.5]))
    assert torch.equal(block.running(1), torch.tensor([0.5]))


def test_replacing_an_excitation_by_its_running_mean_cuts_the_cross_modal_path():
    torch.manual_seed(0)
    block = MMTM([3, 3], ratio=2)
    block.record(block.excitations([torch.randn(4, 3), torch.randn(4, 3)]))
    mine = torch.randn(4, 3)
    replace = torch.tensor([True, False])
    with torch.no_grad():
        first, _ = block([Flow(mine, 4), Flow(torch.randn(4, 3), 4)], replace)
        second, _ = block([Flow(mine, 4), Flow(torch.randn(4, 3), 4)], replace)
        kept, _ = block([Flow(mine, 4), Flow(torch.randn(4, 3), 4)])
    assert torch.equal(first.x, second.x)  # the other branch no longer reaches branch 0
    assert torch.equal(first.x, mine * block.running(0))
    assert not torch.equal(kept.x, first.x)


def test_mixed_excitation_keeps_the_batch_excitation_unless_told():
    excitation, running = torch.rand(2, 3), torch.rand(3)
    assert torch.equal(mixed_excitation(excitation, running, torch.tensor(False)), excitation)
    assert torch.equal(mixed_excitation(excitation, running, torch.tensor(True)), running.expand(2, 3))


@pytest.mark.parametrize(("name", "shape"), [("mlp", (8,)), ("resnet18", FRAMES)])
def test_an_encoder_run_stage_by_stage_gives_its_own_features(name, shape):
    torch.manual_seed(0)
    encoder = build_encoder({"name": name}, shape, 16).eval()
    stages = encoder_stages(encoder)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        flow = stages.start(x)
        for index in range(len(stages.widths)):
            flow = stages.stage(index, flow)
        assert torch.allclose(stages.finish(flow), encoder(x), atol=1e-5)


def test_resnet_encoders_get_a_block_after_layer2_layer3_and_layer4():
    method = build_method("greedy", {}, ["audio", "visual"], 6, 16)
    encoders = {"audio": build_encoder({"name": "resnet18"}, SPECTROGRAM, 16),
                "visual": build_encoder({"name": "resnet18"}, FRAMES, 16)}
    model = MultimodalModel(encoders, method.build_head())
    assert [block.squeeze.in_features for block in model.head.blocks] == [256, 512, 1024]
    method.begin_epoch(1, 0, 1, torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss, _ = TrainingStep(model, method, optimizer, torch.device("cpu"))(*batch(), 0)
    assert math.isfinite(loss.item())
    assert all(block.updates.item() == 1 for block in model.head.blocks)
    assert (method.bypass_speed > 0).all() and (method.main_speed > 0).all()


def test_an_mlp_pair_gets_a_block_after_each_layer_of_the_shallower_encoder():
    method = build_method("greedy", {}, ["a", "b"], 3, 16)
    encoders = {"a": build_encoder({"name": "mlp", "hidden": [32, 24]}, (8,), 16),
                "b": build_encoder({"name": "mlp", "hidden": [12]}, (5,), 16)}
    model = MultimodalModel(encoders, method.build_head())
    # a's stages 32, 24, 16 and b's 12, 16: the last two of each are paired.
    assert [block.squeeze.in_features for block in model.head.blocks] == [24 + 12, 16 + 16]


def test_a_rebalancing_lasts_q_steps_and_freezes_the_accumulators():
    method = build_method("greedy", {"alpha": 0.0, "rebalance_start": 1, "rebalance_steps": 2}, ["a", "b"], 3, 4)
    model = MultimodalModel({m: build_encoder({"name": "mlp", "hidden": []}, (3,), 4) for m in "ab"},
                            method.build_head())
    method.begin_epoch(1, 0, 4, torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = TrainingStep(model, method, optimizer, torch.device("cpu"))
    inputs, labels = {m: torch.randn(6, 3) for m in "ab"}, torch.randint(0, 3, (6,))
    step(inputs, labels, 0)
    assert method.remaining.item() == 2  # alpha 0: any gap starts one
    frozen = method.bypass_speed.clone()
    step(inputs, labels, 1)
    step(inputs, labels, 2)
    assert method.remaining.item() == 0 and torch.equal(method.bypass_speed, frozen)
    assert method.rebalanced.sum().item() == 2


def test_three_modalities_are_refused_naming_the_limit():
    with pytest.raises(ValidationError, match="greedy supports at most 2 modalities; this data set has 3"):
        RunConfig.model_validate({
            "method": "greedy",
            "dataset_options": {"n_samples": 60, "dims": 4, "modalities": ["a", "b", "c"]},
        })


def test_a_short_run_logs_its_speeds_and_rebalancing_shares(tiny_config, tmp_path):
    result = train(tiny_config(method="greedy", epochs=2, method_options={"rebalance_start": 1}), tmp_path / "run")
    assert result.status == "succeeded", result.error
    records = RunDir(tmp_path / "run").metrics()
    for record in records:
        for m in ("audio", "visual"):
            assert math.isfinite(record[f"greedy_bdr.{m}"])
            assert 0 <= record[f"greedy_rebalance.{m}"] <= 1
        assert record["greedy_d"] == pytest.approx(record["greedy_bdr.audio"] - record["greedy_bdr.visual"], abs=1e-6)
    assert sum(records[-1][f"greedy_rebalance.{m}"] for m in ("audio", "visual")) > 0


def test_a_run_warns_once_that_its_masked_measures_are_taken_after_the_fusion(tiny_config, tmp_path):
    for folder in ("first", "second"):  # the warning is a fresh event each run
        assert train(tiny_config(method="greedy", epochs=2), tmp_path / folder).status == "succeeded"
        caveats = [e for e in RunDir(tmp_path / folder).events() if e["kind"] == "masking_after_fusion"]
        assert [e["epoch"] for e in caveats] == [1] and "overstate" in caveats[0]["message"]
