"""Greedy (Wu, Geras et al., ICML 2022): conditional learning speeds, the re-balancing rule, MMTM blocks between stages,
a modality removed from the blocks as the paper removes it, and the conditional utilisation rates."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from armscope.config import RunConfig
from armscope.data.base import TensorSplit
from armscope.dominance import evaluate
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
    utilisation_gap,
    utilisation_rates,
)
from armscope.models import MultimodalModel, build_encoder
from armscope.models.base import as_choice, encoder_sizer
from armscope.rundir import RunDir
from armscope.step import TrainingStep
from armscope.train import train
from tests.test_gpu_path import FRAMES, SPECTROGRAM, batch

pytestmark = pytest.mark.unit
CPU = torch.device("cpu")


def mlp_pair(hidden: list[int]):
    """A greedy method and its model on modalities a (5 inputs) and b (3 inputs), MLP encoders, 3 classes."""
    torch.manual_seed(0)
    method = build_method("greedy", {}, ["a", "b"], 3, 4)
    encoders = {m: build_encoder({"name": "mlp", "hidden": hidden}, (width,), 4) for m, width in (("a", 5), ("b", 3))}
    return method, MultimodalModel(encoders, method.build_head())


def accuracies(both: float, a: float, b: float) -> dict[frozenset[str], torch.Tensor]:
    values = {frozenset("ab"): both, frozenset("a"): a, frozenset("b"): b, frozenset(): 0.1}
    return {coalition: torch.tensor(value, dtype=torch.float64) for coalition, value in values.items()}


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


def test_a_run_logs_the_utilisation_rates_of_its_masked_accuracies_and_no_masking_caveat(tiny_config, tmp_path):
    assert train(tiny_config(method="greedy", epochs=2), tmp_path / "run").status == "succeeded"
    for record in RunDir(tmp_path / "run").metrics():
        both, audio, visual = record["val_acc"], record["val_acc.audio"], record["val_acc.visual"]
        assert record["greedy_util.audio"] == pytest.approx((both - visual) / both)  # u(audio | visual)
        assert record["greedy_util.visual"] == pytest.approx((both - audio) / both)  # u(visual | audio)
        # d_util = u(visual | audio) - u(audio | visual) = ((both - audio) - (both - visual)) / both
        assert record["greedy_d_util"] == pytest.approx((visual - audio) / both)
    assert not [e for e in RunDir(tmp_path / "run").events() if e["kind"] == "masking_after_fusion"]


@pytest.mark.parametrize(
    ("encoder", "shape", "widths"),
    [({"name": "mlp", "hidden": [32, 24]}, (8,), (32, 24, 16)), ({"name": "resnet18"}, FRAMES, (128, 256, 512))],
)
def test_each_encoder_spec_declares_the_stage_widths_greedy_fuses_after(encoder, shape, widths):
    choice = as_choice(encoder)
    assert encoder_sizer(choice.name).stages(choice.options, shape, 16) == widths
    assert encoder_stages(build_encoder(choice, shape, 16)).widths == list(widths)


def test_a_modality_alone_carries_nothing_of_the_removed_one():
    method, model = mlp_pair([6])
    a = torch.randn(4, 5)
    with torch.no_grad():
        joint = [method.encode(model, {"a": a, "b": torch.randn(4, 3)})["a"] for _ in range(2)]
        alone = [method.encode(model, {"a": a, "b": torch.randn(4, 3)}, ["a"]) for _ in range(2)]
        without_b = method.encode(model, {"a": a}, ["a"])
    assert not torch.equal(joint[0], joint[1])  # with b present, a's features change with b's input
    assert list(alone[0]) == ["a"]
    assert torch.equal(alone[0]["a"], alone[1]["a"]) and torch.equal(alone[0]["a"], without_b["a"])


def test_a_removed_modality_enters_every_block_as_its_mean_squeeze():
    # One stage per encoder, one block: a alone equals a beside a b whose every sample squeezes to b's mean.
    method, model = mlp_pair([])
    (block,) = model.head.blocks
    a, b_row = torch.randn(4, 5), torch.randn(1, 3)
    with torch.no_grad():
        block.mean_squeeze(1).copy_(model.encoders["b"](b_row)[0])
        alone = method.encode(model, {"a": a}, ["a"])["a"]
        beside_the_mean = method.encode(model, {"a": a, "b": b_row.expand(4, 3)})["a"]
    assert torch.allclose(alone, beside_the_mean, atol=1e-6)


def test_the_mean_squeeze_averages_the_epochs_training_samples_and_restarts_each_epoch():
    method, model = mlp_pair([])
    (block,) = model.head.blocks
    step = TrainingStep(model, method, torch.optim.SGD(model.parameters(), lr=0.0), CPU)  # weights stay put
    six, two = {"a": torch.randn(6, 5), "b": torch.randn(6, 3)}, {"a": torch.randn(2, 5), "b": torch.randn(2, 3)}
    method.begin_epoch(1, 0, 2, CPU)
    step(six, torch.zeros(6, dtype=torch.long), 0)
    step(two, torch.zeros(2, dtype=torch.long), 1)
    encoder = model.encoders["b"]
    with torch.no_grad():
        # b's single stage is its whole encoder: the mean over all 8 samples, not the mean of the two batch means.
        assert torch.allclose(block.mean_squeeze(1), encoder(torch.cat([six["b"], two["b"]])).mean(0))
    method.begin_epoch(2, 2, 1, CPU)
    step(two, torch.zeros(2, dtype=torch.long), 2)
    with torch.no_grad():
        assert torch.allclose(block.mean_squeeze(1), encoder(two["b"]).mean(0))
    assert block.squeeze_samples.item() == 2


def test_the_masked_accuracy_of_a_modality_is_that_of_its_features_encoded_alone():
    method, model = mlp_pair([6])
    model.eval()
    inputs, labels = {"a": torch.randn(40, 5), "b": torch.randn(40, 3)}, torch.arange(40) % 3
    record = evaluate(model, TensorSplit(inputs, labels), batch_size=64, device=CPU,
                      predict=lambda feats: method.predict(model, feats),
                      encode=lambda given, names: method.encode(model, given, names))
    with torch.no_grad():
        for m, other in (("a", "b"), ("b", "a")):
            alone = method.encode(model, inputs, [m])[m]
            logits = model.head({m: alone, other: torch.zeros_like(alone)})
            assert record[f"val_acc.{m}"] == (logits.argmax(1) == labels).double().mean().item()


def test_the_utilisation_rates_of_the_papers_worked_example():
    # A(a,b) = 0.80, A(a) = 0.75, A(b) = 0.40: u(b|a) = 0.05 / 0.80 = 0.0625, u(a|b) = 0.40 / 0.80 = 0.5.
    rates = utilisation_rates(accuracies(0.80, 0.75, 0.40), ["a", "b"])
    assert rates["b"].item() == pytest.approx(0.0625) and rates["a"].item() == pytest.approx(0.5)
    assert utilisation_gap(rates, ["a", "b"]).item() == pytest.approx(0.0625 - 0.5)  # d_util = u(b|a) - u(a|b)


def test_a_modality_that_hurts_the_fused_accuracy_has_a_negative_rate():
    # A(a,b) = 0.5, A(a) = 0.6, A(b) = 0.5: u(b|a) = -0.1 / 0.5 = -0.2, u(a|b) = 0; d_util = -0.2.
    rates = utilisation_rates(accuracies(0.5, 0.6, 0.5), ["a", "b"])
    assert rates["b"].item() == pytest.approx(-0.2) and rates["a"].item() == 0
    assert utilisation_gap(rates, ["a", "b"]).item() == pytest.approx(-0.2)


def test_without_any_fused_accuracy_the_rates_are_zero_not_nan():
    rates = utilisation_rates(accuracies(0.0, 0.0, 0.25), ["a", "b"])
    assert rates["a"].item() == 0 and rates["b"].item() == 0
