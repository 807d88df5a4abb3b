"""Histogram estimators of (conditional) mutual information for the ARM scores.

ARM (ARM.md §1) needs NMI(h_m; f) and NCMI(h_m; f | h_-m) on every training
step, over the flattened B*d elements of each feature tensor, element i of one
tensor paired with element i of the other. So the estimators run where the
features are, never wait for the device, and are fused: ``arm_information``
bins each distinct tensor once, counts every histogram in one pass and
evaluates all entropies together.

Binning follows the published code (numpy's ``histogram``): per variable,
float64 edges ``min + k * ((max - min) / bins)`` as ``numpy.linspace`` computes
them (last edge = max; a zero range is widened to [v - 0.5, v + 0.5]); v falls
in bin k when edge_k <= v < edge_{k+1}, the max in the last bin. ARM.md §2
writes ``min + k * (max - min) / bins``, which differs in the last bit for some
k, enough to move values that sit exactly on an edge (quantised or bf16 data).

Estimators (the ``estimator`` argument): ``"plugin"`` (default) is the true
plug-in conditional mutual information, normalised as
``2 I(X;Y|Z) / (H(X|Z) + H(Y|Z))`` and 0 when that denominator is 0;
``"debiased"`` subtracts from the plug-in I what it measures on the same
elements with the fused tensor's elements scrambled by a fixed permutation
(same marginals, no dependence: the plug-in's finite-sample bias), normalised
by the same entropies, so independent inputs score about 0 at any size;
``"reference"`` is the published implementation's defective "NCMI"
(ARM.md §2), only for reproducing its numbers; its NMI is the plug-in's. The
default bin counts are the reference's: 30 per axis for NMI, 2 for NCMI.
Scores come back as float64. A score involving a tensor with NaN or infinity
is NaN, so ARM's guards see it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

ESTIMATORS = ("plugin", "debiased", "reference")

# While one modality's NMI x NCMI product table has at most this many cells,
# each element is counted once, in that table; beyond it, once per table.
_MAX_PRODUCT_CELLS = 1 << 16


def nmi(x: Tensor, y: Tensor, bins: int = 30, estimator: str = "plugin") -> Tensor:
    """How much x and y (element i with element i) tell about each other, on a 0..1 scale.

    Normalising by the entropies makes modalities with different spreads
    comparable (ARM.md §2). Two constants share nothing, so that is 0.
    ``"debiased"`` may go slightly below 0 where x and y are independent.
    """
    _check_estimator(estimator)
    scores, _ = _information([x], y, None, bins, None, estimator)
    return scores[0]


def ncmi(x: Tensor, y: Tensor, z: Tensor, bins: int = 2, estimator: str = "plugin") -> Tensor:
    """What x and y share beyond what z already tells, on a 0..1 scale in ``"plugin"`` mode.

    In ARM this is the part of h_m's information in f that the other
    modalities do not carry. ``"reference"`` exists only to reproduce the
    published numbers; its value is about 1 for post-ReLU features whatever
    the data (ARM.md §2).
    """
    _check_estimator(estimator)
    _, scores = _information([x], y, [z], None, bins, estimator)
    return scores[0]


def scramble(n: int, device: torch.device | str = "cpu") -> Tensor:
    """A fixed permutation of ``range(n)`` that looks random: element i goes to the rank of hash(i).

    The hash (odd multipliers and xor-shifts, a bijection on 32 bits) gives distinct keys, so the
    order is the same on every device and run, needs no random state (a resumed run draws the same),
    and breaks the sample and feature-index layout of a flattened B x d tensor, which an affine
    shuffle ``i * p mod n`` would keep. Cached per size and device outside compiled code.
    """
    if torch.compiler.is_compiling():
        return _scrambled(n, torch.device(device))
    return _cached_scramble(n, torch.device(device))


@lru_cache(maxsize=16)
def _cached_scramble(n: int, device: torch.device) -> Tensor:
    return _scrambled(n, device)


def _scrambled(n: int, device: torch.device) -> Tensor:
    mask = 0xFFFFFFFF
    h = (torch.arange(n, dtype=torch.int64, device=device) * 0x9E3779B1) & mask
    h = ((h ^ (h >> 16)) * 0x7FEB352D) & mask
    h = ((h ^ (h >> 15)) * 0x2C1B3C6D) & mask
    return torch.argsort(h ^ (h >> 16))


def arm_information(
    features: Sequence[Tensor],
    fused: Tensor,
    rest: Sequence[Tensor],
    nmi_bins: int = 30,
    ncmi_bins: int = 2,
    estimator: str = "plugin",
) -> tuple[Tensor, Tensor]:
    """NMI(h_m; f) and NCMI(h_m; f | rest_m) for every modality m, in one pass.

    ARM needs these on every training step; doing them together (each tensor
    binned once, one count, one entropy evaluation) is what keeps that cheap.
    A rest tensor that is the very same object as a feature (two modalities:
    rest = the features swapped) is binned only once. Same results as the
    single-value functions.
    """
    _check_estimator(estimator)
    if len(rest) != len(features):
        raise ValueError(f"need one rest tensor per modality, got {len(rest)} for {len(features)}")
    return _information(features, fused, rest, nmi_bins, ncmi_bins, estimator)


def _check_estimator(estimator: str) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of: {', '.join(ESTIMATORS)}")


def _information(
    features: Sequence[Tensor],
    fused: Tensor,
    rest: Sequence[Tensor] | None,
    nmi_bins: int | None,
    ncmi_bins: int | None,
    estimator: str,
) -> tuple[Tensor | None, Tensor | None]:
    """The one engine behind all three functions, so single and fused calls agree exactly.

    Variables are stacked as rows: row 0 the fused tensor, rows 1..M the
    features, then each rest tensor that is not already a row.
    """
    n_mod = len(features)
    if n_mod == 0:
        raise ValueError("need at least one modality")
    for bins in (nmi_bins, ncmi_bins):
        if bins is not None and bins < 1:
            raise ValueError(f"bins must be at least 1, got {bins}")
    rows = [fused, *features]
    rest_rows: list[int] = []
    for tensor in rest or ():
        match = next((i for i, row in enumerate(rows) if row is tensor), None)
        if match is None:
            rows.append(tensor)
            match = len(rows) - 1
        rest_rows.append(match)
    total = fused.numel()
    if total == 0 or any(row.numel() != total for row in rows):
        sizes = [row.numel() for row in rows]
        raise ValueError(f"all tensors need the same, non-zero number of elements, got {sizes}")

    values = torch.stack([row.detach().reshape(-1).to(_working_dtype(rows)) for row in rows])
    ranges = _ranges(values.amin(dim=1), values.amax(dim=1))
    fine = coarse = None
    if nmi_bins is not None:
        fine = _bin(values[: n_mod + 1], ranges.head(n_mod + 1), nmi_bins)
    if ncmi_bins is not None:
        coarse = _bin(values, ranges, ncmi_bins)
    order = scramble(total, values.device) if estimator == "debiased" else None
    nmi_counts, ncmi_counts = _histograms(fine, nmi_bins, coarse, ncmi_bins, rest_rows, n_mod, order)

    pair_defined = ranges.defined[0] & ranges.defined[1 : n_mod + 1]
    nmi_scores = ncmi_scores = None
    if nmi_counts is not None:
        scores = _plugin_from_counts(nmi_counts[..., None])
        nmi_scores = torch.where(pair_defined, scores, math.nan)
    if ncmi_counts is not None:
        reference = estimator == "reference"
        scores = _reference_from_counts(ncmi_counts[0]) if reference else _plugin_from_counts(ncmi_counts)
        defined = pair_defined & torch.stack([ranges.defined[i] for i in rest_rows])
        ncmi_scores = torch.where(defined, scores, math.nan)
    return nmi_scores, ncmi_scores


def _working_dtype(tensors: Sequence[Tensor]) -> torch.dtype:
    """float32 holds float16/bfloat16/float32 values exactly; anything else needs float64."""
    narrow = (torch.float32, torch.float16, torch.bfloat16)
    return torch.float32 if all(t.dtype in narrow for t in tensors) else torch.float64


class _Ranges(NamedTuple):
    """Per-row (per-variable) extent of the ARM.md §2 edges, in float64 except ``low``."""

    low: Tensor
    low64: Tensor
    flat: Tensor
    start: Tensor
    span: Tensor
    defined: Tensor

    def head(self, rows: int) -> _Ranges:
        """The first ``rows`` variables only."""
        return _Ranges(*(field[:rows] for field in self))


def _ranges(low: Tensor, high: Tensor) -> _Ranges:
    low64, high64 = low.double(), high.double()
    flat = low64 == high64
    start = torch.where(flat, low64 - 0.5, low64)
    span = torch.where(flat, high64 + 0.5, high64) - start
    # NaN or infinity in a row leaves its span NaN or infinite.
    return _Ranges(low, low64, flat, start, span, span < math.inf)


def _bin(values: Tensor, ranges: _Ranges, bins: int) -> Tensor:
    """Exact ARM.md §2 bin index (int32) of every element, each row on its own range.

    No float64 copy of the data is needed: for a float32 v and a float64 edge
    e, ``v >= e`` exactly when v is at least the smallest float32 not below e.
    Two bins take one comparison with the middle edge. Otherwise a float32
    estimate computed half a bin low (its rounding error is about 1e-5 bins,
    so it is the true bin or the one below) is settled by one comparison with
    the next edge, looked up in a table of rounded-up edges. Large
    temporaries are reused: fresh pages cost more than this arithmetic.
    """
    dtype, device = values.dtype, values.device
    rows = values.shape[0]
    k = torch.arange(1, bins, dtype=torch.float64, device=device)
    interior = ranges.start[:, None] + k * (ranges.span[:, None] / bins)
    edges = _round_up(interior, dtype)
    if bins == 2:
        return torch.ge(values, edges, out=torch.empty(values.shape, dtype=torch.int32, device=device))

    # Row r's entries r*bins .. r*bins+bins-1 are where bins 0 .. bins-1 end; the last never does.
    inf = torch.full((rows, 1), math.inf, dtype=dtype, device=device)
    table = torch.cat([edges, inf], dim=1).view(-1)
    row_start = torch.arange(0, rows * bins, bins, dtype=torch.int32, device=device)[:, None]
    # Halving keeps v - min finite when the span exceeds the dtype's largest value.
    shrink = torch.where(ranges.span > torch.finfo(dtype).max, 0.5, 1.0).double()
    # A constant row sits in one bin, found from its edges alone.
    flat_bin = (ranges.low64[:, None] >= interior).sum(1).double()
    scale = torch.where(ranges.flat, 0.0, bins / ranges.span / shrink)
    base = torch.where(ranges.flat, flat_bin, -0.5)
    per_row = torch.stack([shrink, ranges.low64 * shrink, scale, base], dim=1).to(dtype)
    shrink, shrunk_low, scale, base = per_row.split(1, dim=1)
    # Truncating an estimate in (-1, 0) gives 0, which the clamp would anyway; the clamp
    # keeps rows with NaN or infinity (whose scores are NaN) inside the table.
    estimate = values.mul(shrink).sub_(shrunk_low).mul_(scale).add_(base).int().clamp_(0, bins - 1)
    entry = estimate.add_(row_start)
    upper = table.index_select(0, entry.view(-1)).view(values.shape)
    # Element-wise, so the 0/1 results may overwrite the edges they are compared with.
    same_width = torch.int32 if dtype == torch.float32 else torch.int64
    passed = torch.ge(values, upper, out=upper.view(same_width))
    return entry.add_(passed).sub_(row_start)


def _round_up(edges: Tensor, dtype: torch.dtype) -> Tensor:
    """Smallest ``dtype`` value not below each float64 edge: ``v >= e`` iff ``v >= result``."""
    if dtype == torch.float64:
        return edges
    rounded = edges.to(dtype)
    above = torch.nextafter(rounded, torch.full_like(rounded, math.inf))
    return torch.where(rounded.double() < edges, above, rounded)


def _histograms(
    fine: Tensor | None,
    nmi_bins: int | None,
    coarse: Tensor | None,
    ncmi_bins: int | None,
    rest_rows: Sequence[int],
    n_mod: int,
    order: Tensor | None = None,
) -> tuple[Tensor | None, Tensor | None]:
    """Every modality's NMI table [t, m, x, f] and NCMI table [t, m, x, f, rest], from one counting pass.

    t is 0 only, or with ``order`` 0 and 1: 1 holds the same tables with the fused row's elements
    taken in that order (the null: same marginals, pairing undone), counted in the same pass: a cell key is the sum of a
    part without the fused variable, built once, and the fused variable's part, so the null
    costs one permuted row and one more add, not a second binning and keying. Block offsets
    come from on-device arithmetic, because copying a host list to the device would synchronise.
    """
    some = fine if fine is not None else coarse
    assert some is not None
    nmi_cells = nmi_bins**2 if fine is not None and nmi_bins else 0
    ncmi_cells = ncmi_bins**3 if coarse is not None and ncmi_bins else 0
    product = nmi_cells * ncmi_cells
    combined = 0 < product <= _MAX_PRODUCT_CELLS
    cells = n_mod * (product if combined else nmi_cells + ncmi_cells)
    if cells * (1 if order is None else 2) > torch.iinfo(torch.int32).max:
        fine = fine.long() if fine is not None else None
        coarse = coarse.long() if coarse is not None else None
        some = fine if fine is not None else coarse
        assert some is not None
    modality = torch.arange(n_mod, dtype=some.dtype, device=some.device)[:, None]

    # keys[t, part, m, i]: part 0 (when combined, the only one) holds the NMI keys, then the NCMI keys.
    copies = 1 if order is None else 2
    n_parts = 2 if fine is not None and coarse is not None and not combined else 1
    keys = torch.empty((copies, n_parts, n_mod, some.shape[1]), dtype=some.dtype, device=some.device)
    base = keys[0]  # the keys less the fused variable's share, filled in place
    shares: list[Tensor] = []
    if fine is not None:
        torch.mul(fine[1 : n_mod + 1], nmi_bins, out=base[0]).add_(modality * nmi_cells)
        if combined:
            base[0].mul_(ncmi_cells)
        shares.append(fine[0] * (ncmi_cells if combined else 1))
    if coarse is not None:
        assert ncmi_bins is not None
        part = base[-1]
        if combined:
            shares[0].add_(coarse[0], alpha=ncmi_bins)
        else:
            part.copy_((modality * ncmi_cells + n_mod * nmi_cells).expand_as(part))
            shares.append(coarse[0] * ncmi_bins)
        part.add_(coarse[1 : n_mod + 1], alpha=ncmi_bins**2)
        for m, row in enumerate(rest_rows):
            part[m].add_(coarse[row])
    fused = torch.stack(shares)
    if order is not None:
        # Row by row: a gather from a vector is several times faster than along a matrix's last axis.
        null = torch.empty_like(fused)
        for row, into in zip(fused, null):
            torch.index_select(row, 0, order, out=into)
        null.add_(cells)
        torch.add(base, null[:, None], out=keys[1])
    base.add_(fused[:, None])
    return _tables(_count(keys, copies * cells), copies, fine, nmi_bins, coarse, ncmi_bins, n_mod, combined)


def _tables(
    counts: Tensor,
    copies: int,
    fine: Tensor | None,
    nmi_bins: int | None,
    coarse: Tensor | None,
    ncmi_bins: int | None,
    n_mod: int,
    combined: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """The NMI and NCMI tables laid out in ``copies`` histograms of cell keys by ``_histograms``, as views."""
    if combined:
        assert nmi_bins is not None and ncmi_bins is not None
        joint = counts.view(copies, n_mod, nmi_bins, nmi_bins, ncmi_bins, ncmi_bins, ncmi_bins)
        return joint.sum((4, 5, 6)), joint.sum((2, 3))
    per_copy = counts.view(copies, -1)
    nmi_cells = nmi_bins**2 if fine is not None and nmi_bins else 0
    nmi_counts = ncmi_counts = None
    if fine is not None and nmi_bins is not None:
        nmi_counts = per_copy[:, : n_mod * nmi_cells].view(copies, n_mod, nmi_bins, nmi_bins)
    if coarse is not None and ncmi_bins is not None:
        ncmi_counts = per_copy[:, n_mod * nmi_cells :].reshape(copies, n_mod, ncmi_bins, ncmi_bins, ncmi_bins)
    return nmi_counts, ncmi_counts


def _count(keys: Tensor, cells: int) -> Tensor:
    """Histogram of cell keys as float64, its length fixed by ``cells``.

    CUDA's bincount reads the largest key back to the host, so other devices
    add into a preallocated table instead, and so does a compiled graph, which
    is then the same graph on every device.
    """
    keys = keys.reshape(-1)
    if keys.device.type == "cpu" and not torch.compiler.is_compiling():
        return torch.bincount(keys, minlength=cells).double()
    ones = torch.ones((), dtype=torch.float64, device=keys.device).expand(keys.numel())
    return torch.zeros(cells, dtype=torch.float64, device=keys.device).index_add_(0, keys, ones)


def _plugin_from_counts(joint: Tensor) -> Tensor:
    """2 I(X;Y|Z) / (H(X|Z) + H(Y|Z)) per modality m of joint[t, m, x, y, z]; 0 if that is 0/0.
    A second table along t (the same elements with their pairing undone) has the I it measures,
    the plug-in's bias, taken off first; the entropies stay the real table's. Both tables go
    through the same few operations, which is most of the cost at per-step sizes.

    With a single z this is NMI. Every term is a count times the log of a
    ratio of counts, so the 1/N factors cancel, a variable fixed by Z gives
    exactly 0 rather than rounding noise.
    """
    copies, n_mod = joint.shape[:2]
    mutual, spread = (v.view(copies, n_mod) for v in _mutual_and_spread(joint.flatten(0, 1)))
    excess = mutual[0] - mutual[1] if copies == 2 else mutual[0]
    return torch.where(spread[0] < 0, -2 * excess / spread[0], 0.0)


def _mutual_and_spread(joint: Tensor) -> tuple[Tensor, Tensor]:
    """N I(X;Y|Z), and minus N (H(X|Z) + H(Y|Z)), per leading index of joint[m, x, y, z]."""
    cxz = joint.sum(2, keepdim=True)
    cyz = joint.sum(1, keepdim=True)
    cz = cxz.sum(1, keepdim=True).clamp_min(1)
    mutual = torch.xlogy(joint, joint * cz / (cxz * cyz).clamp_min(1)).sum((1, 2, 3))
    # Sums of count * log(share) <= 0: minus the conditional entropies, times N.
    spread = torch.xlogy(cxz, cxz / cz).sum((1, 2, 3)) + torch.xlogy(cyz, cyz / cz).sum((1, 2, 3))
    return mutual, spread


def _reference_from_counts(joint: Tensor) -> Tensor:
    """The published estimator, defects included (ARM.md §2), per leading index of joint[m, x, y, z].

    Its normaliser pz is indexed by z but broadcast against each table's first
    axis, as numpy's ``T / pz[:, None, None]`` does.
    """
    p = joint / joint.sum((1, 2, 3), keepdim=True)
    pz = p.sum((1, 2))
    pz = torch.where(pz <= 0, 1e-10, pz)[:, :, None, None]

    def q(table: Tensor) -> Tensor:
        return -torch.xlogy(table, table).sum((1, 2, 3))

    q_xz = q(p.sum(2)[:, None] / pz)
    q_yz = q(p.sum(1)[:, None] / pz)
    q_xyz = q(p / pz)
    denominator = q_xz + q_yz
    return torch.where(denominator != 0, (denominator - q_xyz) / denominator, 0.0)
