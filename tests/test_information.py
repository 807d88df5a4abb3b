"""Specification of the ARM information estimators (ARM.md §2 and §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from armscope.information import ESTIMATORS, arm_information, ncmi, nmi, scramble

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
    """ARM.md §2 evaluated directly: float64 edges as numpy makes them, edge_k <= v < edge_k+1, max in the last bin."""

    def bin_of(values: np.ndarray) -> np.ndarray:
        low, high = float(values.min()), float(values.max())
        edges = [low + k * ((high - low) / bins) for k in range(bins)] + [high]
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
    edges = np.array([float(low) + k * ((float(high) - float(low)) / bins) for k in range(bins + 1)])
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

    expected_nmi = torch.stack([nmi(h_a, fused, estimator=estimator), nmi(h_v, fused, estimator=estimator)])
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
        assert nmis[m].item() == pytest.approx(nmi(h, fused, nmi_bins, estimator).item(), abs=1e-12)
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


def numpy_nmi(x: np.ndarray, y: np.ndarray, bins: int) -> float:
    """The published NMI: numpy's own 2-D histogram (edges as numpy.linspace makes them), then ARM.md §2."""
    joint, _, _ = np.histogram2d(x.astype(np.float64), y.astype(np.float64), bins=bins)
    p = joint / joint.sum()
    px, py = p.sum(1), p.sum(0)
    cells = p > 0
    mutual = (p[cells] * np.log(p[cells] / np.outer(px, py)[cells])).sum()

    def entropy(q: np.ndarray) -> float:
        return -(q[q > 0] * np.log(q[q > 0])).sum()

    return float(2 * mutual / (entropy(px) + entropy(py)))


def numpy_reference_ncmi(x: np.ndarray, y: np.ndarray, z: np.ndarray, bins: int) -> float:
    """The published "NCMI" (ARM.md §2), defects included, on numpy's 3-D histogram."""
    joint, _ = np.histogramdd(np.stack([x, y, z], axis=1).astype(np.float64), bins=bins)
    p = joint / joint.sum()
    pz = p.sum((0, 1))
    pz = np.where(pz <= 0, 1e-10, pz)

    def q(table: np.ndarray) -> float:
        c = table / pz[:, None, None]
        return float(-(c[c > 0] * np.log(c[c > 0])).sum())

    q_xz, q_yz, q_xyz = q(p.sum(1)), q(p.sum(0)), q(p)
    return (q_xz + q_yz - q_xyz) / (q_xz + q_yz) if q_xz + q_yz else 0.0


def on_grid(step: float, low: int, count: int, seed: int) -> np.ndarray:
    """4,096 float32 multiples of ``step`` from ``low`` to ``low + count - 1`` steps, both ends present."""
    q = np.random.default_rng(seed).integers(0, count, size=4096)
    q[:2] = 0, count - 1
    return ((q + low).astype(np.float32) * np.float32(step)).astype(np.float32)


def edge_heavy_inputs() -> list[tuple[str, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Data with values exactly on an edge that ``min + k * span / bins`` and numpy's
    ``min + k * (span / bins)`` put on different sides (found by search): quantised grids, bf16 normals."""
    cases = [
        ("grid 1/7", 30, on_grid(1 / 7, -6, 31, 1)),
        ("grid 0.7", 30, on_grid(0.7, -53, 175, 2)),
        ("grid 0.375", 100, on_grid(0.375, 0, 297, 3)),
        ("bf16 normals", 30, torch.randn(4096, generator=torch.Generator().manual_seed(10)).bfloat16().float().numpy()),
    ]
    return [(name, bins, x, on_grid(0.1, -7, 60, 4), x[::-1].copy()) for name, bins, x in cases]


def moved_by_the_other_edge_formula(values: np.ndarray, bins: int) -> int:
    v = values.astype(np.float64)
    k = np.arange(1, bins)
    low, span = v.min(), v.max() - v.min()
    ours = np.searchsorted(low + k * span / bins, v, side="right")
    return int((ours != np.searchsorted(low + k * (span / bins), v, side="right")).sum())


@pytest.mark.parametrize(("name", "bins", "x", "y", "z"), edge_heavy_inputs(), ids=lambda v: v if isinstance(v, str) else "")
def test_values_on_edges_fall_in_numpy_s_bins_so_the_published_numerics_hold_exactly(name, bins, x, y, z):
    assert moved_by_the_other_edge_formula(x, bins) > 0  # the case tells the two formulas apart
    assert nmi(torch.from_numpy(x), torch.from_numpy(y), bins).item() == pytest.approx(numpy_nmi(x, y, bins), abs=1e-12)
    expected = numpy_reference_ncmi(x, y, z, 2)
    score = ncmi(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(z), 2, "reference")
    assert score.item() == pytest.approx(expected, abs=1e-12)


SIZES = [1024, 4096, 16384, 65536, 131072]


def independent(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three independent variables of other shapes: a normal, an exponential and a post-ReLU normal."""
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, generator=generator),
        torch.empty(n).exponential_(generator=generator),
        torch.relu(torch.randn(n, generator=generator)),
    )


def dependent(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x and z independent, f = x + z + noise: x tells about f, and still does once z is known."""
    generator = torch.Generator().manual_seed(seed)
    x, z, noise = (torch.randn(n, generator=generator) for _ in range(3))
    return x, x + z + noise, z


@pytest.mark.parametrize("n", SIZES)
def test_debiased_scores_of_independent_variables_are_about_zero_at_every_size(n):
    x, y, z = independent(n, seed=n)
    assert abs(nmi(x, y, estimator="debiased").item()) <= 0.01
    assert abs(ncmi(x, y, z, estimator="debiased").item()) <= 0.01
    assert abs(ncmi(x, y, z, bins=5, estimator="debiased").item()) <= 0.01


def test_the_plugin_scores_of_independent_variables_are_mostly_bias_at_small_sizes():
    x, y, _ = independent(1024, seed=1024)
    assert nmi(x, y).item() > 0.05 > abs(nmi(x, y, estimator="debiased").item())


def test_debiased_scores_of_a_fixed_dependence_do_not_depend_on_the_element_count():
    scores = {n: dependent(n, seed=7) for n in (4096, 16384, 65536)}
    for name, score in [
        ("nmi", lambda x, f, z: nmi(x, f, estimator="debiased")),
        ("ncmi", lambda x, f, z: ncmi(x, f, z, bins=5, estimator="debiased")),
    ]:
        values = [score(*scores[n]).item() for n in scores]
        assert max(values) <= 1.1 * min(values), (name, values)


def test_the_scramble_is_one_fixed_permutation_per_size():
    order = scramble(4096)
    assert sorted(order.tolist()) == list(range(4096))
    assert torch.equal(order, scramble(4096)) and not torch.equal(order, torch.arange(4096))
    # No feature-index structure survives: the partners of feature k of a 64 x 64 tensor spread over the features.
    partner_features = (order.view(64, 64) % 64)[:, 0]
    assert len(set(partner_features.tolist())) > 32
