"""``pmr``: PMR, Prototypical Modal Rebalance (Fan et al., CVPR 2023): its options and what it logs.

The training code is ``armscope.methods.pmr``.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from armscope.metrics import Metric
from armscope.specs import MethodSpec, ModulationWindow

CHART = "PMR rebalance"


class PMROptions(ModulationWindow):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(
        1.0,
        ge=0,
        le=10,
        description="Weight of the prototypical cross-entropy added for each weaker modality (the authors' 1.0; "
        "BalanceMM uses 0.6). Larger pulls the weak encoder's features towards its class prototypes harder; "
        "0 turns PMR into plain joint training with its diagnostics logged.",
    )
    momentum: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="mu in P <- (1 - mu) * P_new + mu * P_old, the share of last epoch's prototypes kept (the "
        "authors' 0.2; BalanceMM 0.5). Raise it when prototypes from few batches jump between epochs.",
    )
    prototype_fraction: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Share of the training batches (the first ceil(fraction x batches), at least one) whose "
        "class means give the prototypes each epoch; the authors use a tenth. Raise it when classes are many "
        "or batches small, so that every class is seen.",
    )
    modulation_start: int = Field(1, ge=1, description="First epoch (1-based, inclusive) that adds the prototype loss.")
    modulation_end: int | None = Field(
        None,
        ge=1,
        description="Last epoch (1-based, inclusive) that adds the prototype loss; empty means the whole run. The "
        "authors stop early (0-based epoch 100 of 150, i.e. epoch 101 here) and train the rest with plain "
        "cross-entropy; set about two thirds of the epochs to follow them.",
    )



METRICS = (
    Metric(
        "pmr_score.{m}", "PMR prototype confidence per modality", CHART, basis="applied", sample="training",
        unit="fraction", short="pmr_p",
        description="The epoch mean over steps of score_m / batch size: each batch's mean probability that the "
        "prototype classifier (softmax of minus the distances to the class prototypes) gives the true class. "
        "A step boosts every modality whose score is below the largest.",
    ),
    Metric(
        "pmr_boosted.{m}", "PMR steps boosting the modality", CHART, basis="applied", sample="training",
        unit="fraction", short="pmr_on",
        description="The fraction of the epoch's steps whose beta_m was alpha (> 0): the modality's score was "
        "below the largest and the epoch was in the modulation window.",
    ),
    Metric(
        "pmr_pce.{m}", "PMR prototype cross-entropy per modality", CHART, basis="applied", sample="training",
        short="pmr_pce",
        description="The epoch mean over steps of L_PCE_m, the cross-entropy of the negative prototype distances; "
        "a step adds beta_m times it to the fused cross-entropy.",
    ),
    Metric(
        "pmr_proto_acc.{m}", "PMR prototype-classifier accuracy", CHART, basis="applied", sample="training",
        unit="fraction", short="pmr_acc",
        description="The fraction of the epoch's training samples whose nearest prototype (Euclidean, in the "
        "modality's features at that step) is of their class.",
    ),
    Metric(
        "pmr_drift.{m}", "PMR prototype drift per modality", CHART, basis="applied", sample="training",
        short="pmr_drift",
        description="||P_t - P_{t-1}||, the Frobenius norm of the change the epoch's prototype pass made to the "
        "modality's prototypes (after the momentum); 0 at a run's first epoch, which has no earlier prototypes.",
    ),
)

SPECS = [
    MethodSpec(
        "pmr",
        "armscope.methods.pmr:PMR",
        PMROptions,
        "Prototypical modal rebalance: prototype cross-entropy on the modalities whose prototype score lags.",
        metrics=METRICS,
    )
]
