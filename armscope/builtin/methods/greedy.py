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

from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from armscope.metrics import Metric
from armscope.models.sizes import ModuleSize, concat_head_size, linear_size
from armscope.specs import MethodSpec, StagedHeadSize

CHART = "Greedy balancing"
UTILISATION_CHART = "Greedy conditional utilisation"


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
    """``GreedyHead`` as built, before ``bind``: its concat classifier (its MMTM blocks: ``mmtm_blocks_size``)."""
    return concat_head_size(n_modalities, feature_dim, n_classes)


def squeeze_width(widths: Sequence[int], ratio: float) -> int:
    """The units of a block's shared squeeze layer: 2(C_0 + C_1)/ratio, rounded down, at least 1."""
    return max(1, int(2 * sum(widths) / ratio))


def fused_stage_widths(stage_widths: Sequence[Sequence[int]], fusion_stages: int | None) -> list[list[int]]:
    """Per MMTM block, the widths of the stages it follows: one block after each of the last k stages of every
    encoder, k = ``fusion_stages`` or, when empty, the stage count of the encoder with fewer stages."""
    available = min(len(widths) for widths in stage_widths)
    count = available if fusion_stages is None else fusion_stages
    if count > available:
        raise ValueError(f"greedy: fusion_stages {count} exceeds the {available} stages of the shallower encoder")
    return [[widths[len(widths) - count + b] for widths in stage_widths] for b in range(count)]


def mmtm_size(widths: Sequence[int], ratio: float) -> ModuleSize:
    """One block: the shared squeeze layer and an excitation layer per branch; per branch the running mean of its
    excitation and the mean of its squeezed features, each with its count."""
    hidden = squeeze_width(widths, ratio)
    layers = sum((linear_size(hidden, width) for width in widths), linear_size(sum(widths), hidden))
    return layers + ModuleSize(buffers=2 * sum(widths) + 2)


def mmtm_blocks_size(options: GreedyOptions | None, stage_widths: Sequence[tuple[int, ...]]) -> ModuleSize:
    """Every MMTM block ``GreedyHead.bind`` builds for encoders of these stage widths (options None: the defaults)."""
    options = options if options is not None else GreedyOptions()
    blocks = fused_stage_widths(stage_widths, options.fusion_stages)
    return sum((mmtm_size(widths, options.ratio) for widths in blocks), ModuleSize())


GREEDY_HEAD = StagedHeadSize("concat+mmtm", greedy_head_size, staged=mmtm_blocks_size, option="ratio")

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
    Metric(
        "greedy_util.{m}", "Greedy conditional utilisation rate per modality", UTILISATION_CHART,
        basis="estimate", sample="validation", short="greedy_u",
        description="u(m | other) = (A(both) - A(other)) / A(both): the share of the fused validation accuracy "
        "gained by adding m to the other modality, where A(other) is the accuracy with m removed as the paper "
        "removes it (zeroed at the fusion input, and its squeezed features entering every MMTM block replaced by "
        "their mean over the epoch's training steps); 0 when A(both) is 0.",
    ),
    Metric(
        "greedy_d_util", "Greedy utilisation imbalance d_util", UTILISATION_CHART, basis="estimate",
        sample="validation", short="greedy_du",
        description="d_util = u(m1 | m0) - u(m0 | m1), modalities in the data set's order (the paper's sign): "
        "positive when the model gains more from adding the second modality than from adding the first.",
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
