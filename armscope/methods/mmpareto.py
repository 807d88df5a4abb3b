"""MMPareto: Pareto integration of multimodal and unimodal gradients (Wei & Hu, ICML 2024; METHODS.md Part A §3).

The objective is L_mm + sum_m L_m: the fused cross-entropy plus each modality's own
cross-entropy from a unimodal head on its features alone (the authors' separate heads,
``UnimodalHeadsHead``). Encoder m receives two gradients, g_mm from L_mm and g_u from L_m.
Where they agree it steps along their sum; where they conflict, along the two-task min-norm
(MGDA) combination, a direction that lowers both losses, rescaled to at least the summed
gradient's norm so that avoiding the conflict costs no step size. Each encoder solves its own
two-task problem, so any number of modalities works. Its options and metric declarations:
``armscope.builtin.methods.mmpareto``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.methods.mmpareto import METRICS, MMParetoOptions
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import UnimodalHeadsHead
from armscope.step import Batch, StepContext

EQUAL_WEIGHT = 0.5
# The authors' solver stops short of the simplex's corners: never all weight on one loss.
FIRST_ONLY, SECOND_ONLY = 0.999, 0.001
COSINE_EPS = 1e-8
# Per encoder and step, in the order of METRICS: conflict (cos < 0), cos, w1, mean rho over its tensors.
FAMILIES = tuple(metric.family for metric in METRICS)


def gram(fused: Sequence[Tensor], unimodal: Sequence[Tensor]) -> Tensor:
    """(v11, v12, v22) = (<g_mm, g_mm>, <g_mm, g_u>, <g_u, g_u>) over an encoder's flattened gradients.

    In float32 whatever the gradients' dtype: the conflict test and the weights
    hinge on the sign and size of v12, which bf16 would blur.
    """
    first = torch.cat([g.flatten() for g in fused]).float()
    second = torch.cat([g.flatten() for g in unimodal]).float()
    return torch.stack([first.dot(first), first.dot(second), second.dot(second)])


def cosine(products: Tensor) -> Tensor:
    """cos(g_mm, g_u) from their Gram entries; 0 when either gradient is zero."""
    v11, v12, v22 = products
    return v12 / (v11.sqrt() * v22.sqrt()).clamp_min(COSINE_EPS)


def min_norm_weight(v11: Tensor, v12: Tensor, v22: Tensor) -> Tensor:
    """gamma minimising ||gamma g1 + (1 - gamma) g2||, with the authors' clamps at the ends.

    The interior solution (v22 - v12) / (v11 + v22 - 2 v12); 0.999 when
    v12 >= v11 (g1 alone is already the shortest), 0.001 when v12 >= v22. The
    interior branch is only selected where both differences are positive, so
    its denominator is too.
    """
    interior = (v22 - v12) / (v11 + v22 - 2 * v12)
    return torch.where(v12 >= v11, FIRST_ONLY, torch.where(v12 >= v22, SECOND_ONLY, interior))


def pareto_weights(products: Tensor) -> tuple[Tensor, Tensor]:
    """(w1, w2) for (g_mm, g_u): equal where cos > 0, else the min-norm weights, as the authors branch."""
    weight = torch.where(cosine(products) > 0, EQUAL_WEIGHT, min_norm_weight(*products))
    return weight, 1 - weight


def integrated_gradients(
    fused: Sequence[Tensor], unimodal: Sequence[Tensor], weights: tuple[Tensor, Tensor], gamma_s: float
) -> tuple[list[Tensor], Tensor]:
    """Per parameter tensor: max(rho, 1) * gamma_s * g_new, with g_new = 2 (w1 g_mm + w2 g_u).

    rho = ||g_mm + g_u|| / ||g_new|| per tensor: the min-norm direction is short
    by construction, and scaling it back up to the summed gradient's norm keeps
    the step as large as plain joint training's. Where g_new is zero, rho is 1
    (the authors' comparison with NaN leaves such a tensor unscaled), not
    inf * 0. Returns the gradients and the per-tensor rho.
    """
    w1, w2 = weights
    integrated = [2 * (w1 * a + w2 * b) for a, b in zip(fused, unimodal)]
    summed_norm = torch.stack(torch._foreach_norm(torch._foreach_add(fused, unimodal))).float()
    integrated_norm = torch.stack(torch._foreach_norm(integrated)).float()
    rho = torch.where(integrated_norm > 0, summed_norm / integrated_norm, 1.0)
    scale = rho.clamp_min(1) * gamma_s
    return [g * s for g, s in zip(integrated, scale)], rho


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


class MMPareto(Method):
    options: MMParetoOptions
    head_type = UnimodalHeadsHead

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.integrating = self.options.modulates(epoch)
        self.totals = torch.zeros(len(FAMILIES), len(self.modalities), device=device)
        self.steps = 0

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        """Two backward passes (L_mm, then sum_m L_m), each encoder's gradients integrated, one update.

        The authors run one backward per loss plus one of their sum; the sum's
        gradient is g_mm + g_u, so two passes give the same numbers. The heads
        keep the plain gradient of the whole objective. Returns the fused
        cross-entropy, comparable with other methods' training loss.
        """
        model = step.model
        head = model.head
        assert isinstance(head, UnimodalHeadsHead)
        with step.autocast():
            feats = model.encode(batch.inputs, self.modalities)
            fused_loss = F.cross_entropy(head(feats), batch.labels)
            unimodal_loss = torch.stack(
                [F.cross_entropy(logits, batch.labels) for logits in head.unimodal_heads(feats).values()]
            ).sum()
        groups = [trainable(model.encoders[m]) for m in self.modalities] + [trainable(head)]
        parameters = [p for group in groups for p in group]
        fused = torch.autograd.grad(fused_loss, parameters, retain_graph=True, materialize_grads=True)
        unimodal = torch.autograd.grad(unimodal_loss, parameters, materialize_grads=True)
        step.zero_grad()
        statistics = []
        start = 0
        for group in groups[:-1]:
            end = start + len(group)
            statistics.append(self._integrate(group, fused[start:end], unimodal[start:end]))
            start = end
        for p, a, b in zip(groups[-1], fused[start:], unimodal[start:]):
            p.grad = a + b
        self.totals += torch.stack(statistics, 1)
        self.steps += 1
        step.update()
        return fused_loss.detach()

    def _integrate(self, parameters: list[nn.Parameter], fused: Sequence[Tensor], unimodal: Sequence[Tensor]) -> Tensor:
        """Set one encoder's gradients; returns its step statistics (conflict, cos, w1, mean rho).

        The statistics are measured in every epoch; outside the modulation
        window the encoder gets the plain sum g_mm + g_u instead.
        """
        products = gram(fused, unimodal)
        weights = pareto_weights(products)
        grads, rho = integrated_gradients(fused, unimodal, weights, self.options.gamma_s)
        if not self.integrating:
            grads = torch._foreach_add(fused, unimodal)
        for p, g in zip(parameters, grads):
            p.grad = g
        cos = cosine(products)
        return torch.stack([(cos < 0).float(), cos, weights[0], rho.mean()])

    def end_epoch(self) -> EpochSummary:
        means = self.totals / max(self.steps, 1)
        return EpochSummary(
            metrics={
                f"{family}.{m}": means[i, j]
                for i, family in enumerate(FAMILIES)
                for j, m in enumerate(self.modalities)
            }
        )
