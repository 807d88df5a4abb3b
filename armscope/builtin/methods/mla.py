"""``mla``: MLA, alternating unimodal adaptation (Zhang, Yoon, Bansal, Yao, CVPR 2024, arXiv 2311.10707).

Each batch trains the modalities one after another through one classifier
shared by all of them, so no modality's encoder ever competes with another's
inside a joint loss; a projection of the shared classifier's gradient keeps
one modality's update from overwriting what it learned from the others; at
test time each sample's unimodal logits are fused with weights that favour the
less uncertain modality. Its options, its head's size and what it logs; the
training code is ``armscope.methods.mla``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from armscope.metrics import Metric
from armscope.models.sizes import HeadSize, ModuleSize, linear_size
from armscope.specs import MethodSpec

CHART = "MLA"


class MLAOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gradient_modification: bool = Field(
        True,
        description="Project the shared classifier's weight gradient with the matrix P built from the features "
        "each sub-step has seen (the paper's gradient modification), so that training one modality disturbs "
        "little of what the classifier learned from the others. false: plain alternating unimodal training, the "
        "paper's ablation without it.",
    )
    projection_alpha: float = Field(
        0.1,
        gt=0,
        le=1,
        description="a in the regulariser a_b = a^(1 + b/N_b) of P's update at batch b of N_b (the authors' 0.1: "
        "a_b falls from 0.1 to about 0.01 over each epoch). The smaller a_b, the more completely each update "
        "removes the direction of the batch's mean feature from later gradients; near 1 the projection stays "
        "close to a scaled identity.",
    )
    fusion: Literal["uncertainty", "mean"] = Field(
        "uncertainty",
        description="How evaluation fuses the modalities' logits from the shared classifier. uncertainty: the "
        "paper's test-time fusion, each sample's logits weighted by softmax(-entropy) over the modalities, so "
        "the more confident modality counts more; mean: equal weights (the authors' fixed 0.5/0.5 for two "
        "modalities), the ablation without it. A modality whose features are zeroed (masked) is left out.",
    )


def shared_head_size(n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize:
    """``SharedHead``: one linear classifier (feature_dim -> classes) applied to every modality's features."""
    return linear_size(feature_dim, n_classes)


SHARED_HEAD = HeadSize("shared", shared_head_size)

METRICS = (
    Metric(
        "mla_loss.{m}", "MLA unimodal loss per modality", CHART, basis="applied", sample="training",
        better="lower", short="mla_L",
        description="The mean over the epoch's steps of L_m, the cross-entropy of the shared classifier on the "
        "modality's features alone, as the modality's sub-step computed it before its update.",
    ),
    Metric(
        "mla_weight.{m}", "MLA test-time fusion weight per modality", CHART, basis="estimate", sample="training",
        unit="fraction", short="mla_w",
        description="The mean over the epoch's training samples of the weight the test-time fusion gives the "
        "modality (softmax over modalities of minus the entropy of its predicted distribution; 1/M with fusion "
        "mean), from the logits each sub-step computed before its update. Training does not apply it.",
    ),
    Metric(
        "mla_grad_kept.{m}", "MLA classifier gradient kept per modality", CHART, basis="applied",
        sample="training", short="mla_kept",
        description="The mean over the epoch's steps of ||G_W P^T|| / ||G_W||, the fraction of the norm of the "
        "shared classifier's weight gradient from the modality's loss that the projection kept (1 where it was "
        "not applied: the run's very first sub-step, or gradient_modification false).",
    ),
    Metric(
        "mla_projection_shift", "MLA projection's distance from the identity", CHART, basis="applied",
        sample="training", short="mla_P",
        description="||P/||P|| - I/sqrt(D)|| (Frobenius norms, D the feature size) at the end of the epoch: 0 while "
        "P is still a scaled identity (every direction of the classifier's gradient kept alike), up to sqrt(2) as it "
        "concentrates on the directions the features have not yet occupied.",
    ),
)

SPECS = [
    MethodSpec(
        "mla",
        "armscope.methods.mla:MLA",
        MLAOptions,
        "Alternating unimodal training through one shared classifier, its gradient projected to keep what other "
        "modalities taught it, and entropy-weighted fusion at test time.",
        metrics=METRICS,
        head=SHARED_HEAD,
    )
]
