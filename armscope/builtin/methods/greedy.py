"""``greedy``: balancing the greedy learner by conditional learning speed (Wu, Geras et al., ICML 2022, arXiv 2202.05306).

MMTM blocks between the two encoders' stages let each branch rescale its
channels from both branches' pooled activations. The step compares how fast
each branch learns through those cross-modal paths (the bypass) with how fast
its encoder learns; when the gap exceeds alpha, the next steps cut the
cross-modal path into the branch that leans on it, so that branch must learn
from its own input. Its options, its head's size and what it logs; the
training code is ``armscope.methods.greedy``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from armscope.metrics import Metric
from armscope.models.sizes import HeadSize, ModuleSize, concat_head_size
from armscope.specs import MethodSpec

CHART = "Greedy balancing"


class GreedyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    MAX_MODALITIES: ClassVar[int] = 2

    alpha: float = Field(
        0.01,
        ge=0,
        description="Threshold on d = BDR_0 - BDR_1, the gap between the two branches' conditional learning "
        "speeds (log10 of bypass speed over encoder speed). When |d| exceeds it, the next rebalance_steps steps "
        "cut the cross-modal path into the branch with the larger speed. The authors' 0.01; BalanceMM uses "
        "0.001. Lower: re-balances more often; 0: re-balances whenever the speeds differ at all.",
    )
    rebalance_steps: int = Field(
        5,
        ge=1,
        description="Q, the number of steps one re-balancing lasts (the authors' and BalanceMM's 5). During them "
        "the learning-speed accumulators are frozen and the cared-for branch's MMTM excitations are replaced by "
        "their running means.",
    )
    rebalance_start: int = Field(
        2,
        ge=1,
        description="First epoch (1-based) in which a re-balancing may start (the authors' 2: the first epoch only "
        "accumulates learning speeds; BalanceMM starts at once, which is 1 here). The speeds are accumulated from "
        "the first step either way.",
    )
    ratio: float = Field(
        4,
        gt=0,
        description="MMTM reduction ratio: each block's shared squeeze layer has 2(C_0 + C_1)/ratio units for stage "
        "widths C_0 and C_1 (4 in the paper, the authors' code and BalanceMM). Larger: a narrower, cheaper "
        "cross-modal bottleneck.",
    )
    fusion_stages: int | None = Field(
        None,
        ge=1,
        description="How many MMTM blocks, after the last this-many stages of each encoder (ResNet-18: layer2..layer4, "
        "the authors' placement; MLP: each Linear+ReLU layer, the last one giving the features). Empty: as many "
        "as the encoder with fewer stages has.",
    )

    def check_modalities(self, modalities: list[str]) -> tuple[tuple[str, ...], str] | None:
        """Two branches: the MMTM blocks, the speed gap d and the caring modality are defined for a pair only."""
        if len(modalities) > self.MAX_MODALITIES:
            return (), f"greedy supports at most {self.MAX_MODALITIES} modalities; this data set has {len(modalities)}"
        return None


def greedy_head_size(n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize:
    """``GreedyHead`` as built, before ``bind``: its concat classifier.

    Its MMTM blocks are sized by the encoders' inner stage widths, which (M, feature_dim, classes) do not
    tell, so they are added when the model joins head and encoders and are not counted here: a lower bound.
    """
    return concat_head_size(n_modalities, feature_dim, n_classes)


GREEDY_HEAD = HeadSize("concat+mmtm", greedy_head_size)

METRICS = (
    Metric(
        "greedy_bdr.{m}", "Greedy conditional learning speed per modality", CHART, basis="applied",
        sample="training", short="greedy_bdr",
        description="BDR_m = log10(M_b,m / M_m,m) at the end of the epoch: the run's accumulated learning speed "
        "(sum of ||grad||^2 / ||theta||^2 over the non-re-balancing steps) of the branch's MMTM bypass over that "
        "of its encoder. The larger, the more the branch learns through the cross-modal path.",
    ),
    Metric(
        "greedy_rebalance.{m}", "Greedy re-balancing share per modality", CHART, basis="applied",
        sample="training", unit="fraction", short="greedy_q",
        description="The fraction of the epoch's steps that re-balanced with this modality cared for (its MMTM "
        "excitations replaced by their running means, cutting the cross-modal path into it).",
    ),
    Metric(
        "greedy_d", "Greedy speed gap d", CHART, basis="applied", sample="training", short="greedy_d",
        description="d = BDR_0 - BDR_1 at the end of the epoch (modalities in the data set's order); a step whose "
        "|d| exceeds alpha starts a re-balancing, caring for modality 0 if d > 0, else modality 1.",
    ),
)

SPECS = [
    MethodSpec(
        "greedy",
        "armscope.methods.greedy:Greedy",
        GreedyOptions,
        "MMTM mid-fusion between the encoders' stages; when one branch learns faster through the cross-modal "
        "path than through its own encoder, that path is cut for a few steps.",
        metrics=METRICS,
        head=GREEDY_HEAD,
    )
]
