"""CML, Calibrating Multimodal Learning (Ma et al., ICML 2023), as a comparison method (METHODS.md Part A, 6).

Each step builds a chain of predictions from the same features: all
modalities, then one more modality zeroed at each of the M-1 steps of the
epoch's removal order. The loss averages the chain's cross-entropies and adds
lam times a hinge on every rise in confidence along the chain, per sample as
in the authors' code (BalanceMM's hinge on the batch sum lets rises and falls
cancel). The removal order is one permutation per epoch, BalanceMM's rule,
drawn from torch's global generator so that a resumed run draws the same.
Its options and metric declarations: ``armscope.builtin.methods.cml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import Tensor
from torch.nn import functional as F

from armscope.builtin.methods.cml import CMLOptions
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import MultimodalModel


def removal_chain(feats: dict[str, Tensor], removed: Sequence[str]) -> list[dict[str, Tensor]]:
    """The nested feature sets: all modalities, then ``removed[0]`` zeroed, then also ``removed[1]``, and so on.

    Zeroing is how every armscope head masks a modality, so the chain's
    logits are the run's own masked predictions; for the concat head they are
    exactly BalanceMM's ``out - u_r + b/M``.
    """
    chain = [dict(feats)]
    for modality in removed:
        fewer = dict(chain[-1])
        fewer[modality] = torch.zeros_like(feats[modality])
        chain.append(fewer)
    return chain


def confidence(logits: Tensor) -> Tensor:
    """The maximum softmax probability per sample, in float32 whatever the forward pass ran in."""
    return torch.softmax(logits.float(), dim=1).amax(dim=1)


def confidence_changes(chain: Sequence[Tensor]) -> Tensor:
    """conf_i - conf_{i-1} for each removal step i (rows) and sample (columns); positive is a rise."""
    confs = [confidence(logits) for logits in chain]
    return torch.stack([fewer - more for more, fewer in pairwise(confs)])


def correction_mask(more: Tensor, fewer: Tensor, labels: Tensor) -> Tensor:
    """The authors' 'trick 1': false where the removal turned a wrong prediction into a right one.

    Such a rise in confidence is the model correcting itself, not the
    over-confidence the penalty is meant to curb.
    """
    corrected = (fewer.argmax(dim=1) == labels) & (more.argmax(dim=1) != labels)
    return ~corrected


def calibration_penalty(chain: Sequence[Tensor], labels: Tensor, margin: float, mask_corrections: bool) -> Tensor:
    """Per sample, the sum over removal steps of ReLU(conf_fewer - conf_more - margin), nothing detached.

    Per sample, so one sample's rise is never cancelled by another's fall;
    gradients both raise the fuller prediction's confidence and lower the
    reduced one's, as in the authors' code.
    """
    rises = confidence_changes(chain)
    if mask_corrections:
        keep = torch.stack([correction_mask(more, fewer, labels) for more, fewer in pairwise(chain)])
        rises = torch.where(keep, rises, torch.zeros_like(rises))
    return F.relu(rises - margin).sum(dim=0)


def chain_cross_entropy(chain: Sequence[Tensor], labels: Tensor) -> Tensor:
    """[CE(out_0) + sum_i CE(out_i)] / M: every link of the chain is trained to classify."""
    return torch.stack([F.cross_entropy(logits.float(), labels) for logits in chain]).mean()


def reduce_penalty(per_sample: Tensor, reduction: str) -> Tensor:
    """The authors sum over the batch; the mean is offered so that lam means the same at any batch size."""
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


class CML(Method):
    """One forward pass; the chain's extra logits are the head on zeroed features, cheap beside the encoders."""

    options: CMLOptions

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.modulating = self.options.modulates(epoch)
        self.removed = self.draw_removal_order()
        self.penalty_sum = torch.zeros((), device=device)
        self.rises = torch.zeros((), device=device)
        self.change_sum = torch.zeros((), device=device)
        self.steps = 0
        self.pairs = 0

    def draw_removal_order(self) -> list[str]:
        """The M-1 modalities removed in turn this epoch, every batch alike: a permutation with its last left in.

        Drawn on the CPU from torch's global generator, which the checkpoint
        holds, so a resumed run removes in the same order.
        """
        permutation = torch.randperm(len(self.modalities)).tolist()
        return [self.modalities[i] for i in permutation[:-1]]

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        chain = [model.head(reduced) for reduced in removal_chain(feats, self.removed)]
        per_sample = calibration_penalty(chain, labels, self.options.margin, self.options.mask_corrections)
        penalty = reduce_penalty(per_sample, self.options.reduction)
        self.record(chain, penalty)
        if not self.modulating:
            return F.cross_entropy(chain[0], labels)
        return chain_cross_entropy(chain, labels) + self.options.lam * penalty

    def record(self, chain: list[Tensor], penalty: Tensor) -> None:
        """Adds the step's statistics to the epoch's device sums, read once in ``end_epoch``."""
        with torch.no_grad():
            changes = confidence_changes([logits.detach() for logits in chain])
            self.penalty_sum += penalty.detach().float()
            self.rises += (changes > 0).sum()
            self.change_sum += changes.sum()
        self.steps += 1
        self.pairs += changes.numel()

    def end_epoch(self) -> EpochSummary:
        steps, pairs = max(self.steps, 1), max(self.pairs, 1)
        return EpochSummary(
            metrics={
                "cml_penalty": self.penalty_sum / steps,
                "cml_rise_fraction": self.rises / pairs,
                "cml_conf_change": self.change_sum / pairs,
            }
        )
