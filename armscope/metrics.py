"""What each key of a run's epoch records means: the declarations every face reads.

A record in ``metrics.jsonl`` is a flat mapping of keys to values. What a key
is (its label, unit, whether higher is better, the run-detail chart it sits
on, whether training applied it or it was estimated afterwards and on what)
is declared once, here for the measures every run logs and in its method's
spec for a method's own keys, the way a torchmetrics metric carries its own
metadata. The console table, the dashboard's charts and compare view, the
seed-set summaries and the CSV header read these declarations instead of
lists of their own, so a plugin's metric shows everywhere without an edit.

Torch-free: the API serves the declarations from the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

MODALITY = "{m}"
Direction = Literal["higher", "lower"]
# applied: a value the training step used (an epoch mean where it changes per step);
# estimate: measured after the epoch's steps, on ``sample``; progress: where the run stands.
Basis = Literal["applied", "estimate", "progress"]
# What a mean or an estimate is taken over: the validation split (the run's val_size samples)
# or the epoch's training batches (its samples_seen increment).
Sample = Literal["validation", "training"]
KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.\{m\})?$")
# What a script logging through the SDK may name a value (wider than a declaration: `train/loss`), and how long
# a text value may be; the SDK checks both before spooling and the server again before storing.
LOGGED_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_./:-]{0,199}$")
MAX_LOGGED_TEXT = 200

# The run-detail charts of the measures every run logs.
ACCURACY = "Accuracy: fused and each modality alone"
CONTRIBUTION = "Contributions: Shapley share of the fused accuracy"
DOMINANCE = "Dominant modality per epoch"
LENS = "ARM: contribution score Φ and weight w"
INFORMATION = "Information: NMI and NCMI"
GRADIENTS = "Gradient norm per encoder"
LOSS = "Loss"

# How a chart draws the metrics declared on it:
# lines: a line per scalar and per modality of each per-modality metric, on one axis;
# stack: the one per-modality metric stacked on what is left of ``total`` (Shapley values summing to the
#   fused accuracy), the total drawn over it;
# strip: one cell per epoch coloured by the label-valued metric;
# panels: a panel per per-modality metric of the engine's; a method's per-modality metrics declared on it
#   are drawn dotted over the last panel, its scalars in a panel of their own.
Style = Literal["lines", "stack", "strip", "panels"]
OPEN_STYLES: frozenset[str] = frozenset({"lines", "panels"})  # where a method may declare its own metrics


@dataclass(frozen=True)
class Chart:
    """One of the engine's run-detail charts: ``name`` identifies it on the page, ``title`` is what
    metric declarations name in ``chart``. Charts a method declares under other titles are drawn
    as ``panels`` after these."""

    name: str
    title: str
    style: Style
    axis: str = ""
    total: str = ""
    height: int = 300


@dataclass(frozen=True)
class Metric:
    """One key of the epoch records, or one per modality when ``key`` ends in ``.{m}``.

    ``chart`` is the title of the run-detail chart it is drawn on (None: none;
    metrics with the same title share a chart). ``unit`` is shown beside
    values; ``"fraction"`` marks a value in [0, 1] shown as a percentage. ``better`` is None for a diagnostic that is neither
    good nor bad high (a gradient norm, a modulation coefficient). ``short`` is
    the compact column header (the console table); it defaults to the key's
    family. ``numeric`` is false only for a label-valued key (``dominant``). ``over`` names the family
    of the engine's panel a method's per-modality metric is drawn over on a ``panels`` chart (its last
    panel when empty). ``elements`` names the record key holding how many paired elements each
    value was estimated on (an information estimate's sample size), shown beside it.
    """

    key: str
    label: str
    chart: str | None
    basis: Basis
    sample: Sample | None = None
    unit: str = ""
    better: Direction | None = None
    short: str = ""
    description: str = ""
    numeric: bool = True
    over: str = ""
    elements: str = ""

    def __post_init__(self) -> None:
        if not KEY_PATTERN.match(self.key):
            raise ValueError(
                f"metric key {self.key!r} must be a name of letters, digits and '_', "
                "optionally followed by '.{m}' for one value per modality"
            )
        if self.basis == "estimate" and self.sample is None:
            raise ValueError(f"metric {self.key!r} is an estimate: say what it is estimated on (sample)")

    @property
    def per_modality(self) -> bool:
        return self.key.endswith(MODALITY)

    @property
    def family(self) -> str:
        """The key without its modality: ``ogm_coeff`` for ``ogm_coeff.{m}``."""
        return self.key.removesuffix("." + MODALITY)

    @property
    def selector(self) -> str:
        """How the compare view names the metric: ``ogm_coeff.*`` for every modality's, else the key."""
        return self.family + ".*" if self.per_modality else self.key

    @property
    def column(self) -> str:
        return self.short or self.family

    def keys(self, modalities: Sequence[str]) -> list[str]:
        """The record keys it stands for in a run of these modalities."""
        return [f"{self.family}.{m}" for m in modalities] if self.per_modality else [self.key]

    def matches(self, key: str) -> bool:
        if self.per_modality:
            family, dot, modality = key.partition(".")
            return bool(dot) and family == self.family and bool(modality)
        return key == self.key

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "short": self.column, "per_modality": self.per_modality, "selector": self.selector}


def check_declarations(metrics: Iterable[Metric], where: str) -> tuple[Metric, ...]:
    """The declarations, once no key is declared twice (here or among the common measures) and none is
    put on an engine chart that draws only the engine's measures (the contribution stack, the dominance strip)."""
    declared = tuple(metrics)
    seen = {m.key: "the measures every run logs" for m in COMMON}
    closed = {c.title: c for c in CHARTS if c.style not in OPEN_STYLES}
    for metric in declared:
        if metric.key in seen:
            raise ValueError(f"{where} declares metric {metric.key!r}, already declared by {seen[metric.key]}")
        if metric.chart in closed:
            raise ValueError(
                f"{where} declares metric {metric.key!r} on the chart {metric.chart!r}, which draws only the "
                f"engine's measures ({closed[metric.chart].style}); name a chart of its own"
            )
        seen[metric.key] = where
    return declared


def find(key: str, declarations: Iterable[Metric]) -> Metric | None:
    """The declaration a record key belongs to, if any."""
    return next((m for m in declarations if m.matches(key)), None)


def declared_order(keys: Iterable[str], declarations: Sequence[Metric]) -> list[str]:
    """``keys`` in the order of the declarations they belong to, a family's keys together in the order given;
    keys no declaration names come last, in the order given."""
    given = list(keys)
    unknown = len(declarations)
    rank = {key: next((i for i, m in enumerate(declarations) if m.matches(key)), unknown) for key in given}
    return sorted(given, key=rank.__getitem__)


def _estimate(key: str, label: str, chart: str | None, **details: Any) -> Metric:
    return Metric(key, label, chart, basis="estimate", sample="validation", **details)


def _lens(key: str, label: str, chart: str, short: str, what: str) -> Metric:
    """A term of the contribution lens every run is measured with (``armscope.lens``)."""
    return _estimate(
        key, label, chart, short=short, elements="lens_elements",
        description=f"{what}, on the validation set, defined identically for every method (the common lens: the "
        "model's own predictions, a fixed projection, the debiased estimator); not what ARM's training applied.",
    )


def _progress(key: str, label: str, **details: Any) -> Metric:
    return Metric(key, label, None, basis="progress", **details)


# The measures every run logs, in the order the faces show them (README "The measures").
COMMON: tuple[Metric, ...] = (
    _progress("epoch", "Epoch"),
    _progress("step", "Optimiser steps"),
    _progress("samples_seen", "Samples seen", unit="samples"),
    _estimate("val_acc", "Fused accuracy (val)", ACCURACY, unit="fraction", better="higher", short="acc"),
    _estimate("val_f1", "Fused macro F1 (val)", ACCURACY, unit="fraction", better="higher", short="f1"),
    Metric(
        "train_loss", "Training loss", LOSS, basis="applied", sample="training", better="lower",
        description="The mean cross-entropy of the epoch's training batches.",
    ),
    _estimate("val_loss", "Validation loss", LOSS, better="lower"),
    _estimate(
        "val_acc.{m}", "Masked accuracy per modality", ACCURACY, unit="fraction", short="acc(m)",
        description="Validation accuracy with the other modalities zeroed at the fusion input.",
    ),
    _estimate(
        "confidence.{m}", "Masked confidence per modality", None, unit="fraction", short="conf",
        description="Mean true-class probability with the other modalities zeroed.",
    ),
    _estimate(
        "shapley.{m}", "Contribution (Shapley) per modality", CONTRIBUTION, unit="fraction", short="shapley",
        description="Exact Shapley value of the validation accuracy over every subset of modalities.",
    ),
    _lens("nmi.{m}", "NMI per modality", INFORMATION, "nmi", "NMI(h_m; f) with f the lens's fixed projection"),
    _lens("ncmi.{m}", "NCMI per modality", INFORMATION, "ncmi", "NCMI(h_m; f | h_-m), h_-m the other features' mean"),
    _lens("arm_score.{m}", "ARM score Φ per modality", LENS, "arm_score", "ARM's contribution score Φ_m"),
    _lens("arm_weight.{m}", "ARM weight w per modality", LENS, "arm_w", "The weight ARM's ratio rule gives Φ"),
    _estimate(
        "lens_elements", "Validation lens elements per estimate", None, unit="elements", short="lens n",
        description="How many element pairs each NMI and NCMI of the validation lens is estimated on: "
        "the validation samples times the feature width.",
    ),
    Metric(
        "grad_norm.{m}", "Gradient norm per modality", GRADIENTS, basis="applied", sample="training",
        short="grad", description="Mean L2 norm of the encoder's gradient as applied, after any modulation.",
    ),
    _estimate(
        "dominant", "Dominant modality", DOMINANCE, numeric=False,
        description="The modality with the largest Shapley value.",
    ),
    _estimate(
        "imbalance", "Imbalance", None, better="lower",
        description="The spread of the Shapley values (largest minus smallest) over the sum of their sizes.",
    ),
    _estimate(
        "bb_imbalance", "Imbalance degree (BalanceBenchmark)", None, better="lower", short="bb_imb",
        description="The mean over modality pairs of the gap between their Shapley values (for two, |phi_1 - "
        "phi_2|), unnormalised, in accuracy points: BalanceBenchmark's measure as far as its paper could be "
        "checked (provisional).",
    ),
    _progress("epoch_seconds", "Epoch time", unit="s", better="lower"),
    _progress("train_seconds", "Training time", unit="s", better="lower"),
    _progress("samples_per_second", "Throughput", unit="samples/s", better="higher"),
    _progress("elapsed_seconds", "Elapsed time", unit="s"),
    _progress(
        "parameters", "Parameters", unit="numbers", better="lower", short="params",
        description="Every number the model learns (encoders and fusion head).",
    ),
    _progress(
        "flops_per_sample", "FLOPs per sample", unit="FLOPs", better="lower", short="flops",
        description="FLOPs of one evaluation-time prediction (encoders and the method's prediction) per sample, by "
        "torch's flop counter: a multiply-add counts 2 (BalanceBenchmark's MACs are half).",
    ),
    _progress(
        "peak_memory_mb", "Peak memory", unit="MiB", better="lower", short="mem",
        description="On a GPU the epoch's peak of allocated memory; on the CPU the process's peak resident size so "
        "far (which cannot be reset between epochs).",
    ),
)

# The engine's run-detail charts, in page order (the strip across the top, then two a row).
CHARTS: tuple[Chart, ...] = (
    Chart("dominance", DOMINANCE, "strip", height=150),
    Chart("contribution", CONTRIBUTION, "stack", "accuracy (stacked)", total="val_acc"),
    Chart("accuracy", ACCURACY, "lines", "validation accuracy"),
    Chart("arm", LENS, "panels"),
    Chart("info", INFORMATION, "panels"),
    Chart("grad", GRADIENTS, "lines", "mean L2 norm"),
    Chart("loss", LOSS, "lines", "cross-entropy"),
)

# What the compare view opens on: the contribution chart's stacked measure, every modality's.
HEADLINE: Metric = next(m for m in COMMON if m.chart == CONTRIBUTION and m.per_modality)


def charted(chart: Chart, declarations: Iterable[Metric]) -> list[Metric]:
    """The metrics drawn on ``chart``: the common measures declared on it, then a method's ``declarations``
    (which may repeat the common ones)."""
    return [m for m in dict.fromkeys((*COMMON, *declarations)) if m.chart == chart.title]
