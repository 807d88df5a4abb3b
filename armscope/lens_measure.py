"""The per-epoch measures from each subset of modalities' predictions: for our runs and for any model.

Two callers compute the same measures. Our runs' evaluation (``armscope.dominance``) predicts every
subset of modalities once, on the validation features it cached; ``measure`` (re-exported as
``armscope.lens.measure``) predicts them batch by batch through a researcher's own ``predict``, on
their own model and loader. Both hand each subset's logits to a ``Tally``, which keeps sums only, on
the logits' device (correct counts, true-class probabilities, the fused loss and confusion matrix),
and build the record from it with one read-back. So masked accuracies, confidences, Shapley values,
dominance and imbalance have one definition. Over a single batch, as our runs add them, each sum over
the sample count is the mean our runs took before this module, to the bit on the CPU.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from armscope.arm_terms import ARMTerms
from armscope.information import ESTIMATORS
from armscope.lens import ESTIMATOR, lens_terms
from armscope.shapley import pairwise_gap

MAX_EXACT_SHAPLEY = 8
# A researcher's prediction: logits for a batch, as the loader yields it, with only the modalities in the set.
Predict = Callable[[Any, frozenset[str]], Tensor]
# Each modality's features and the fused features of a batch, as the loader yields it.
Features = Callable[[Any], tuple[Mapping[str, Tensor], Tensor]]
# A batch's labels, as class indices.
Label = Callable[[Any], Tensor]


def subsets(names: Sequence[str]) -> list[frozenset[str]]:
    """Every subset of ``names`` by size: the empty set first, all of them last."""
    return [frozenset(s) for size in range(len(names) + 1) for s in itertools.combinations(names, size)]


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


def confusion_matrix(pred: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """Counts of (true class, predicted class) as an integer matrix.

    Added into a table of fixed size, where ``bincount`` on CUDA would read the largest key back.
    """
    keys = labels * n_classes + pred
    ones = torch.ones((), dtype=torch.int64, device=keys.device).expand(keys.numel())
    counts = torch.zeros(n_classes * n_classes, dtype=torch.int64, device=keys.device).index_add_(0, keys, ones)
    return counts.reshape(n_classes, n_classes)


def f1_from_confusion(confusion: Tensor) -> Tensor:
    """Macro F1 over the classes that occur in labels or predictions."""
    confusion = confusion.double()
    tp = confusion.diagonal()
    denom = confusion.sum(1) + confusion.sum(0)
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    present = (denom > 0).double()
    return (f1 * present).sum() / present.sum().clamp(min=1)


def macro_f1(pred: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """Macro F1 over the classes that occur in labels or predictions."""
    return f1_from_confusion(confusion_matrix(pred, labels, n_classes))


def _check_modalities(names: Sequence[str]) -> list[str]:
    """The modality names, once they are distinct strings, few enough for exact Shapley values."""
    if isinstance(names, str):
        raise ValueError(f"modalities must be a sequence of names, got the string {names!r}")
    names = list(names)
    if not all(isinstance(m, str) for m in names) or len(set(names)) != len(names):
        raise ValueError(f"modalities must be distinct names, got {names}")
    if len(names) > MAX_EXACT_SHAPLEY:
        raise ValueError(
            f"exact Shapley values need at most {MAX_EXACT_SHAPLEY} modalities (2^M predictions of every "
            f"batch), got {len(names)}: {names}"
        )
    return names


class Tally:
    """Sums over the validation samples of every subset's predictions, kept on the device of the logits.

    ``count`` takes each batch's labels, ``add`` each subset's logits for them; ``record`` reads the
    measures back once. Only sums are kept, so memory does not grow with the number of batches.
    """

    def __init__(self, names: Sequence[str], n_classes: int) -> None:
        self.names = _check_modalities(names)
        self.n_classes = n_classes
        self.samples = 0
        self._full = frozenset(self.names)
        self._correct: dict[frozenset[str], Tensor] = {}
        self._true_probability: dict[str, Tensor] = {}
        self._invalid: Tensor | None = None
        self._loss: Tensor | None = None
        self._confusion: Tensor | None = None

    def count(self, labels: Tensor) -> Tensor:
        """Counts a batch's samples and returns its labels, ready to score predictions against.

        A label outside the classes is counted, for ``record`` to report (checking it here would wait
        for the device), and clamped, so that nothing fails on it before then.
        """
        self.samples += labels.shape[0]
        self._invalid = _plus(self._invalid, ((labels < 0) | (labels >= self.n_classes)).sum())
        return labels.clamp(0, self.n_classes - 1)

    def add(self, present: frozenset[str], logits: Tensor, labels: Tensor) -> None:
        """Adds one batch's logits predicted with only the modalities in ``present``."""
        pred = logits.argmax(1)
        self._correct[present] = _plus(self._correct.get(present), (pred == labels).sum())
        if len(present) == 1:
            (m,) = present
            probability = torch.softmax(logits.float(), dim=1).gather(1, labels[:, None]).sum()
            self._true_probability[m] = _plus(self._true_probability.get(m), probability)
        if present == self._full:
            self._loss = _plus(self._loss, F.cross_entropy(logits.float(), labels, reduction="sum"))
            self._confusion = _plus(self._confusion, confusion_matrix(pred, labels, self.n_classes))

    def accuracy(self) -> dict[frozenset[str], Tensor]:
        """The accuracy of every subset's predictions so far, on the device."""
        return {s: correct.double() / self.samples for s, correct in self._correct.items()}

    def record(
        self, terms: ARMTerms | None = None, feature_width: int = 0, extra: Mapping[str, Tensor] | None = None
    ) -> dict[str, Any]:
        """The measures as plain Python numbers and names, read back from the device in one transfer.

        With the lens's ``terms`` (modalities in ``names`` order) it adds their NMI, NCMI, score and weight
        per modality and ``lens_elements``: the samples times ``feature_width``, what each estimate pairs.
        ``extra`` measures (0-d tensors, a head's own) are read back with the others.
        """
        names, full, n = self.names, self._full, self.samples
        accuracy = self.accuracy()
        out: dict[str, Tensor] = {
            "val_loss": _summed(self._loss) / n,
            "val_acc": accuracy[full],
            "val_f1": f1_from_confusion(_summed(self._confusion)),
        }
        out.update({f"confidence.{m}": self._true_probability[m] / n for m in names})
        out.update({f"val_acc.{m}": accuracy[frozenset([m])] for m in names})
        shapley = shapley_values(accuracy, names)
        for i, m in enumerate(names):
            out[f"shapley.{m}"] = shapley[m]
            if terms is not None:
                out.update(_lens_entries(terms, i, m))
        values = torch.stack([shapley[m] for m in names])
        out["imbalance"] = (values.max() - values.min()) / values.abs().sum().clamp(min=1e-12)
        out["bb_imbalance"] = pairwise_gap(values)
        out.update(extra or {})
        numbers = torch.stack([v.double().reshape(()) for v in (*out.values(), _summed(self._invalid))]).tolist()
        if numbers.pop():
            raise ValueError(f"labels must be class indices 0..{self.n_classes - 1}; some were outside")
        record: dict[str, Any] = dict(zip(out, numbers))
        record["dominant"] = max(names, key=lambda m: record[f"shapley.{m}"])
        if terms is not None:
            record["lens_elements"] = n * feature_width
        return record


def _plus(total: Tensor | None, value: Tensor) -> Tensor:
    """``total + value``, where no total yet is none: the first batch's value stands as it is."""
    return value if total is None else total + value


def _summed(total: Tensor | None) -> Tensor:
    if total is None:
        raise ValueError("nothing was counted: no batch reached the tally")
    return total


def _lens_entries(terms: ARMTerms, i: int, m: str) -> dict[str, Tensor]:
    return {
        f"nmi.{m}": terms.nmi[i],
        f"ncmi.{m}": terms.ncmi[i],
        f"arm_score.{m}": terms.score[i],
        f"arm_weight.{m}": terms.weight[i],
    }


def lens_logits(kept: Mapping[frozenset[str], Tensor], names: Sequence[str]) -> tuple[Tensor, dict[str, Tensor]]:
    """The fused logits and, per modality m, those predicted without m, from logits kept per subset."""
    full = frozenset(names)
    return kept[full], {m: kept[full - {m}] for m in names}


def measure(
    predict: Predict,
    loader: Iterable[Any],
    *,
    modalities: Sequence[str],
    n_classes: int,
    features: Features | None = None,
    label: Label | None = None,
    model: torch.nn.Module | None = None,
    estimator: str = ESTIMATOR,
) -> dict[str, Any]:
    """The per-epoch contribution measures of any PyTorch model, with the keys and meanings of our runs.

    ``predict(batch, present)`` returns the logits (samples x ``n_classes``) of a batch, as ``loader``
    yields it (moved nowhere), predicted with only the modalities in ``present``, a frozenset of
    ``modalities``: how an absent modality is removed (zeroed input, zeroed or mean features, a learned
    token) is the model's own rule, and it is called for all 2^M subsets of every batch. ``label(batch)``
    gives its class indices (default ``batch["label"]`` for a mapping, else ``batch[-1]``).

    Returns a flat dict of plain Python numbers and names: ``val_acc``, ``val_loss``, ``val_f1``, per
    modality ``val_acc.<m>`` and ``confidence.<m>`` (only m present), exact ``shapley.<m>`` of the
    accuracy (summing to v(all) - v(empty)), ``dominant``, ``imbalance`` and ``bb_imbalance``.

    ``features(batch)`` returns ``(per-modality features, fused features)``, each with a row per sample
    (further dimensions are flattened); with it the record adds the lens's ``nmi.<m>``, ``ncmi.<m>``,
    ``arm_score.<m>``, ``arm_weight.<m>`` and ``lens_elements``, as ``armscope.lens`` defines them: p_f
    is the fused prediction's mean true-class probability, p_-m that of ``predict`` without m, h_-m the
    mean of the other modalities' features, and f the lens's fixed random projection of the fused
    features, to the modalities' width. The fused features are what the model's classifier reads, so f
    is an untrained probe of the model's own fusion, as ARM's probe P is of its concatenated features;
    passing the concatenation of the modalities' features (in ``modalities`` order) gives exactly our
    runs' f, so the terms compare with theirs; another fusion (a sum, attention, a token) gives terms
    that compare across epochs and runs of that model. Every modality's features need one width, since
    h_m, f and h_-m are paired element by element; unequal widths are refused. The terms are estimated
    on the whole set at once (``estimator``: "debiased", as our runs, or "plugin", "reference"), so
    features, fused features and M + 1 logits of every sample are kept on the device; without
    ``features`` only sums are.

    It runs under ``torch.no_grad``. Given ``model``, it is put in eval mode and every submodule's own
    mode is restored afterwards (a backbone frozen in eval mode stays so); without it no mode is
    touched: ``predict`` is a closure this function cannot see into, so set the mode yourself. Sums stay
    on the device the logits come back on (labels and features are moved there) until one read-back at
    the end.
    """
    tally = Tally(modalities, n_classes)
    _check_settings(tally.names, n_classes, estimator)
    lens = _LensInputs(features, tally.names) if features is not None else None
    with _evaluating(model), torch.no_grad():
        for batch in loader:
            _measure_batch(tally, lens, batch, predict, label or default_label)
    if tally.samples == 0:
        raise ValueError("the loader yielded no samples: there is nothing to measure")
    if lens is None:
        return tally.record()
    return tally.record(lens.terms(estimator), lens.width)


def default_label(batch: Any) -> Tensor:
    """``batch["label"]`` for a mapping, else the batch's last item."""
    if isinstance(batch, Mapping):
        if "label" not in batch:
            raise ValueError(f"the batch is a mapping without a 'label' key (keys: {sorted(batch)}); pass label=")
        return batch["label"]
    return batch[-1]


def _check_settings(names: list[str], n_classes: int, estimator: str) -> None:
    if len(names) < 2:
        raise ValueError(f"a contribution needs at least two modalities, got {names}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be a whole number of at least 2, got {n_classes!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of: {', '.join(ESTIMATORS)}")


@contextmanager
def _evaluating(model: torch.nn.Module | None) -> Iterator[None]:
    """``model`` in eval mode inside, every submodule's own mode restored after."""
    modes = [(module, module.training) for module in model.modules()] if model is not None else []
    if model is not None:
        model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _measure_batch(tally: Tally, lens: _LensInputs | None, batch: Any, predict: Predict, label: Label) -> None:
    """Adds one batch's predictions of every subset to ``tally`` and, where the lens is measured, to ``lens``."""
    labels = _labels(label(batch))
    rows = labels.shape[0]
    names = tally.names
    outputs = {present: _logits(predict(batch, present), present, rows, tally.n_classes) for present in subsets(names)}
    device = outputs[frozenset(names)].device
    labels = tally.count(labels.to(device, non_blocking=True))
    for present, logits in outputs.items():
        tally.add(present, logits, labels)
    if lens is not None:
        lens.add(batch, outputs, labels)


@dataclass
class _LensInputs:
    """What the lens needs of every sample, gathered batch by batch on the device, where the logits are: its
    estimators bin the whole set at once."""

    features: Features
    names: list[str]
    feats: dict[str, list[Tensor]] = field(default_factory=dict)
    fused: list[Tensor] = field(default_factory=list)
    logits: dict[frozenset[str], list[Tensor]] = field(default_factory=dict)
    labels: list[Tensor] = field(default_factory=list)

    def add(self, batch: Any, outputs: dict[frozenset[str], Tensor], labels: Tensor) -> None:
        """Keeps the batch's features, fused features and labels, and the logits of all and all-but-one modalities."""
        feats, fused = _features(self.features(batch), self.names, labels.shape[0])
        for m, h in feats.items():
            self.feats.setdefault(m, []).append(h.to(labels.device))
        self.fused.append(fused.to(labels.device))
        full = frozenset(self.names)
        for present in (full, *(full - {m} for m in self.names)):
            self.logits.setdefault(present, []).append(outputs[present])
        self.labels.append(labels)

    @property
    def width(self) -> int:
        """Every modality's feature width (one, as ``_features`` checked)."""
        return self.feats[self.names[0]][0].shape[1]

    def terms(self, estimator: str) -> ARMTerms:
        feats = {m: torch.cat(self.feats[m]) for m in self.names}
        kept = {present: torch.cat(chunks) for present, chunks in self.logits.items()}
        fused_logits, without = lens_logits(kept, self.names)
        labels, fused = torch.cat(self.labels), torch.cat(self.fused)
        return lens_terms(feats, self.names, fused_logits, without, labels, fused=fused, estimator=estimator)


def _labels(labels: Any) -> Tensor:
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be a 1-d tensor of class indices, got {labels.dtype} of shape {tuple(labels.shape)}"
        )
    return labels.long()


def _logits(logits: Any, present: frozenset[str], rows: int, n_classes: int) -> Tensor:
    if not isinstance(logits, Tensor):
        raise ValueError(f"predict(batch, {sorted(present)}) must return a tensor of logits, got {type(logits).__name__}")
    if tuple(logits.shape) != (rows, n_classes):
        raise ValueError(
            f"predict(batch, {sorted(present)}) returned logits of shape {tuple(logits.shape)}; expected "
            f"({rows}, {n_classes}): a row per sample of the batch, a column per class (n_classes={n_classes})"
        )
    return logits


def _features(returned: Any, names: list[str], rows: int) -> tuple[dict[str, Tensor], Tensor]:
    """The features(batch) result checked: every modality's, one width, a row per sample; flattened, float32."""
    if not (isinstance(returned, tuple) and len(returned) == 2 and isinstance(returned[0], Mapping)):
        raise ValueError("features(batch) must return (a mapping of each modality's features, the fused features)")
    per_modality, fused = returned
    unknown, missing = sorted(set(per_modality) - set(names)), [m for m in names if m not in per_modality]
    if unknown or missing:
        raise ValueError(
            f"features(batch) must return the features of exactly the modalities {names}; "
            f"unknown: {unknown}, missing: {missing}"
        )
    flat = {m: _rows(per_modality[m], f"features of {m!r}", rows) for m in names}
    widths = {m: h.shape[1] for m, h in flat.items()}
    if len(set(widths.values())) > 1:
        listed = ", ".join(f"{m} {w}" for m, w in widths.items())
        raise ValueError(
            f"every modality's features need one width (h_m, f and h_-m are paired element by element), got {listed}"
        )
    return flat, _rows(fused, "fused features", rows)


def _rows(value: Any, what: str, rows: int) -> Tensor:
    if not isinstance(value, Tensor) or value.dim() < 2 or value.shape[0] != rows:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"the {what} must be a tensor with a row per sample ({rows} in this batch), got {shape}")
    return value.reshape(rows, -1).float()


