"""The per-epoch dominance measures of ARM.md section 5, computed on the validation split.

Features are encoded once; every masked evaluation (masked accuracy, the
2^M subsets of the Shapley value, the contribution lens of ``armscope.lens``)
reuses them through the method's evaluation-time prediction only (the fusion
head unless the method has its own rule), with zeros for a masked modality.
A mid-fusion head (``CoalitionHead``: modules between the encoders' stages)
makes a modality's features depend on the others present, so there every
coalition is also encoded apart, with only its modalities, and masked
evaluations use those features. The measures are ``armscope.lens_measure``'s
``Tally``, shared with ``armscope.lens.measure`` for models of the user's own.
Everything stays on the device until one read-back at the end.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from armscope.data.base import Split
from armscope.lens import lens_terms
from armscope.lens_measure import Tally, lens_logits, macro_f1, shapley_values, subsets
from armscope.models.heads import MultimodalModel
from armscope.step import autocast

# The Shapley values and macro F1 live with the tally (``armscope.lens_measure``); named here too, where they were.
__all__ = [
    "Coalition", "CoalitionHead", "Encode", "Predict", "apart_coalitions", "encode_coalitions", "encode_split",
    "evaluate", "macro_f1", "shapley_values",
]
# Fused logits from one feature tensor per modality (Method.predict on the run's model).
Predict = Callable[[dict[str, Tensor]], Tensor]
# Features from inputs and the modalities wanted, as encoded with only those present (Method.encode on the
# run's model; None: all of them).
Encode = Callable[[dict[str, Tensor], "list[str] | None"], dict[str, Tensor]]
Coalition = frozenset[str]


@runtime_checkable
class CoalitionHead(Protocol):
    """A fusion head with modules between the encoders' stages (Greedy's MMTM blocks): mid-fusion.

    There zeroing a modality's features at the fusion input does not remove it, since the others took it
    in on the way; so every coalition is encoded apart (``Encode`` with its modalities) and masked with
    those features. The head adds measures of its own from every coalition's accuracy.
    """

    def coalition_measures(self, accuracy: Mapping[Coalition, Tensor]) -> dict[str, Tensor]: ...


@torch.no_grad()
def encode_split(
    model: MultimodalModel,
    split: Split,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    encode: Encode | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """Every modality's features on the whole split, and its labels."""
    encoded, labels = encode_coalitions(model, split, batch_size, device, precision, encode, [None])
    return encoded[0], labels


@torch.no_grad()
def encode_coalitions(
    model: MultimodalModel,
    split: Split,
    batch_size: int,
    device: torch.device,
    precision: str,
    encode: Encode | None,
    coalitions: list[list[str] | None],
) -> tuple[list[dict[str, Tensor]], Tensor]:
    """The features of each coalition (None: every modality) on the whole split, in one pass over it."""
    encode = encode or model.encode
    chunks: list[dict[str, list[Tensor]]] = [{} for _ in coalitions]
    labels: list[Tensor] = []
    for inputs, y in split.batches(batch_size, shuffle=False):
        inputs = {m: x.to(device, non_blocking=True) for m, x in inputs.items()}
        for kept, coalition in zip(chunks, coalitions):
            with autocast(device, precision):
                encoded = encode(inputs, coalition)
            for m, h in encoded.items():
                kept.setdefault(m, []).append(h.float())
        labels.append(y.to(device, non_blocking=True))
    return [{m: torch.cat(c) for m, c in kept.items()} for kept in chunks], torch.cat(labels)


def apart_coalitions(model: MultimodalModel) -> list[list[str]]:
    """The coalitions encoded apart: every proper non-empty one under a ``CoalitionHead``, else none."""
    if not isinstance(model.head, CoalitionHead):
        return []
    names = model.head.modalities
    return [list(subset) for size in range(1, len(names)) for subset in itertools.combinations(names, size)]


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
        apart = apart_coalitions(model)
        encoded, labels = encode_coalitions(model, split, batch_size, device, precision, encode, [None, *apart])
        coalitions = {frozenset(c): feats for c, feats in zip(apart, encoded[1:])}
        return _measures(model, encoded[0], labels, predict or model.head, coalitions)
    finally:
        model.train(was_training)


def _measures(
    model: MultimodalModel,
    feats: dict[str, Tensor],
    labels: Tensor,
    predict: Predict,
    coalitions: Mapping[Coalition, dict[str, Tensor]],
) -> dict[str, Any]:
    """Every subset predicted once on the whole split, from its features encoded apart where ``coalitions``
    has them: one batch for the tally ``armscope.lens.measure`` shares."""
    head = model.head
    names = head.modalities
    tally = Tally(names, head.n_classes)
    labels = tally.count(labels)
    zeros = {m: torch.zeros_like(h) for m, h in feats.items()}
    kept: dict[Coalition, Tensor] = {}
    for present in subsets(names):
        source = coalitions.get(present, feats)
        logits = predict({m: source[m] if m in present else zeros[m] for m in names})
        tally.add(present, logits, labels)
        if len(present) >= len(names) - 1:
            kept[present] = logits
    fused_logits, without = lens_logits(kept, names)
    terms = lens_terms(feats, names, fused_logits, without, labels)
    extra = head.coalition_measures(tally.accuracy()) if isinstance(head, CoalitionHead) else {}
    # What each of the lens's NMI and NCMI estimates pairs up: every validation sample's d features.
    return tally.record(terms, feats[names[0]].shape[1], extra)
