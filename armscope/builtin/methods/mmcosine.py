"""``mmcosine``: MMCosine, cosine-normalised fusion with a scale (Xu, Feng, Zhang, Hu, ICASSP 2023).

Each modality classifies by the cosine between its features and its own class
weights, and the fused logits are the scaled sum of those cosines, so no
modality can dominate the fusion through larger feature or weight norms. Its
options, its head's size and what it logs; the training code is
``armscope.methods.mmcosine``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from armscope.metrics import Metric
from armscope.models.sizes import HeadSize, ModuleSize
from armscope.specs import MethodSpec

CHART = "MMCosine"


class MMCosineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scaling: float = Field(
        10.0,
        gt=0,
        le=1000,
        description="s, the factor on every modality's cosines (the authors' default 10; BalanceMM uses 15). "
        "Cosines lie in [-1, 1], so with M modalities the fused logits lie in [-M*s, M*s]: too small an s "
        "caps how confident the softmax can get and the loss stays high however well the classes separate; "
        "a larger s lets the loss fall further at the price of sharper, less calibrated predictions.",
    )


def cosine_head_size(n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize:
    """``CosineHead``: one bias-free class-weight matrix (classes x feature_dim) per modality."""
    return ModuleSize(parameters=n_modalities * n_classes * feature_dim)


COSINE_HEAD = HeadSize("cosine", cosine_head_size)

METRICS = (
    Metric(
        "mmcosine_target_cos.{m}", "MMCosine target-class cosine per modality", CHART, basis="applied",
        sample="training", short="cos_y",
        description="The mean, over the epoch's training samples, of cos(z_m, W_m[y]): the cosine between the "
        "modality's features and its weight row of the sample's true class, as each step's forward pass computed "
        "it before that step's update (1: aligned; the fused logit of the true class is s times the sum of these).",
    ),
    Metric(
        "mmcosine_acc.{m}", "MMCosine unimodal training accuracy per modality", CHART, basis="applied",
        sample="training", unit="fraction", short="acc_m",
        description="The fraction of the epoch's training samples whose argmax over classes of the modality's own "
        "cosine logits s*cos(z_m, W_m[c]) is the true class, as each step's forward pass computed them before "
        "that step's update (in train mode).",
    ),
)

SPECS = [
    MethodSpec(
        "mmcosine",
        "armscope.methods.mmcosine:MMCosine",
        MMCosineOptions,
        "Cosine-normalised fusion: each modality's class cosines, scaled by s and summed, are the logits.",
        metrics=METRICS,
        head=COSINE_HEAD,
    )
]
