"""``amco``: AMCo, adaptive mask co-optimisation (Zhou, Liang, Zheng, Xuan, Kumada, ICASSP 2023).

A modality the fused prediction depends on too much (its share of the softmax
over every modality's logits above sigma) has a growing random part of its
class logits zeroed in the next step, so the fusion and the other modalities
must learn to do without it. The paper's text was unavailable: the method is
BalanceMM's (``AMCo_trainer.py``, ``BaseClassifierAMCoModel``), without its
bugs (METHODS.md Part C section 4). Its options, its head's size and what it
logs; the training code is ``armscope.methods.amco``.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from armscope.metrics import Metric
from armscope.models.sizes import HeadSize, ModuleSize, concat_head_size, linear_size
from armscope.specs import MethodSpec, ModulationWindow

CHART = "AMCo masking"


class AMCoOptions(ModulationWindow):
    model_config = ConfigDict(extra="forbid")

    sigma: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Dependence threshold σ (BalanceMM's code: 0.5): a modality whose share of the per-sample "
        "softmax over all modalities' concatenated logits, averaged over the batch, exceeds σ has its logits "
        "masked in the next step. The shares sum to 1, so with σ >= 0.5 at most one modality is masked at a "
        "time; a lower σ (with three or more modalities) can mask several. Raise it towards 1 to mask only "
        "a modality that clearly dominates; amco_share shows where the shares sit.",
    )
    eps: float = Field(
        0.3,
        gt=0,
        description="ε, the schedule's ramp (BalanceMM's code: 0.3): the masked fraction of classes is "
        "p = sin(π/2·min(ε, l)/ε), where l starts at 0 each epoch and grows by e/10 per step in epoch e, so p "
        "reaches 1 after ceil(10ε/e) steps. A larger ε ramps up over more steps (10ε steps in epoch 1); with the "
        "default the mask is at full strength from the fourth step of epoch 1 and from the second of epoch 3 on.",
    )
    keep_classes: int = Field(
        1,
        ge=0,
        description="The fewest class logits the mask leaves in place: N = min(floor(pC), C - keep_classes) of C "
        "are zeroed. 1 (armscope's default) stops a saturated schedule (p = 1) from zeroing the masked "
        "modality's logits entirely, which leaves its unimodal cross-entropy at the constant ln C with no "
        "gradient; 0 is BalanceMM's code, which does that.",
    )
    modulation_start: int = Field(
        1,
        ge=1,
        description="First epoch (1-based, inclusive) trained with AMCo's masks and unimodal losses; before it, "
        "plain cross-entropy on the fused logits of the same head. BalanceMM's code starts at its epoch 0, "
        "this epoch 1.",
    )
    modulation_end: int | None = Field(
        None,
        ge=1,
        description="Last epoch (inclusive) trained with AMCo's masks and unimodal losses; empty means the last "
        "epoch. BalanceMM's code ends at its epoch 80 (81 here), after its 70 epochs, so it always masks.",
    )



def amco_head_size(n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize:
    """``AMCoHead``: the concat classifier, whose slices give the unimodal logits, and the C x C layer on their sum."""
    return concat_head_size(n_modalities, feature_dim, n_classes) + linear_size(n_classes, n_classes)


AMCO_HEAD = HeadSize("amco", amco_head_size)

METRICS = (
    Metric(
        "amco_share.{m}", "AMCo dependence share per modality", CHART, basis="applied", sample="training",
        unit="fraction", short="amco_sh",
        description="The epoch's mean over its steps of share_m: the batch mean of the modality's part of the "
        "softmax over all modalities' concatenated logits u_m = W_m h_m + b/M, as the step trained on them (masked "
        "where masked). Above sigma, inside the modulation window, the modality is masked in the next step.",
    ),
    Metric(
        "amco_masked.{m}", "AMCo masked steps per modality", CHART, basis="applied", sample="training",
        unit="fraction", short="amco_m",
        description="The fraction of the epoch's steps in which the modality was flagged (its share above sigma "
        "in the step before) and the mask zeroed at least one of its class logits. 0 outside the modulation window.",
    ),
    Metric(
        "amco_masked_classes", "AMCo masked fraction of classes", CHART, basis="applied", sample="training",
        unit="fraction", short="amco_N/C",
        description="The epoch's mean over its steps of N/C, the fraction of class logits each step's mask zeroes "
        "in a flagged modality: floor(pC) from the schedule p, capped at C - keep_classes. It is applied only to "
        "the flagged modalities; 0 outside the modulation window.",
    ),
)

SPECS = [
    MethodSpec(
        "amco",
        "armscope.methods.amco:AMCo",
        AMCoOptions,
        "Adaptive mask co-optimisation: randomly mask the class logits of the modality the fusion depends on.",
        metrics=METRICS,
        head=AMCO_HEAD,
    )
]
