"""MMCosine (Xu, Feng, Zhang, Hu, ICASSP 2023): cosine-normalised fusion with a scale (METHODS.md A.5).

With a linear head, a modality that learns faster grows larger features and
weights and so takes over the fused logits, which starves the other of
gradient. MMCosine normalises both away: modality m scores class c by
s * cos(z_m, W_m[c]) and the fused logits are the sum over modalities, trained
with plain cross-entropy. The cosine head is used for the whole run and for
prediction, as in the authors' code (BalanceMM switches to it inside a window
only). The authors' optional supervised contrastive term (supplementary
material; weight ``lam``, 0 by default) is left out. Any number of modalities.
Its options and metric declarations: ``armscope.builtin.methods.mmcosine``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.methods.mmcosine import MMCosineOptions, cosine_head_size
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import FusionHead, MultimodalModel

# The norm floor of F.normalize, as the authors use it: a zero vector (a masked modality) normalises to zero.
NORM_EPS = 1e-12


def class_cosines(features: Tensor, weight: Tensor) -> Tensor:
    """cos(z_i, W[c]) for every sample i and class c (B x C); exactly 0 for an all-zero feature vector.

    Normalising with a floor on the norm, not dividing by it, is what lets a
    masked (zeroed) modality contribute nothing instead of NaN.
    """
    return F.normalize(features, dim=1, eps=NORM_EPS) @ F.normalize(weight, dim=1, eps=NORM_EPS).T


def fused_logits(cosines: Tensor, scale: float) -> Tensor:
    """l = s * sum_m cos_m, from the modalities' cosines stacked as M x B x C.

    The scale is what lets a softmax over values in [-M, M] become confident enough to train on.
    """
    return scale * cosines.sum(0)


def target_cosines(cosines: Tensor, labels: Tensor) -> Tensor:
    """Each modality's cosine with its true class's weights (M x B), from cosines stacked as M x B x C."""
    index = labels.view(1, -1, 1).expand(cosines.shape[0], -1, 1)
    return cosines.gather(2, index).squeeze(2)


def unimodal_hits(cosines: Tensor, labels: Tensor) -> Tensor:
    """Whether each modality's own prediction, argmax_c s * cos_m[c], is the true class (M x B booleans)."""
    return cosines.argmax(2) == labels


class CosineHead(FusionHead):
    """One bias-free class-weight matrix W_m (classes x feature_dim) per modality; logits s * sum_m cos(z_m, W_m[c])."""

    def __init__(self, modalities: list[str], feature_dim: int, n_classes: int, scale: float = 10.0) -> None:
        super().__init__(modalities, feature_dim, n_classes)
        self.scale = scale
        self.weight = nn.ParameterDict(
            {m: nn.Parameter(self._initial_weight(len(modalities), feature_dim, n_classes)) for m in modalities}
        )

    size = staticmethod(cosine_head_size)

    @staticmethod
    def _initial_weight(n_modalities: int, feature_dim: int, n_classes: int) -> Tensor:
        """As the authors' W_m starts: a modality's slice of a default-initialised linear layer on the concatenated
        features. Only its direction reaches the logits, but its norm sets how fast the gradient turns it."""
        bound = 1 / math.sqrt(n_modalities * feature_dim)
        return torch.empty(n_classes, feature_dim).uniform_(-bound, bound)

    def cosines(self, feats: dict[str, Tensor]) -> Tensor:
        """Every modality's class cosines, stacked in the head's modality order (M x B x C)."""
        return torch.stack([class_cosines(feats[m], self.weight[m]) for m in self.modalities])

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        return fused_logits(self.cosines(feats), self.scale)


def cosine_head(model: MultimodalModel) -> CosineHead:
    head = model.head
    assert isinstance(head, CosineHead)
    return head


class MMCosine(Method):
    options: MMCosineOptions
    head_type = CosineHead

    def build_head(self) -> CosineHead:
        return CosineHead(self.modalities, self.feature_dim, self.n_classes, self.options.scaling)

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        size = len(self.modalities)
        self.target_cosine_sum = torch.zeros(size, device=device)
        self.hit_count = torch.zeros(size, device=device)
        self.samples = 0

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        head = cosine_head(model)
        cosines = head.cosines(feats)
        self._record(cosines.detach().float(), labels)
        return F.cross_entropy(fused_logits(cosines, head.scale), labels)

    def _record(self, cosines: Tensor, labels: Tensor) -> None:
        """Adds the step's per-modality target cosines and hits to the epoch's sums, on the device."""
        self.target_cosine_sum += target_cosines(cosines, labels).sum(1)
        self.hit_count += unimodal_hits(cosines, labels).sum(1)
        self.samples += labels.shape[0]

    def end_epoch(self) -> EpochSummary:
        count = max(self.samples, 1)
        metrics: dict[str, Tensor] = {}
        for i, m in enumerate(self.modalities):
            metrics[f"mmcosine_target_cos.{m}"] = self.target_cosine_sum[i] / count
            metrics[f"mmcosine_acc.{m}"] = self.hit_count[i] / count
        return EpochSummary(metrics=metrics)
