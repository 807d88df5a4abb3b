"""Exact Shapley values over every subset of modalities, as one integer matrix product.

A modality's Shapley value averages what it adds to every coalition of the others; with M modalities
that is a fixed linear map from the 2^M coalition values, so methods that need it on every sample or
every step (sample valuation, AGM's responses) apply one matrix instead of looping over coalitions.
A coalition is a bit mask: subset s holds modality j where bit j of s is set.
"""

from __future__ import annotations

from functools import lru_cache
from math import factorial

import torch
from torch import Tensor


def subset_masks(n_modalities: int) -> Tensor:
    """Row s keeps modality j where bit j of s is set: row 0 is the empty set, the last row every modality."""
    subsets = torch.arange(2**n_modalities)[:, None]
    bits = 2 ** torch.arange(n_modalities)
    return (subsets & bits) != 0


@lru_cache
def shapley_weights(n_modalities: int) -> Tensor:
    """M! times the Shapley weights, as a (2^M, M) integer matrix: phi = v W / M!.

    Column m holds |S|! (M - |S| - 1)! at the row of S + {m} and its negative at the row of S, for every S
    without m; integers, so that integer values give the exact rational before the one division. Cached (never
    written to): callers ask for it once a batch or a step.
    """
    weights = torch.zeros(2**n_modalities, n_modalities, dtype=torch.long)
    for subset in range(2**n_modalities):
        members = subset.bit_count()
        for m in range(n_modalities):
            if not subset >> m & 1:
                weight = factorial(members) * factorial(n_modalities - members - 1)
                weights[subset | 1 << m, m] += weight
                weights[subset, m] -= weight
    return weights


def shapley_values(values: Tensor) -> Tensor:
    """Exact Shapley values (..., M), in float64, from v (..., 2^M) indexed as ``subset_masks``' rows.

    The weighted sums are taken in v's dtype and divided by M! once: from integer v each value is the exact
    rational rounded once, so a value that sits on a threshold (sample valuation's copy bounds) is read as on it.
    """
    n_modalities = values.shape[-1].bit_length() - 1
    if values.shape[-1] != 2**n_modalities or n_modalities < 1:
        raise ValueError(f"v must hold one value per subset, 2^M of them; got {values.shape[-1]}")
    weights = shapley_weights(n_modalities).to(values.device, values.dtype)
    return (values.unsqueeze(-1) * weights).sum(-2).double() / factorial(n_modalities)


def pairwise_gap(values: Tensor) -> Tensor:
    """The mean over modality pairs of |phi_i - phi_j| (of any per-modality values): for two |phi_1 - phi_2|.

    BalanceBenchmark reports an imbalance degree beside performance and complexity; its toolkit logs
    only the Shapley values, and this is the unnormalised gap its paper describes as far as could be
    checked (``../shared/METHODS.md``), kept beside ``imbalance``, which divides by the values' sizes.
    """
    gaps = (values[:, None] - values[None, :]).abs()
    n = values.numel()
    return gaps.sum() / (n * (n - 1))
