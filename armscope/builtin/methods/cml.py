"""``cml``: Calibrating Multimodal Learning (Ma et al., ICML 2023): its options and what it logs.

Confidence, the maximum softmax probability, should not rise when a modality
is removed; a model whose confidence does rise leans on some modalities and
treats the others as noise. The training code is ``armscope.methods.cml``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from armscope.metrics import Metric
from armscope.specs import MethodSpec, ModulationWindow

CHART = "CML calibration"


class CMLOptions(ModulationWindow):
    model_config = ConfigDict(extra="forbid")

    lam: float = Field(
        0.1,
        ge=0,
        description="Weight of the calibration penalty beside the cross-entropies (the authors' beta/100 with "
        "their beta = 10; BalanceMM's lam). Raise it when confidence still rises after removals (cml_rise_fraction "
        "stays high); 0 keeps only the cross-entropies averaged over the removal chain.",
    )
    margin: float = Field(
        0.0,
        ge=0,
        description="Tolerance: a rise in confidence up to this much is not penalised (the authors' epsilon, 0). "
        "A small margin (0.01-0.05) stops the penalty fighting rises that are only noise.",
    )
    mask_corrections: bool = Field(
        True,
        description="The authors' 'trick 1': no penalty for a sample that is predicted wrongly with more "
        "modalities and correctly with fewer, where a rise in confidence is a correction, not over-confidence. "
        "false penalises every rise.",
    )
    reduction: Literal["sum", "mean"] = Field(
        "sum",
        description="How the per-sample penalties combine over a batch. sum: the authors' code, so the penalty's "
        "weight against the (batch-mean) cross-entropies grows with the batch size; mean: independent of the batch "
        "size (lam with mean equals lam / batch_size with sum).",
    )
    modulation_start: int = Field(
        1, ge=1, description="First epoch (1-based, inclusive) trained with CML's loss; before it, plain cross-entropy."
    )
    modulation_end: int | None = Field(
        None,
        ge=1,
        description="Last epoch (inclusive) trained with CML's loss; empty means the last epoch. After it, plain "
        "cross-entropy on the fused logits.",
    )



METRICS = (
    Metric(
        "cml_penalty", "CML calibration penalty", CHART, basis="applied", sample="training", better="lower",
        short="cml_pen",
        description="The epoch's mean over its steps of the calibration penalty before lam: per sample the sum over "
        "the M-1 removal steps of ReLU(conf_fewer - conf_more - margin) (masked as mask_corrections says), then "
        "summed or averaged over the batch as reduction says. Measured in every step; added to the loss only "
        "inside the modulation window.",
    ),
    Metric(
        "cml_rise_fraction", "CML share of removals that raised confidence", CHART, basis="applied",
        sample="training", unit="fraction", better="lower", short="cml_rise",
        description="Of all (sample, removal step) pairs of the epoch's training batches, the share whose maximum "
        "softmax probability rose when the next modality of the epoch's removal order was zeroed (no mask, no "
        "margin).",
    ),
    Metric(
        "cml_conf_change", "CML mean confidence change per removal", CHART, basis="applied", sample="training",
        short="cml_dconf",
        description="The mean over all (sample, removal step) pairs of the epoch's training batches of "
        "conf_fewer - conf_more, the change in maximum softmax probability when one more modality is zeroed; "
        "negative when removing modalities lowers confidence, as CML asks.",
    ),
)

SPECS = [
    MethodSpec(
        "cml",
        "armscope.methods.cml:CML",
        CMLOptions,
        "Calibrating multimodal learning: penalise confidence that rises when a modality is removed.",
        metrics=METRICS,
    )
]
