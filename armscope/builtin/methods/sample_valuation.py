"""``sample-valuation``: sample-level modality valuation and re-sampling (Wei, Feng, Wang, Hu, CVPR 2024): its
options and what it logs.

The training code is ``armscope.methods.sample_valuation``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from armscope.metrics import Metric
from armscope.specs import MethodSpec

CHART = "Sample valuation"


class SampleValuationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resampling: Literal["sample", "modality"] = Field(
        "sample",
        description="sample: each sample gets, per modality m, 0-3 copies keeping only m, more the lower its "
        "Shapley value phi_m (the paper's fine-grained method). modality: one modality-wide decision: a share P "
        "of the split (drawn with replacement) gets a copy keeping only the modality that contributes least on "
        "average (the paper's cheaper method; set part_ratio and alpha).",
    )
    warmup_epochs: int = Field(
        5,
        ge=0,
        description="Epochs trained on the originals alone (the authors' 5; BalanceMM 1); their valuation passes "
        "are only logged. Each later epoch trains on the originals plus the copies its valuation asks for. Too "
        "few and the values describe an untrained model, under which every sample looks weak in every modality.",
    )
    part_ratio: float = Field(
        0.2,
        gt=0,
        le=1,
        description="modality resampling only: the share of the training split (drawn with replacement) whose mean "
        "phi_m estimates each modality's contribution (the authors' and BalanceMM's 0.2). Raise it when the "
        "split is small and the estimate jumps between epochs.",
    )
    alpha: float = Field(
        1.0,
        gt=0,
        le=10,
        description="modality resampling only: scales the share of the split that is copied, P = (2/3) alpha "
        "|gap_a - gap_v| with gap_m = 1 - mean phi_m, |gap_a - gap_v| the mean over pairs with more modalities "
        "(the authors' 1; BalanceMM lists 0.5 but ignores it). Raise it for more copies of the weak modality.",
    )


METRICS = (
    Metric(
        "sv_phi.{m}", "Mean sample Shapley value per modality", CHART, basis="applied", sample="training",
        short="sv_phi",
        description="The mean over every training sample of phi_m, the exact Shapley value of the modality under "
        "v(S) = |S| if the prediction from the features of S alone (the others zeroed) is right, else 0, from the "
        "valuation pass that opened the epoch; the copies the epoch trained with follow from it. The values of a "
        "sample sum to the number of modalities when its fused prediction is right, so 1 is a fair share. "
        "Warm-up epochs are valued too, for this log only.",
    ),
    Metric(
        "sv_copied.{m}", "Samples with a copy keeping only the modality", CHART, basis="applied",
        sample="training", unit="fraction", short="sv_copied",
        description="The fraction of the training samples that the epoch trained with at least one extra copy "
        "keeping only this modality (the others' features zeroed); 0 in the warm-up epochs.",
    ),
    Metric(
        "sv_copies.{m}", "Copies per sample keeping only the modality", CHART, basis="applied",
        sample="training", short="sv_copies",
        description="The mean over the training samples of how many copies keeping only this modality the epoch "
        "trained with (0 to 3 each with sample resampling); 0 in the warm-up epochs.",
    ),
    Metric(
        "sv_copies_total", "Copies trained in the epoch", CHART, basis="applied", sample="training",
        unit="samples", short="sv_total",
        description="The number of copies the epoch trained with, over all samples and modalities: the epoch saw "
        "the training split once plus this many single-modality copies; 0 in the warm-up epochs.",
    ),
)

SPECS = [
    MethodSpec(
        "sample-valuation",
        "armscope.methods.sample_valuation:SampleValuation",
        SampleValuationOptions,
        "Sample-level modality valuation: per-sample Shapley values, and single-modality copies of the samples "
        "whose modality contributes little.",
        metrics=METRICS,
    )
]
