"""ARM's contribution scores and asymmetric weights (ARM.md sections 1 and 3).

Used by the ARM method every step and by the per-epoch measures for every
method. Pure tensor code: no host synchronisation, so it can run on the GPU
inside the training step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from armscope.information import arm_information
from armscope.models.heads import ARMHead, Lens, arm_lens

GUARD_NONFINITE = 1
GUARD_SIGN = 2
GUARD_RANGE = 4
# Rows of the per-epoch sums a step adds to (``step_stats``, one column per modality): the applied
# weight and its square; the score and its square, and the count, over steps whose scores were finite;
# and the steps whose weighing scores (each step's own, or with running weighting their moving
# average) were all negative (the same in every column).
STEP_STATS = 6
WEIGHT, WEIGHT_SQ, SCORE, SCORE_SQ, FINITE, NEGATIVE = range(STEP_STATS)

GUARD_REASONS = {
    GUARD_NONFINITE: "a contribution score was not finite",
    GUARD_SIGN: "the contribution scores differed in sign (or one was zero)",
    GUARD_RANGE: "a weight fell outside [w_min, w_max]",
}


@dataclass
class ARMTerms:
    nmi: Tensor
    ncmi: Tensor
    score: Tensor
    weight: Tensor
    guard: Tensor


def confidence(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean softmax probability of the true class."""
    probs = torch.softmax(logits.float(), dim=1)
    return probs.gather(1, labels[:, None]).mean()


def asymmetric_weights(score: Tensor, w_min: float, w_max: float) -> tuple[Tensor, Tensor]:
    """w_m = geometric mean of the other scores / score_m, guarded.

    Returns the weights and a 0-d int tensor of GUARD_* bits. Non-finite or
    mixed-sign scores give neutral weights of 1 instead of a NaN or a sign flip.
    """
    n = score.numel()
    finite = torch.isfinite(score).all()
    same_sign = (score > 0).all() | (score < 0).all()
    usable = finite & same_sign
    log_abs = torch.where(usable, score, torch.ones_like(score)).abs().log()
    raw = torch.exp((log_abs.sum() - log_abs) / (n - 1) - log_abs)
    out_of_range = usable & ((raw < w_min) | (raw > w_max)).any()
    weight = torch.where(usable, raw.clamp(w_min, w_max), torch.ones_like(raw))
    guard = (
        (~finite).int() * GUARD_NONFINITE
        + (finite & ~same_sign).int() * GUARD_SIGN
        + out_of_range.int() * GUARD_RANGE
    )
    return weight, guard


def arm_terms(
    feats: dict[str, Tensor],
    lens: Lens,
    labels: Tensor,
    *,
    estimator: str,
    nmi_bins: int,
    ncmi_bins: int,
    w_min: float,
    w_max: float,
) -> ARMTerms:
    """Phi_m = p_f NMI(h_m; f) + p_-m (NMI(h_m; f) - NCMI(h_m; f | h_-m)), and the weights."""
    names = list(feats)
    with torch.no_grad():
        return _terms(
            [feats[m] for m in names], lens, names, labels, estimator, (nmi_bins, ncmi_bins), (w_min, w_max)
        )


def _terms(
    features: list[Tensor],
    lens: Lens,
    keys: list[str],
    labels: Tensor,
    estimator: str,
    bins: tuple[int, int],
    bounds: tuple[float, float],
) -> ARMTerms:
    """arm_terms on tensors and constants, the lens's per-modality entries taken in the order of ``keys``."""
    probe, fused_logits = lens.probe, lens.fused_logits
    rest_features = [lens.rest_features[k] for k in keys]
    rest_logits = [lens.rest_logits[k] for k in keys]
    nmi, ncmi = arm_information(features, probe, rest_features, *bins, estimator=estimator)
    p_fused = confidence(fused_logits, labels)
    p_rest = torch.stack([confidence(logits, labels) for logits in rest_logits])
    score = p_fused * nmi + p_rest.to(nmi.dtype) * (nmi - ncmi)
    weight, guard = asymmetric_weights(score, *bounds)
    return ARMTerms(nmi=nmi, ncmi=ncmi, score=score, weight=weight, guard=guard)


def arm_step(
    feats: dict[str, Tensor],
    head: ARMHead,
    labels: Tensor,
    step_stats: Tensor,
    *,
    ema_decay: float,
    estimator: str,
    reweight: bool = True,
    running: Tensor | None = None,
    score_decay: float = 0.9,
    nmi_bins: int,
    ncmi_bins: int,
    w_min: float,
    w_max: float,
    compiled: bool = False,
) -> tuple[Tensor, Tensor]:
    """All of ARM's work in one training step but the fusion: the weights and the guard bits.

    Returns the weights in the features' dtype, ready for the fusion, and the
    GUARD_* bits; moves the head's evaluation weights (their moving average,
    decay ``ema_decay``) and adds the step's weights and scores to ``step_stats``
    (rows ``WEIGHT`` .. ``NEGATIVE``), both in place. ``reweight`` false pins
    the applied weights to 1, the scores still measured. With ``running`` (see
    ``running_scores``) the weights come from the moving average of the
    scores (decay ``score_decay``), which this step moves in place, instead of
    from this step's scores alone.
    ``compiled`` runs all of it (the lens, the terms, the two updates) as one
    torch.compile graph. On a GPU the eager version is a couple of hundred
    tiny kernels, each a host call; compiled, it is a few dozen fused kernels
    behind one call, which is what keeps ARM within a few percent of the
    baseline where the step is bound by kernel launches. The same NMI and
    NCMI; the float32 softmax confidences, and so the scores, may differ in
    the last bits.
    """
    step = _compiled_step() if compiled else _step
    probe, classifier = head.lens_parameters
    with torch.no_grad():
        return step(
            [feats[m] for m in head.modalities],
            probe,
            classifier,
            labels,
            head.eval_weights,
            step_stats,
            ema_decay,
            estimator,
            (nmi_bins, ncmi_bins),
            (w_min, w_max),
            reweight,
            running,
            score_decay,
        )


def _step(
    features: list[Tensor],
    probe: tuple[Tensor, Tensor],
    classifier: tuple[Tensor, Tensor],
    labels: Tensor,
    eval_weights: Tensor,
    step_stats: Tensor,
    ema_decay: float,
    estimator: str,
    bins: tuple[int, int],
    bounds: tuple[float, float],
    reweight: bool,
    running: Tensor | None,
    score_decay: float,
) -> tuple[Tensor, Tensor]:
    """arm_step on plain tensors and constants: what torch.compile traces as one graph.

    The lens is keyed by position, not by modality name, so that runs with
    other modality names reuse the compiled graph.
    """
    keys = [str(i) for i in range(len(features))]
    lens = arm_lens(dict(zip(keys, features)), keys, probe, classifier)
    terms = _terms(features, lens, keys, labels, estimator, bins, bounds)
    weight, guard, weighing = terms.weight, terms.guard, terms.score
    if running is not None:
        weighing = _fold(running, terms.score, score_decay)
        weight, guard = asymmetric_weights(weighing, *bounds)
        guard = guard | (terms.guard & GUARD_NONFINITE)
    applied = weight if reweight else torch.ones_like(weight)
    eval_weights.mul_(ema_decay).add_(applied.to(eval_weights.dtype), alpha=1 - ema_decay)
    step_stats.add_(_step_row(applied, terms.score, weighing).to(step_stats.dtype))
    return applied.to(features[0].dtype), guard


def running_scores(modalities: int, device: torch.device | str = "cpu") -> Tensor:
    """The state of ARM's running weighting: the scores' moving average before its bias correction, then decay^steps.

    Per-step scores at small batches are as noisy as they are large, and a weight is
    their ratio: weighing with their moving average instead makes the weights a
    property of the model, not of the batch size (README, "Estimators").
    """
    state = torch.zeros(modalities + 1, dtype=torch.float64, device=device)
    state[-1] = 1.0
    return state


def _fold(running: Tensor, score: Tensor, decay: float) -> Tensor:
    """Fold a step's scores into ``running`` in place; the bias-corrected average to weigh with.

    A step whose scores are not all finite leaves the average as it was. Until one
    was folded in, the average is 0/0, NaN, which the weights' guard turns into 1.
    Arithmetic only, no host values: a CUDA graph can replay it.
    """
    finite = torch.isfinite(score).all().double()
    keep = finite * (decay - 1) + 1
    total, power = running[:-1], running[-1:]
    total.mul_(keep).add_(torch.nan_to_num(score.double(), nan=0.0, posinf=0.0, neginf=0.0) * (1 - keep))
    power.mul_(keep)
    return total / (1 - power)


def _step_row(weight: Tensor, score: Tensor, weighing: Tensor) -> Tensor:
    """What one step adds to ``step_stats``: a column per modality, the rows ``WEIGHT`` .. ``NEGATIVE``.

    ``weighing`` are the scores the weights were computed from: the step's own or their running average.
    """
    weight, score = weight.double(), score.double()
    finite = torch.isfinite(score)
    kept = torch.where(finite, score, 0.0)
    negative = (weighing < 0).all().double().expand_as(score)
    return torch.stack([weight, weight * weight, kept, kept * kept, finite.double(), negative])


# Compiled variants of _step one process may hold: a worker's runs differ in the number of
# modalities, estimator, precision and bins, and each combination is one more (Dynamo's default of
# 8, then failing under fullgraph, was reached by a worker serving a mixed sweep).
COMPILED_VARIANTS = 64


@functools.cache
def _compiled_step() -> Callable[..., tuple[Tensor, Tensor]]:
    """Built on first use: importing the compiler costs seconds that eager runs never pay."""
    import torch._dynamo.config as dynamo_config

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, COMPILED_VARIANTS)
    return torch.compile(_step, fullgraph=True)
