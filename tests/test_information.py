"""Specification of the ARM information estimators (ARM.md §2 and §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from armscope.information import ESTIMATORS, arm_information, ncmi, nmi

# ARM.md §2 test vectors, produced by the reference numerics on float32 inputs.
X = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
Y = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
Z = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]


def f32(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def waves() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    k = torch.arange(64, dtype=torch.float32)
    r = torch.clamp(torch.sin(1.7 * k), min=0)
    s = torch.clamp(torch.cos(0.9 * k), min=0)
    return r, s, (r + s) / 2


@pytest.mark.parametrize(
    ("x", "y", "bins", "expected"),
    [
        (X, Y, 30, 0.8684887117585054),
        (X, Y, 4, 0.5058602538490751),
        (X, X, 30, 1.0),
    ],
)
def test_nmi_matches_the_reference_vectors(x, y, bins, expected):
    assert nmi(f32(x), f32(y), bins=bins).item() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("x", "y", "z"), [(X, Y, Z), (Z, Y, X)])
def test_reference_ncmi_matches_the_reference_vectors(x, y, z):
    value = ncmi(f32(x), f32(y), f32(z), bins=2, estimator="reference")
    assert value.item() == pytest.approx(0.5456695903535467, abs=1e-9)


def test_post_relu_waves_match_the_reference_vectors():
    r, s, t = waves()
    reference = ncmi(r, t, s, bins=2, estimator="reference")
    assert reference.item() == pytest.approx(0.5256204080202844, abs=1e-9)
    assert nmi(r, t, bins=30).item() == pytest.approx(0.7193457731320054, abs=1e-9)


def pairs_from_counts(counts: dict[tuple[int, ...], int]) -> list[torch.Tensor]:
    """One tensor per variable, holding each cell's values as many times as the cell counts."""
    cells = [cell for cell, count in counts.items() for _ in range(count)]
    return [f32(column) for column in zip(*cells)]


def test_nmi_is_the_plugin_estimate_of_a_hand_counted_table():
    # With two bins, 0 and 1 fall in bins 0 and 1; counts of (x, y):
    counts = {(0, 0): 3, (0, 1): 1, (1, 0): 2, (1, 1): 4}
    n = 10
    px = {0: 4 / n, 1: 6 / n}
    py = {0: 5 / n, 1: 5 / n}
    mutual = sum(c / n * math.log((c / n) / (px[x] * py[y])) for (x, y), c in counts.items())
    h_x = -sum(p * math.log(p) for p in px.values())
    h_y = -sum(p * math.log(p) for p in py.values())

    x, y = pairs_from_counts(counts)
    assert nmi(x, y, bins=2).item() == pytest.approx(2 * mutual / (h_x + h_y), abs=1e-12)


def marginal(counts: dict[tuple[int, ...], int], keep: tuple[int, ...]) -> dict[tuple[int, ...], int]:
    summed: dict[tuple[int, ...], int] = {}
    for cell, count in counts.items():
        key = tuple(cell[axis] for axis in keep)
        summed[key] = summed.get(key, 0) + count
    return summed


def test_plugin_ncmi_is_the_conditional_estimate_of_a_hand_counted_table():
    # Counts of (x, y, z), every variable in {0, 1}, so two bins separate 0 from 1.
    counts = {
        (0, 0, 0): 4, (0, 1, 0): 1, (1, 0, 0): 1, (1, 1, 0): 2,
        (0, 0, 1): 1, (0, 1, 1): 3, (1, 0, 1): 2, (1, 1, 1): 2,
    }  # fmt: skip
    n = 16
    c_z, c_xz, c_yz = marginal(counts, (2,)), marginal(counts, (0, 2)), marginal(counts, (1, 2))
    mutual = sum(
        c / n * math.log(c * c_z[(z,)] / (c_xz[x, z] * c_yz[y, z])) for (x, y, z), c in counts.items()
    )
    h_x_given_z = -sum(c / n * math.log(c / c_z[(z,)]) for (_, z), c in c_xz.items())
    h_y_given_z = -sum(c / n * math.log(c / c_z[(z,)]) for (_, z), c in c_yz.items())

    x, y, z = pairs_from_counts(counts)
    expected = 2 * mutual / (h_x_given_z + h_y_given_z)
    assert ncmi(x, y, z, bins=2).item() == pytest.approx(expected, abs=1e-12)
    assert ncmi(x, y, z, bins=2, estimator="plugin").item() == pytest.approx(expected, abs=1e-12)


def test_a_variable_has_nmi_one_with_itself():
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(1))
    assert nmi(x, x).item() == pytest.approx(1.0, abs=1e-12)


def test_independent_variables_have_nmi_and_plugin_ncmi_near_zero():
    generator = torch.Generator().manual_seed(0)
    x, y, z = (torch.randn(100_000, generator=generator) for _ in range(3))
    assert 0 <= nmi(x, y).item() < 0.01
    assert 0 <= ncmi(x, y, z).item() < 0.01


def test_plugin_ncmi_is_zero_when_z_determines_both_variables():
    z = torch.randn(1000, generator=torch.Generator().manual_seed(2))
    assert ncmi(z, z, z).item() == 0.0
    assert ncmi(2 * z, z, z, bins=5).item() == 0.0


def reference_histogram_nmi(x: np.ndarray, y: np.ndarray, bins: int) -> float:
    """ARM.md §2 evaluated directly: float64 edges, edge_k <= v < edge_k+1, max in the last bin."""

    def bin_of(values: np.ndarray) -> np.ndarray:
        low, high = float(values.min()), float(values.max())
        edges = [low + k * (high - low) / bins for k in range(bins)] + [high]
        index = np.searchsorted(np.array(edges), values.astype(np.float64), side="right") - 1
        return np.minimum(index, bins - 1)

    joint = np.zeros((bins, bins))
    np.add.at(joint, (bin_of(x), bin_of(y)), 1)
    p = joint / joint.sum()
    px, py = p.sum(1), p.sum(0)
    cells = p > 0
    mutual = (p[cells] * np.log(p[cells] / np.outer(px, py)[cells])).sum()

    def entropy(q: np.ndarray) -> float:
        return -(q[q > 0] * np.log(q[q > 0])).sum()

    return float(2 * mutual / (entropy(px) + entropy(py)))


@pytest.mark.parametrize("bins", [3, 7, 30, 100])
def test_values_on_and_next_to_the_float64_edges_fall_in_the_right_bin(bins):
    rng = np.random.default_rng(bins)
    low, high = np.float32(-3.7), np.float32(1234.5)
    edges = np.array([float(low) + k * (float(high) - float(low)) / bins for k in range(bins + 1)])
    on_edges = edges.astype(np.float32)
    # Each edge as float32, and the float32 neighbours either side of it.
    up, down = np.nextafter(on_edges, np.float32(np.inf)), np.nextafter(on_edges, np.float32(-np.inf))
    near = np.concatenate([on_edges, up, down])
    x = np.clip(np.concatenate([near, rng.uniform(low, high, 500).astype(np.float32)]), low, high)
    x[:2] = low, high
    y = rng.permutation(x)
    expected = reference_histogram_nmi(x, y, bins)
    score = nmi(torch.from_numpy(x), torch.from_numpy(y), bins=bins)
    assert score.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_fused_call_equals_the_single_calls_for_two_modalities(estimator):
    generator = torch.Generator().manual_seed(3)
    h_a = torch.relu(torch.randn(16, 64, generator=generator))
    h_v = torch.relu(torch.randn(16, 64, generator=generator))
    fused = h_a @ torch.randn(64, 64, generator=generator) + h_v

    nmis, ncmis = arm_information([h_a, h_v], fused, [h_v, h_a], estimator=estimator)

    expected_nmi = torch.stack([nmi(h_a, fused), nmi(h_v, fused)])
    expected_ncmi = torch.stack(
        [ncmi(h_a, fused, h_v, estimator=estimator), ncmi(h_v, fused, h_a, estimator=estimator)]
    )
    torch.testing.assert_close(nmis, expected_nmi, rtol=0, atol=1e-12)
    torch.testing.assert_close(ncmis, expected_ncmi, rtol=0, atol=1e-12)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize(("nmi_bins", "ncmi_bins"), [(30, 2), (7, 3), (300, 40)])
def test_fused_call_equals_the_single_calls_for_three_modalities(estimator, nmi_bins, ncmi_bins):
    generator = torch.Generator().manual_seed(4)
    features = [torch.randn(8, 100, generator=generator) for _ in range(3)]
    fused = sum(features) + torch.randn(8, 100, generator=generator)
    rest = [(sum(features) - h) / 2 for h in features]

    nmis, ncmis = arm_information(features, fused, rest, nmi_bins, ncmi_bins, estimator)

    for m, (h, h_rest) in enumerate(zip(features, rest)):
        assert nmis[m].item() == pytest.approx(nmi(h, fused, nmi_bins).item(), abs=1e-12)
        expected = ncmi(h, fused, h_rest, ncmi_bins, estimator)
        assert ncmis[m].item() == pytest.approx(expected.item(), abs=1e-12)


def test_fused_call_returns_one_score_per_modality_on_the_input_device():
    h_a, h_v, fused = torch.rand(4, 8), torch.rand(4, 8), torch.rand(4, 8)
    nmis, ncmis = arm_information([h_a, h_v], fused, [h_v, h_a])
    for scores in (nmis, ncmis):
        assert scores.shape == (2,)
        assert scores.device == fused.device
        assert scores.dtype.is_floating_point


def test_constant_tensors_give_finite_scores():
    constant = torch.full((100,), 3.5)
    y, z = torch.randn(100), torch.randn(100)
    assert nmi(constant, y).item() == 0.0
    assert nmi(constant, constant).item() == 0.0
    for estimator in ESTIMATORS:
        assert math.isfinite(ncmi(constant, y, z, estimator=estimator).item())
        assert math.isfinite(ncmi(y, z, constant, estimator=estimator).item())
        assert math.isfinite(ncmi(constant, constant, constant, estimator=estimator).item())


def test_a_tensor_with_nan_gives_nan_rather_than_a_silent_number():
    x, y = torch.randn(100), torch.randn(100)
    x[7] = math.nan
    assert math.isnan(nmi(x, y).item())
    assert math.isnan(ncmi(y, y, x).item())
    nmis, ncmis = arm_information([x, y], y, [y, x])
    assert math.isnan(nmis[0].item()) and not math.isnan(nmis[1].item())
    assert torch.isnan(ncmis).all()


def test_scores_are_zero_dimensional_tensors_on_the_input_device():
    x, y, z = torch.randn(50), torch.randn(50), torch.randn(50)
    for score in (nmi(x, y), ncmi(x, y, z), ncmi(x, y, z, estimator="reference")):
        assert isinstance(score, torch.Tensor)
        assert score.dim() == 0
        assert score.device == x.device
        assert score.dtype.is_floating_point


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_give_the_scores_of_their_values(dtype):
    generator = torch.Generator().manual_seed(5)
    x, y, z = (torch.randn(32, 16, generator=generator).to(dtype) for _ in range(3))
    x32, y32, z32 = x.float(), y.float(), z.float()
    assert nmi(x, y).item() == pytest.approx(nmi(x32, y32).item(), abs=1e-12)
    for estimator in ESTIMATORS:
        expected = ncmi(x32, y32, z32, estimator=estimator).item()
        assert ncmi(x, y, z, estimator=estimator).item() == pytest.approx(expected, abs=1e-12)


def test_inputs_of_any_shape_are_paired_element_by_element():
    x = torch.randn(6, 4, 5, generator=torch.Generator().manual_seed(6))
    y = x.flip(0) * 2
    assert nmi(x, y).item() == nmi(x.reshape(-1), y.reshape(-1)).item()


def test_tensors_that_require_grad_are_accepted():
    x = torch.randn(40, 8, requires_grad=True)
    y = (x * 2).sin()
    z = torch.randn(40, 8, requires_grad=True)
    assert nmi(x, y).requires_grad is False
    assert math.isfinite(ncmi(x, y, z).item())
    nmis, ncmis = arm_information([x, z], y, [z, x])
    assert not nmis.requires_grad and not ncmis.requires_grad


def test_an_unknown_estimator_is_rejected_naming_the_choices():
    x = torch.randn(10)
    for call in (
        lambda: ncmi(x, x, x, estimator="ksg"),
        lambda: arm_information([x], x, [x], estimator="ksg"),
    ):
        with pytest.raises(ValueError, match="plugin") as error:
            call()
        assert "reference" in str(error.value)
        assert "ksg" in str(error.value)


def test_tensors_of_different_sizes_are_rejected():
    with pytest.raises(ValueError, match="same"):
        nmi(torch.randn(10), torch.randn(11))


def test_no_value_is_read_back_to_the_host():
    # Meta tensors carry no data: any .item(), nonzero() or Python branch on a value would fail.
    h_a, h_v, fused = (torch.empty(128, 512, device="meta") for _ in range(3))
    for estimator in ESTIMATORS:
        nmis, ncmis = arm_information([h_a, h_v], fused, [h_v, h_a], estimator=estimator)
        assert nmis.shape == ncmis.shape == (2,)
        assert nmis.device.type == "meta"
    assert nmi(h_a, fused).shape == ncmi(h_a, fused, h_v).shape == ()


def test_one_bin_carries_no_information():
    x, y, z = torch.randn(30), torch.randn(30), torch.randn(30)
    assert nmi(x, y, bins=1).item() == 0.0
    assert ncmi(x, y, z, bins=1).item() == 0.0
