"""``mbsd``: modality-balanced self-distillation as BalanceBenchmark defines it (cited as Liu et al., WSDM 2023).

Each modality has a classifier of its own; for every pair of modalities the
one more confident in the true class teaches the other, weighted per sample by
the gap in that confidence. Its options and what it logs; the training code is
``armscope.methods.mbsd``.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from armscope.metrics import Metric
from armscope.models.sizes import UNIMODAL_HEADS
from armscope.specs import MethodSpec, ModulationWindow

CHART = "MBSD distillation"


class MBSDOptions(ModulationWindow):
    model_config = ConfigDict(extra="forbid")

    modulation_start: int = Field(
        1,
        ge=1,
        description="First epoch (1-based, inclusive) whose loss adds the distillation terms; before it, the loss "
        "is the fused and unimodal cross-entropies only. Start later to let each modality's classifier learn on its "
        "own before the stronger one starts teaching the weaker.",
    )
    modulation_end: int | None = Field(
        None,
        ge=1,
        description="Last epoch (inclusive) with the distillation terms; empty means the last epoch. After it, the "
        "fused and unimodal cross-entropies only (the terms are still measured and logged).",
    )



METRICS = (
    Metric(
        "mbsd_weight", "MBSD distillation weight", CHART, basis="applied", sample="training", short="mbsd_w",
        description="The mean over the epoch's training samples and all modality pairs of w = g * |s_a - s_b|, "
        "the weight each sample's distillation terms got (s_m the true-class probability of modality m's own "
        "classifier; g below). Measured in every step, applied only inside the modulation window.",
    ),
    Metric(
        "mbsd_gate", "MBSD share of pairs distilled", CHART, basis="applied", sample="training", unit="fraction",
        short="mbsd_g",
        description="The share of (training sample, modality pair) of the epoch in which at least one of the two "
        "modalities' own classifiers predicted the label (g = 1), the only ones whose w can be above 0.",
    ),
    Metric(
        "mbsd_rs", "MBSD logit-gap term", CHART, basis="applied", sample="training", short="mbsd_rs",
        description="The mean over the epoch's training samples of the pair-averaged w * RS, RS the mean over "
        "classes of the squared difference of the two modalities' logits: the term as added to the loss inside "
        "the modulation window.",
    ),
    Metric(
        "mbsd_kl", "MBSD distillation divergence term", CHART, basis="applied", sample="training", short="mbsd_kl",
        description="The mean over the epoch's training samples of the pair-averaged w * KL(p_strong || p_weak), "
        "the divergence of the weaker modality's class distribution from the stronger one's (the side with the "
        "higher true-class probability): the term as added to the loss inside the modulation window.",
    ),
    Metric(
        "mbsd_strong.{m}", "MBSD share of pairs the modality led", CHART, basis="applied", sample="training",
        unit="fraction", short="mbsd_strong",
        description="Of the (training sample, pair containing the modality) of the epoch, the share in which its "
        "own classifier gave the true class the higher probability, so that it taught the other (a tie counts for "
        "the modality listed first). With two modalities the two shares sum to 1.",
    ),
    Metric(
        "mbsd_acc.{m}", "MBSD unimodal training accuracy", CHART, basis="applied", sample="training",
        unit="fraction", better="higher", short="mbsd_acc",
        description="The accuracy of the modality's own classifier on the epoch's training batches, in train mode "
        "as the steps computed it, before each step's update.",
    ),
)

SPECS = [
    MethodSpec(
        "mbsd",
        "armscope.methods.mbsd:MBSD",
        MBSDOptions,
        "Self-distillation: per modality pair, the more confident unimodal classifier teaches the other.",
        metrics=METRICS,
        head=UNIMODAL_HEADS,
    )
]
