"""BalanceBenchmark's measures for every run: its imbalance degree, and what a model costs."""

import math

import pytest
import torch

from armscope.complexity import flops_per_sample, parameter_count, peak_memory_mb
from armscope.data import TensorSplit
from armscope.models import ConcatHead, MultimodalModel
from armscope.rundir import RunDir
from armscope.shapley import pairwise_gap
from armscope.train import train

pytestmark = pytest.mark.unit


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


def concat_model() -> MultimodalModel:
    return MultimodalModel({"a": Identity(), "b": Identity()}, ConcatHead(["a", "b"], 4, 3))


def test_the_imbalance_degree_of_two_modalities_is_the_gap_between_their_shapley_values():
    # v(empty) 0.10, v(a) 0.60, v(b) 0.40, v(ab) 0.70: phi = (0.40, 0.20).
    assert pairwise_gap(torch.tensor([0.40, 0.20], dtype=torch.float64)).item() == pytest.approx(0.20)


def test_the_imbalance_degree_of_three_modalities_is_the_mean_pairwise_gap():
    phi = torch.tensor([0.433333, 0.233333, 0.133333], dtype=torch.float64)
    assert pairwise_gap(phi).item() == pytest.approx((0.2 + 0.3 + 0.1) / 3)


def test_a_prediction_s_flops_per_sample_are_torch_s_count_of_its_matrix_products():
    split = TensorSplit({"a": torch.randn(5, 4), "b": torch.randn(5, 4)}, torch.zeros(5, dtype=torch.long))
    model = concat_model()
    # One (8 -> 3) linear layer: 8 x 3 multiply-adds, two FLOPs each; the bias is not counted.
    assert flops_per_sample(model, split, model.head, torch.device("cpu"), "fp32") == 2 * 8 * 3


def test_the_parameter_count_is_every_number_the_model_learns():
    assert parameter_count(concat_model()) == 8 * 3 + 3


def test_every_epoch_logs_the_run_s_cost_and_imbalance_degree(tiny_config, tmp_path):
    assert train(tiny_config(method="baseline", epochs=2), tmp_path / "run").status == "succeeded"
    first, second = RunDir(tmp_path / "run").metrics()
    assert first["parameters"] == second["parameters"] > 0 and first["flops_per_sample"] > 0
    assert second["peak_memory_mb"] >= first["peak_memory_mb"] > 0
    assert second["bb_imbalance"] == pytest.approx(abs(second["shapley.audio"] - second["shapley.visual"]))


def test_peak_memory_on_the_cpu_is_the_process_s_resident_peak():
    assert math.isfinite(peak_memory_mb(torch.device("cpu"))) and peak_memory_mb(torch.device("cpu")) > 10
