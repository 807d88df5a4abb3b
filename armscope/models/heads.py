"""Fusion heads and the model that joins encoders to a head.

Every head takes one feature tensor per modality (B x d, in the model's
modality order). The dominance measures zero a modality's features to mask
it, so heads must accept zeros in place of any modality.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.models.sizes import ModuleSize, arm_head_size, concat_head_size, unimodal_heads_size


@dataclass
class Lens:
    """The pieces of the ARM contribution score: ARM's step takes them from its head (``arm_lens``),
    every run's validation lens from its predictions (``armscope.lens``).

    ``probe`` is the fused representation f paired element-wise with each
    modality's features; ``fused_logits`` give the fused confidence p_f, and
    ``rest_logits[m]`` the confidence p_-m of the other modalities without m.
    """

    probe: Tensor
    fused_logits: Tensor
    rest_logits: dict[str, Tensor]
    rest_features: dict[str, Tensor]


def rest_means(feats: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """h_-m: the element-wise mean of the other modalities' features.

    With two modalities that is the other tensor itself, passed as is: exact
    (``(a + b) - a`` need not equal ``b``) and free.
    """
    if len(feats) == 2:
        first, second = feats
        return {first: feats[second], second: feats[first]}
    total = torch.stack(list(feats.values())).sum(0)
    count = len(feats) - 1
    return {m: (total - h) / count for m, h in feats.items()}


def _concat(modalities: Sequence[str], feats: Mapping[str, Tensor]) -> Tensor:
    return torch.cat([feats[m] for m in modalities], dim=1)


def arm_lens(
    feats: Mapping[str, Tensor],
    order: Sequence[str],
    probe: tuple[Tensor, Tensor],
    classifier: tuple[Tensor, Tensor],
) -> Lens:
    """ARMHead.lens on the head's parameters as plain tensors (weight, bias).

    Free of the module so that ARM's compiled step can take the parameters as
    graph inputs: one compiled graph then serves every run's head.
    """
    rest = rest_means(feats)
    fused = F.linear(_concat(order, feats), *probe)
    return Lens(
        probe=fused,
        fused_logits=F.linear(fused, *classifier),
        rest_logits={m: F.linear(r, *classifier) for m, r in rest.items()},
        rest_features=rest,
    )


class FusionHead(nn.Module):
    def __init__(self, modalities: list[str], feature_dim: int, n_classes: int) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.feature_dim = feature_dim
        self.n_classes = n_classes

    @classmethod
    def size(cls, n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize:
        """What the head would hold, so a config can be sized before it is built (``armscope.models.sizes``)."""
        raise NotImplementedError

    def bind(self, encoders: nn.ModuleDict) -> None:
        """Called once by ``MultimodalModel`` with the encoders, before any optimiser sees the model.

        A head whose modules depend on the encoders' inner widths (Greedy's mid-fusion blocks between
        encoder stages) builds them here, so that they are among the model's parameters from the start.
        """


class ConcatHead(FusionHead):
    """Linear classifier on the concatenated features (the baseline/OGM fusion)."""

    def __init__(self, modalities: list[str], feature_dim: int, n_classes: int) -> None:
        super().__init__(modalities, feature_dim, n_classes)
        width = len(modalities) * feature_dim
        self.fc = nn.Linear(width, n_classes)

    size = staticmethod(concat_head_size)

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        return self.fc(_concat(self.modalities, feats))

    def unimodal_logits(self, feats: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's slice of the weight plus bias / M (OGM's unimodal estimate)."""
        d, share = self.feature_dim, self.fc.bias / len(self.modalities)
        weight = self.fc.weight
        return {
            m: feats[m] @ weight[:, i * d : (i + 1) * d].T + share
            for i, m in enumerate(self.modalities)
        }


class UnimodalHeadsHead(ConcatHead):
    """The concat fusion plus a linear classifier per modality on that modality's features alone.

    For the methods whose objective has a loss per modality (MMPareto, Gradient-Blending, UMT and
    others): ``unimodal_heads(feats)`` gives each modality's own logits. The fused prediction
    (``forward``) is the concat classifier's, as the baseline's.
    """

    def __init__(self, modalities: list[str], feature_dim: int, n_classes: int) -> None:
        super().__init__(modalities, feature_dim, n_classes)
        self.unimodal = nn.ModuleDict({m: nn.Linear(feature_dim, n_classes) for m in modalities})

    size = staticmethod(unimodal_heads_size)

    def unimodal_heads(self, feats: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each present modality's logits from its own classifier."""
        return {m: self.unimodal[m](feats[m]) for m in self.modalities if m in feats}


class ARMHead(FusionHead):
    """ARM's fusion (ARM.md section 1): probe P, reinforced fusion Q, shared classifier C.

    P never receives a gradient and stays at its random init, as in the
    reference. At evaluation the head uses ``eval_weights``, the moving
    average of the training weights, instead of recomputing them from labels.
    """

    def __init__(self, modalities: list[str], feature_dim: int, n_classes: int) -> None:
        super().__init__(modalities, feature_dim, n_classes)
        width = len(modalities) * feature_dim
        self.probe = nn.Linear(width, feature_dim)
        self.probe.requires_grad_(False)
        self.reinforced = nn.Linear(width, feature_dim)
        self.classifier = nn.Linear(feature_dim, n_classes)
        self.register_buffer("eval_weights", torch.ones(len(modalities)))

    size = staticmethod(arm_head_size)

    def fuse(self, feats: dict[str, Tensor], weights: Tensor) -> Tensor:
        scaled = torch.cat([w * feats[m] for w, m in zip(weights, self.modalities)], dim=1)
        return self.classifier(self.reinforced(scaled))

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        return self.fuse(feats, self.eval_weights)

    @property
    def lens_parameters(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """(weight, bias) of the probe P and of the classifier C, as arm_lens takes them."""
        return (self.probe.weight, self.probe.bias), (self.classifier.weight, self.classifier.bias)


class MultimodalModel(nn.Module):
    def __init__(self, encoders: dict[str, nn.Module], head: FusionHead) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.head = head
        head.bind(self.encoders)

    def encode(self, inputs: dict[str, Tensor], modalities: list[str] | None = None) -> dict[str, Tensor]:
        names = modalities if modalities is not None else self.head.modalities
        return {m: self.encoders[m](inputs[m]) for m in names}
