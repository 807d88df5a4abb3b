"""MBSD, modality-balanced self-distillation, as BalanceBenchmark's ``MBSD_trainer.py`` defines it (METHODS.md Part B, 2).

The cited paper (Liu et al., WSDM 2023) is unavailable, so BalanceBenchmark's
trainer is the definition, without its bugs: the "KL" is a true divergence
KL(p_strong || p_weak) with the teaching side detached, the per-sample weight
is detached, the logit gap RS is on logits for every number of modalities, and
every one of the M(M-1)/2 modality pairs is averaged, not only the first
three. Each modality's logits come from a classifier of its own
(``UnimodalHeadsHead``), so its cross-entropy and the distillation train its
encoder through that classifier and leave the fused classifier as the
baseline's. Its options and metric declarations: ``armscope.builtin.methods.mbsd``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import torch
from pydantic import BaseModel
from torch import Tensor
from torch.nn import functional as F

from armscope.builtin.methods.mbsd import MBSDOptions
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import MultimodalModel, UnimodalHeadsHead


@dataclass(frozen=True)
class PairTerms:
    """One modality pair's per-sample quantities, each a vector over the batch."""

    weight: Tensor
    gate: Tensor
    first_strong: Tensor
    gap: Tensor
    divergence: Tensor


def true_class_probability(log_probs: Tensor, labels: Tensor) -> Tensor:
    """s = p[y] per sample, the confidence that decides which side of a pair teaches."""
    return log_probs.gather(1, labels[:, None]).squeeze(1).exp()


def distillation_weight(
    s_first: Tensor, s_second: Tensor, first_right: Tensor, second_right: Tensor
) -> tuple[Tensor, Tensor]:
    """(w, g): g = 1 where either modality predicts the label, w = g * |s_a - s_b|, detached.

    A pair where neither modality is right has no teacher worth copying, and
    the weight is a weighting, not something to optimise: gradients through
    it would push the two confidences together for their own sake.
    """
    gate = first_right | second_right
    weight = torch.where(gate, (s_first - s_second).abs(), torch.zeros_like(s_first))
    return weight.detach(), gate


def logit_gap(z_first: Tensor, z_second: Tensor) -> Tensor:
    """RS = (1/C) * sum_c (z_a,c - z_b,c)^2 per sample, on logits: it pulls both sides towards each other."""
    return (z_first - z_second).square().mean(dim=1)


def strong_to_weak_divergence(log_p_first: Tensor, log_p_second: Tensor, first_strong: Tensor) -> Tensor:
    """KL(p_strong || p_weak) over classes per sample, the strong side detached so that only the weak one learns.

    This is the likely intent of BalanceBenchmark's ``F.kl_div(ps, pw)`` on two
    scalars, which is no divergence and can be negative.
    """
    strong = torch.where(first_strong[:, None], log_p_first, log_p_second).detach()
    weak = torch.where(first_strong[:, None], log_p_second, log_p_first)
    return (strong.exp() * (strong - weak)).sum(dim=1)


def pair_terms(z_first: Tensor, z_second: Tensor, labels: Tensor) -> PairTerms:
    """Everything the distillation of one pair needs, from the two modalities' float32 logits."""
    log_p_first, log_p_second = F.log_softmax(z_first, dim=1), F.log_softmax(z_second, dim=1)
    s_first = true_class_probability(log_p_first, labels)
    s_second = true_class_probability(log_p_second, labels)
    first_right = z_first.argmax(dim=1) == labels
    second_right = z_second.argmax(dim=1) == labels
    weight, gate = distillation_weight(s_first, s_second, first_right, second_right)
    first_strong = s_first >= s_second
    return PairTerms(
        weight=weight,
        gate=gate,
        first_strong=first_strong,
        gap=logit_gap(z_first, z_second),
        divergence=strong_to_weak_divergence(log_p_first, log_p_second, first_strong),
    )


def modality_pairs(count: int) -> list[tuple[int, int]]:
    """Every unordered pair of modality positions, (0, 1), (0, 2), ..., BalanceBenchmark's order for three."""
    return list(combinations(range(count), 2))


def distillation_terms(pairs: Sequence[PairTerms]) -> tuple[Tensor, Tensor]:
    """(RS term, KL term): per pair the batch mean of w * RS and of w * KL, then the mean over pairs."""
    gap = torch.stack([(p.weight * p.gap).mean() for p in pairs]).mean()
    divergence = torch.stack([(p.weight * p.divergence).mean() for p in pairs]).mean()
    return gap, divergence


def classification_loss(fused: Tensor, unimodal: Sequence[Tensor], labels: Tensor) -> Tensor:
    """CE(fused) + sum_m CE(z_m): the fused prediction and every modality's own classifier learn the labels."""
    total = F.cross_entropy(fused.float(), labels)
    for logits in unimodal:
        total = total + F.cross_entropy(logits, labels)
    return total


def unimodal_heads_head(model: MultimodalModel) -> UnimodalHeadsHead:
    head = model.head
    assert isinstance(head, UnimodalHeadsHead)
    return head


class MBSD(Method):
    options: MBSDOptions
    head_type = UnimodalHeadsHead

    def __init__(self, options: BaseModel, modalities: list[str], n_classes: int, feature_dim: int) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        self.pair_positions = modality_pairs(len(self.modalities))

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.distilling = self.options.modulates(epoch)
        size = len(self.modalities)
        self.weight_sum = torch.zeros((), device=device)
        self.gate_sum = torch.zeros((), device=device)
        self.gap_sum = torch.zeros((), device=device)
        self.divergence_sum = torch.zeros((), device=device)
        self.strong_sum = torch.zeros(size, device=device)
        self.correct_sum = torch.zeros(size, device=device)
        self.samples = 0

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        head = unimodal_heads_head(model)
        fused = head(feats)
        own = head.unimodal_heads(feats)
        unimodal = [own[m].float() for m in self.modalities]
        pairs = [pair_terms(unimodal[a], unimodal[b], labels) for a, b in self.pair_positions]
        gap, divergence = distillation_terms(pairs)
        self.record(unimodal, labels, pairs, gap, divergence)
        loss = classification_loss(fused, unimodal, labels)
        if not self.distilling:
            return loss
        return loss + gap + divergence

    def record(
        self, unimodal: list[Tensor], labels: Tensor, pairs: list[PairTerms], gap: Tensor, divergence: Tensor
    ) -> None:
        """Adds the step's sums to the epoch's device tensors, read once in ``end_epoch``."""
        batch = labels.shape[0]
        with torch.no_grad():
            for (a, b), terms in zip(self.pair_positions, pairs):
                self.weight_sum += terms.weight.sum()
                self.gate_sum += terms.gate.sum()
                self.strong_sum[a] += terms.first_strong.sum()
                self.strong_sum[b] += (~terms.first_strong).sum()
            self.gap_sum += gap.detach() * batch
            self.divergence_sum += divergence.detach() * batch
            self.correct_sum += torch.stack([(z.argmax(dim=1) == labels).sum() for z in unimodal])
        self.samples += batch

    def end_epoch(self) -> EpochSummary:
        samples = max(self.samples, 1)
        pair_samples = samples * len(self.pair_positions)
        shared = samples * (len(self.modalities) - 1)
        metrics: dict[str, Tensor] = {
            "mbsd_weight": self.weight_sum / pair_samples,
            "mbsd_gate": self.gate_sum / pair_samples,
            "mbsd_rs": self.gap_sum / samples,
            "mbsd_kl": self.divergence_sum / samples,
        }
        for i, m in enumerate(self.modalities):
            metrics[f"mbsd_strong.{m}"] = self.strong_sum[i] / shared
            metrics[f"mbsd_acc.{m}"] = self.correct_sum[i] / samples
        return EpochSummary(metrics=metrics)
