"""AMCo: adaptive mask co-optimisation (Zhou, Liang, Zheng, Xuan, Kumada, ICASSP 2023), METHODS.md Part C section 4.

The paper's text was unavailable, so this is BalanceMM's definition. Each
modality's logits are its slice of the concat classifier, u_m = W_m h_m + b/M;
the fused logits are o = A(sum_m u_m) + a with a learned C x C layer (A, a).
A modality whose share of the softmax over the concatenated [u_1 ... u_M]
exceeded sigma in the previous step is "dependent": its logits are multiplied
by a class mask with N random zeros, N growing with a sine schedule over the
epoch's steps. The loss is CE(o, y) + sum_m CE(u_m, y) on the masked logits,
one backward pass. Evaluation uses the unmasked o.

Departures from BalanceMM: the mask is one vector of C shared by the batch
(BalanceMM's [2, C] expansion broadcasts only on two GPUs or batches of at
most 2); at most C - keep_classes classes are masked, so a saturated schedule
no longer zeroes a modality's logits entirely (``keep_classes`` 0 restores
that); the schedule's increment is e/10 with the 1-based epoch e, so epoch 1
masks (BalanceMM's 0-based epoch 0 adds 0 and never masks; armscope's epoch e
follows BalanceMM's epoch e). Any number of modalities. Its options and
metric declarations: ``armscope.builtin.methods.amco``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.methods.amco import AMCoOptions, amco_head_size
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import ConcatHead, MultimodalModel


def mask_schedule(progress: float, eps: float) -> float:
    """p = sin(pi/2 * min(eps, l) / eps): the fraction of classes to mask, rising from 0 to 1 as l reaches eps."""
    return math.sin(math.pi / 2 * min(eps, progress) / eps)


def masked_class_count(p: float, n_classes: int, keep_classes: int) -> int:
    """N = floor(pC), capped so that at least ``keep_classes`` class logits survive the mask."""
    return min(math.floor(p * n_classes), max(n_classes - keep_classes, 0))


def class_mask(n_masked: int, n_classes: int, device: torch.device) -> Tensor:
    """A {0, 1} vector of C with ``n_masked`` zeros at random classes, from torch's global generator.

    One mask for the whole batch, as BalanceMM draws it; the generator is
    checkpointed with the run, so a resumed run draws the same masks.
    """
    masked = torch.randperm(n_classes, device=device)[:n_masked]
    return torch.ones(n_classes, device=device).index_fill_(0, masked, 0)


def apply_mask(unimodal: Tensor, flags: Tensor, mask: Tensor) -> Tensor:
    """u_m * mask for the flagged modalities, u_m for the others (unimodal: M x B x C, flags: M booleans).

    A select on the flags, not a branch, so the step never reads them back.
    """
    masked = unimodal * mask.to(unimodal.dtype)
    return torch.where(flags[:, None, None], masked, unimodal)


def modality_shares(unimodal: Tensor) -> Tensor:
    """share_m: the batch mean of modality m's part of the per-sample softmax over [u_1 ... u_M] (M x B x C in, M out).

    The shares sum to 1; a modality whose logits are larger and sharper than
    the others' takes more of the joint softmax, which is how AMCo reads dependence.
    """
    modalities, batch, classes = unimodal.shape
    joint = unimodal.permute(1, 0, 2).reshape(batch, modalities * classes)
    parts = torch.softmax(joint, dim=1).reshape(batch, modalities, classes)
    return parts.sum(2).mean(0)


def dependence_flags(shares: Tensor, sigma: float) -> Tensor:
    """delta_m = share_m > sigma: the modalities to mask in the next step."""
    return shares > sigma


def amco_loss(fused: Tensor, unimodal: Tensor, labels: Tensor) -> Tensor:
    """CE(o, y) + sum_m CE(u_m, y): the fused loss plus each modality's own, on the (masked) logits."""
    unimodal_losses = torch.stack([F.cross_entropy(logits, labels) for logits in unimodal])
    return F.cross_entropy(fused, labels) + unimodal_losses.sum()


class AMCoHead(ConcatHead):
    """The concat classifier's unimodal logits, summed, then a learned C x C layer (BalanceMM's ``linear_star``).

    Masking acts on each modality's logits before they are summed, which a
    plain concat classifier cannot express; the C x C layer lets the fusion
    mix the summed class evidence.
    """

    def __init__(self, modalities: list[str], feature_dim: int, n_classes: int) -> None:
        super().__init__(modalities, feature_dim, n_classes)
        self.star = nn.Linear(n_classes, n_classes)

    size = staticmethod(amco_head_size)

    def stacked_unimodal(self, feats: dict[str, Tensor]) -> Tensor:
        """u_m for every modality in the head's order, stacked as M x B x C."""
        unimodal = self.unimodal_logits(feats)
        return torch.stack([unimodal[m] for m in self.modalities])

    def fuse(self, unimodal: Tensor) -> Tensor:
        """o = A(sum_m u_m) + a from the stacked (possibly masked) unimodal logits."""
        return self.star(unimodal.sum(0))

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        return self.fuse(self.stacked_unimodal(feats))


def amco_head(model: MultimodalModel) -> AMCoHead:
    head = model.head
    assert isinstance(head, AMCoHead)
    return head


class AMCo(Method):
    options: AMCoOptions
    head_type = AMCoHead

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        """Flags and the schedule's progress restart every epoch, as in BalanceMM: nothing is masked in its first step."""
        super().begin_epoch(epoch, first_step, steps, device)
        self.modulating = self.options.modulates(epoch)
        size = len(self.modalities)
        self.flags = torch.zeros(size, dtype=torch.bool, device=device)
        self.progress = 0.0
        self.share_sum = torch.zeros(size, device=device)
        self.masked_steps = torch.zeros(size, device=device)
        self.masked_fraction_sum = 0.0
        self.steps = 0

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        head = amco_head(model)
        unimodal = head.stacked_unimodal(feats)
        n_masked = self._next_masked_count() if self.modulating else 0
        if n_masked > 0:
            unimodal = apply_mask(unimodal, self.flags, class_mask(n_masked, self.n_classes, unimodal.device))
        fused = head.fuse(unimodal)
        shares = modality_shares(unimodal.detach().float())
        self._record(shares, n_masked)
        if not self.modulating:
            return F.cross_entropy(fused, labels)
        self.flags = dependence_flags(shares, self.options.sigma)
        return amco_loss(fused, unimodal, labels)

    def _next_masked_count(self) -> int:
        """This step's N from the schedule, then l += e/10 for the next (host arithmetic on the step count only)."""
        p = mask_schedule(self.progress, self.options.eps)
        self.progress += self.epoch / 10
        return masked_class_count(p, self.n_classes, self.options.keep_classes)

    def _record(self, shares: Tensor, n_masked: int) -> None:
        """Adds the step's shares, which modalities its mask hit, and its masked fraction to the epoch's sums."""
        self.share_sum += shares
        if n_masked > 0:
            self.masked_steps += self.flags
        self.masked_fraction_sum += n_masked / self.n_classes
        self.steps += 1

    def end_epoch(self) -> EpochSummary:
        count = max(self.steps, 1)
        metrics: dict[str, Tensor] = {"amco_masked_classes": torch.tensor(self.masked_fraction_sum / count)}
        for i, m in enumerate(self.modalities):
            metrics[f"amco_share.{m}"] = self.share_sum[i] / count
            metrics[f"amco_masked.{m}"] = self.masked_steps[i] / count
        return EpochSummary(metrics=metrics)
