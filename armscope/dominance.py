"""The per-epoch dominance measures of ARM.md section 5, computed on the validation split.

Features are encoded once; every masked evaluation (masked accuracy, the
2^M subsets of the Shapley value, the contribution lens of ``armscope.lens``)
reuses them through the method's evaluation-time prediction only (the fusion
head unless the method has its own rule), with zeros for a masked modality.
Everything stays on the device until one read-back at the end.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from armscope.arm_terms import confidence
from armscope.data.base import Split
from armscope.lens import lens_terms
from armscope.models.heads import MultimodalModel
from armscope.shapley import pairwise_gap
from armscope.step import autocast

MAX_EXACT_SHAPLEY = 8
# Fused logits from one feature tensor per modality (Method.predict on the run's model).
Predict = Callable[[dict[str, Tensor]], Tensor]
# Features from inputs and the modalities wanted (Method.encode on the run's model; None: all of them).
Encode = Callable[[dict[str, Tensor], "list[str] | None"], dict[str, Tensor]]


def shapley_values(value: dict[frozenset[str], Tensor], players: list[str]) -> dict[str, Tensor]:
    """Exact Shapley values from a value function given on every subset of ``players``."""
    n = len(players)
    result: dict[str, Tensor] = {}
    for p in players:
        others = [q for q in players if q != p]
        total = torch.zeros((), dtype=torch.float64, device=next(iter(value.values())).device)
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                total = total + weight * (value[s | {p}].double() - value[s].double())
        result[p] = total
    return result


def macro_f1(pred: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """Macro F1 over the classes that occur in labels or predictions."""
    confusion = torch.bincount(labels * n_classes + pred, minlength=n_classes * n_classes)
    confusion = confusion.reshape(n_classes, n_classes).double()
    tp = confusion.diagonal()
    support = confusion.sum(1)
    predicted = confusion.sum(0)
    denom = support + predicted
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    present = (denom > 0).double()
    return (f1 * present).sum() / present.sum().clamp(min=1)


@torch.no_grad()
def encode_split(
    model: MultimodalModel,
    split: Split,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    encode: Encode | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    encode = encode or model.encode
    chunks: dict[str, list[Tensor]] = {m: [] for m in model.head.modalities}
    labels: list[Tensor] = []
    for inputs, y in split.batches(batch_size, shuffle=False):
        inputs = {m: x.to(device, non_blocking=True) for m, x in inputs.items()}
        with autocast(device, precision):
            encoded = encode(inputs, None)
        for m, h in encoded.items():
            chunks[m].append(h.float())
        labels.append(y.to(device, non_blocking=True))
    return {m: torch.cat(c) for m, c in chunks.items()}, torch.cat(labels)


@torch.no_grad()
def evaluate(
    model: MultimodalModel,
    split: Split,
    *,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    predict: Predict | None = None,
    encode: Encode | None = None,
) -> dict[str, Any]:
    """All validation measures of one epoch as plain Python numbers and strings.

    Encoders (``encode``, else each encoder on its own input) may run in bf16;
    the prediction (``predict``, else the fusion head) and every measure run in
    fp32 on the cached features.
    """
    was_training = model.training
    model.eval()
    try:
        feats, labels = encode_split(model, split, batch_size, device, precision, encode)
        return _measures(model, feats, labels, predict or model.head)
    finally:
        model.train(was_training)


def _measures(model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, predict: Predict) -> dict[str, Any]:
    head = model.head
    names = head.modalities
    if len(names) > MAX_EXACT_SHAPLEY:
        raise ValueError(f"exact Shapley values need at most {MAX_EXACT_SHAPLEY} modalities")
    zeros = {m: torch.zeros_like(h) for m, h in feats.items()}
    logits = predict(feats)
    pred = logits.argmax(1)
    out: dict[str, Tensor] = {
        "val_loss": F.cross_entropy(logits.float(), labels),
        "val_acc": (pred == labels).double().mean(),
        "val_f1": macro_f1(pred, labels, head.n_classes),
    }
    accuracy: dict[frozenset[str], Tensor] = {}
    without: dict[str, Tensor] = {}
    for size in range(len(names) + 1):
        for subset in itertools.combinations(names, size):
            masked = {m: feats[m] if m in subset else zeros[m] for m in names}
            subset_logits = predict(masked)
            accuracy[frozenset(subset)] = (subset_logits.argmax(1) == labels).double().mean()
            if size == 1:
                out[f"confidence.{subset[0]}"] = confidence(subset_logits, labels)
            if size == len(names) - 1:
                (missing,) = set(names) - set(subset)
                without[missing] = subset_logits
    for m in names:
        out[f"val_acc.{m}"] = accuracy[frozenset([m])]
    shapley = shapley_values(accuracy, names)
    terms = lens_terms(feats, names, logits, without, labels)
    for i, m in enumerate(names):
        out[f"shapley.{m}"] = shapley[m]
        out[f"nmi.{m}"] = terms.nmi[i]
        out[f"ncmi.{m}"] = terms.ncmi[i]
        out[f"arm_score.{m}"] = terms.score[i]
        out[f"arm_weight.{m}"] = terms.weight[i]
    values = torch.stack([shapley[m] for m in names])
    out["imbalance"] = (values.max() - values.min()) / values.abs().sum().clamp(min=1e-12)
    out["bb_imbalance"] = pairwise_gap(values)
    record: dict[str, Any] = dict(zip(out, torch.stack([v.double().reshape(()) for v in out.values()]).tolist()))
    record["dominant"] = names[int(torch.argmax(values))]
    # What each of the lens's NMI and NCMI estimates pairs up: every validation sample's d features.
    record["lens_elements"] = labels.numel() * feats[names[0]].shape[1]
    return record
