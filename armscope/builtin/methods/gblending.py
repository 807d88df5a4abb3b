"""``gblending``: Gradient-Blending (Wang, Tran, Feiszli, CVPR 2020), its options and what it logs.

Each modality's own classifier and the fused one are trained together, their
cross-entropies weighted by how well each generalises per unit of
overfitting, measured on a held-out part of the training split. The training
code is ``armscope.methods.gblending``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from armscope.metrics import Metric
from armscope.models.sizes import UNIMODAL_HEADS
from armscope.specs import MethodSpec

WEIGHTS = "Gradient-Blending weights"
ESTIMATES = "Gradient-Blending held-out estimates"
RATIOS = "Gradient-Blending overfitting-to-generalisation ratio"
LAST = "the values of the last estimation (epoch 1 and every super_epoch epochs), logged every epoch"


class GBlendingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holdout_fraction: float = Field(
        0.1,
        gt=0,
        le=0.5,
        description="Fraction of the training split held out (chosen once from the seed, never trained on) to "
        "measure each head's generalisation; the validation and test splits are never used. Larger gives "
        "steadier weights but fewer training samples.",
    )
    super_epoch: int = Field(
        10,
        ge=1,
        description="Re-estimate the weights at epoch 1 and every this many epochs after (1, 11, 21, ... for "
        "10, BalanceMM's online setting); a value at least the run's epochs estimates once, at the start.",
    )
    estimate_epochs: int = Field(
        1,
        ge=1,
        le=100,
        description="Epochs n each head's copy of the model trains for between the two loss measurements. "
        "The paper's n is not stated in the sources checked; more epochs show overfitting better but cost "
        "(modalities + 1) x n extra passes over the training data per estimation.",
    )
    estimate_lr: float = Field(
        0.01,
        gt=0,
        le=10,
        description="Learning rate of the copies' own SGD optimiser (momentum 0.9, fresh at each estimation). "
        "Set it to the run's lr to train the copies as the main model trains, as BalanceMM does.",
    )


METRICS = (
    Metric(
        "gblend_weight.{m}", "G-Blend weight per modality", WEIGHTS, basis="applied", sample="training",
        short="gb_w",
        description="w_m, the weight of modality m's own classifier's cross-entropy in every step of the epoch "
        "(constant between estimations; the weights of all modalities and the fused head sum to 1; uniform when "
        "the estimate gave no head a finite positive weight or would have left an encoder untrained).",
    ),
    Metric(
        "gblend_weight_fused", "G-Blend weight of the fused head", WEIGHTS, basis="applied", sample="training",
        short="gb_w fused",
        description="w_fused, the weight of the fused classifier's cross-entropy in every step of the epoch.",
    ),
    Metric(
        "gblend_gain.{m}", "G-Blend generalisation gain ΔG per modality", ESTIMATES, basis="estimate",
        sample="training", short="gb_dG",
        description="ΔG = V_N − V_{N+n}: how much the mean held-out cross-entropy of modality m's classifier fell "
        f"while a copy trained it for estimate_epochs epochs; {LAST}.",
    ),
    Metric(
        "gblend_gain_fused", "G-Blend generalisation gain ΔG of the fused head", ESTIMATES, basis="estimate",
        sample="training", short="gb_dG fused",
        description=f"ΔG of the fused classifier, as for each modality's; {LAST}.",
    ),
    Metric(
        "gblend_overfit.{m}", "G-Blend overfitting change ΔO per modality", ESTIMATES, basis="estimate",
        sample="training", short="gb_dO",
        description="ΔO = (V − T)_{N+n} − (V − T)_N: how much the gap between the mean held-out and mean training "
        f"cross-entropy of modality m's classifier grew over the same training; {LAST}.",
    ),
    Metric(
        "gblend_overfit_fused", "G-Blend overfitting change ΔO of the fused head", ESTIMATES, basis="estimate",
        sample="training", short="gb_dO fused",
        description=f"ΔO of the fused classifier, as for each modality's; {LAST}.",
    ),
    Metric(
        "gblend_ogr.{m}", "G-Blend OGR per modality", RATIOS, basis="estimate", sample="training", short="gb_ogr",
        description="OGR = |ΔO / ΔG| of modality m's classifier: overfitting per unit of generalisation gained "
        f"(lower generalises better; infinite when ΔG is 0); {LAST}.",
    ),
    Metric(
        "gblend_ogr_fused", "G-Blend OGR of the fused head", RATIOS, basis="estimate", sample="training",
        short="gb_ogr fused",
        description=f"OGR = |ΔO / ΔG| of the fused classifier; {LAST}.",
    ),
)

SPECS = [
    MethodSpec(
        "gblending",
        "armscope.methods.gblending:GradientBlending",
        GBlendingOptions,
        "Gradient-Blending: per-modality and fused losses weighted by held-out generalisation over overfitting.",
        metrics=METRICS,
        head=UNIMODAL_HEADS,
    )
]
