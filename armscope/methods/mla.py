"""MLA: alternating unimodal adaptation (Zhang, Yoon, Bansal, Yao, CVPR 2024; METHODS.md Part C section 1).

A joint loss lets the modality that learns fastest take the shared gradient and
leave the others under-trained. MLA never forms one: each batch trains the
modalities one after another, each with its own cross-entropy through a single
classifier psi shared by all (``SharedHead``), and one update per modality, so
every encoder is optimised on its own loss alone. Training psi in turns would
make it forget the earlier modalities' classes, so before each update its
weight gradient is projected with P, a matrix that the features' batch means
shrink along the directions already used (recursive least squares, as in
orthogonal weight modification): G_W <- G_W P^T. At test time each sample's
unimodal logits are fused with weights softmax(-entropy) over modalities, so a
confident modality counts more than an uncertain one.

Choices where the sources differ: the gradient is replaced by its projection,
as the paper and the authors' code state it (BalanceMM adds the projection to
the gradient); the authors' code guards the projection with a parameter name
that ``nn.Linear`` does not have, so there it never runs, and here it is
applied as the paper intends; the entropy is per sample over the classes (the
authors' code takes the softmax over the batch axis); P is feature_dim square
(the authors hard-code 512). The authors have no modulation window, and the
method trains this way from the first epoch to the last. Any number of
modalities. Its options and metric declarations: ``armscope.builtin.methods.mla``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.methods.mla import MLAOptions, shared_head_size
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import FusionHead, MultimodalModel
from armscope.step import Batch, StepContext


def batch_alpha(base: float, batch_index: int, batches: int) -> float:
    """a_b = base^(1 + b/N_b): the regulariser of P's update falls over each epoch (0.1 to about 0.01).

    Later batches of an epoch thus remove their feature direction more
    completely; a plain number, from the step's position alone.
    """
    return base ** (1 + batch_index / batches)


def updated_projection(projection: Tensor, feature_mean: Tensor, alpha: float) -> Tensor:
    """P <- P - k k^T / (a + r k) with k = P r^T, then P / ||P||_F, for the batch's mean feature r.

    The recursive least-squares step shrinks P along r, so a gradient
    projected with it barely moves psi's response to features like the ones
    already seen; normalising keeps P's scale fixed over the run. P stays
    positive semi-definite, so r k >= 0 and the denominator is at least a.
    """
    k = projection @ feature_mean
    shrunk = projection - torch.outer(k, k) / (alpha + feature_mean @ k)
    return shrunk / torch.linalg.matrix_norm(shrunk)


def projected_gradient(grad: Tensor, projection: Tensor) -> Tensor:
    """G_W P^T: the classifier's weight gradient (classes x D) with its feature directions re-weighted by P."""
    return grad @ projection.T


def kept_fraction(grad: Tensor, projected: Tensor) -> Tensor:
    """||projected|| / ||grad||, and 1 for a zero gradient (nothing was taken away)."""
    norm = torch.linalg.vector_norm(grad.float())
    return torch.where(norm > 0, torch.linalg.vector_norm(projected.float()) / norm, 1.0)


def entropy(logits: Tensor) -> Tensor:
    """H = -sum_c p_c ln p_c of softmax(logits) over the last axis, in float32 (from log-probabilities: no 0 * -inf)."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(-1)


def present_modalities(features: Tensor) -> Tensor:
    """Which samples of which modality carry features (M x B), from features stacked M x B x D.

    A masked modality's features are zeroed, and psi(0) is psi's bias, the same
    for every sample: it says nothing about the sample, so it must not get a
    fusion weight, least of all a large one for a peaked bias.
    """
    return features.ne(0).any(-1)


def fusion_weights(logits: Tensor, present: Tensor, uncertainty: bool = True) -> Tensor:
    """lambda (M x B): per sample, softmax over the present modalities of -H_m (uncertainty) or of 0 (equal weights).

    softmax(-H) equals the paper's exp(max_k H_k - H_m) / sum_j exp(max_k H_k - H_j).
    Absent modalities get weight 0; a sample with none present counts all
    alike (their logits are then all psi's bias, so any weights give the same
    fused logits).
    """
    scores = -entropy(logits) if uncertainty else torch.zeros(logits.shape[:2], device=logits.device)
    counted = present | ~present.any(0, keepdim=True)
    return torch.softmax(scores.masked_fill(~counted, -math.inf), dim=0)


def fuse(logits: Tensor, weights: Tensor) -> Tensor:
    """sum_m lambda_m z_m (B x C) from logits stacked M x B x C, in float32."""
    return (weights.unsqueeze(-1) * logits.float()).sum(0)


def projection_shift(projection: Tensor) -> Tensor:
    """||P/||P||_F - I/sqrt(D)||_F: how far P has moved from the identity it starts as, whatever its scale."""
    size = projection.shape[0]
    identity = torch.eye(size, device=projection.device) / math.sqrt(size)
    return torch.linalg.matrix_norm(projection / torch.linalg.matrix_norm(projection) - identity)


class SharedHead(FusionHead):
    """psi, one linear classifier (D -> classes) for every modality; its fused logits are MLA's test-time fusion."""

    def __init__(self, modalities: list[str], feature_dim: int, n_classes: int, uncertainty: bool = True) -> None:
        super().__init__(modalities, feature_dim, n_classes)
        self.uncertainty = uncertainty
        self.classifier = nn.Linear(feature_dim, n_classes)

    size = staticmethod(shared_head_size)

    def stacked_features(self, feats: dict[str, Tensor]) -> Tensor:
        return torch.stack([feats[m] for m in self.modalities])

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        """The evaluation prediction (``Method.predict``), per sample and branch-free, masked modalities left out."""
        features = self.stacked_features(feats)
        logits = self.classifier(features)
        return fuse(logits, fusion_weights(logits, present_modalities(features), self.uncertainty))


def shared_head(model: MultimodalModel) -> SharedHead:
    head = model.head
    assert isinstance(head, SharedHead)
    return head


class MLA(Method):
    options: MLAOptions
    head_type = SharedHead

    def __init__(self, options: MLAOptions, modalities: list[str], n_classes: int, feature_dim: int) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        self.projection = torch.eye(feature_dim)

    def build_head(self) -> SharedHead:
        return SharedHead(self.modalities, self.feature_dim, self.n_classes, self.options.fusion == "uncertainty")

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.first_step, self.batches = first_step, max(steps, 1)
        self.projection = self.projection.to(device)
        size = len(self.modalities)
        self.loss_sum = torch.zeros(size, device=device)
        self.weight_sum = torch.zeros(size, device=device)
        self.kept_sum = torch.zeros(size, device=device)
        self.steps = 0
        self.samples = 0

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        """One sub-step per modality, in a fixed order: its loss through psi, backward, projection, update.

        Only encoder m and psi are in sub-step m's graph and update. The
        projection is skipped on the run's very first sub-step, as in the
        authors' code. Returns the mean of the L_m, comparable with other
        methods' training loss.
        """
        model, head = step.model, shared_head(step.model)
        alpha = batch_alpha(self.options.projection_alpha, batch.step - self.first_step, self.batches)
        losses, features, logits = [], [], []
        for i, m in enumerate(self.modalities):
            encoder = model.encoders[m]
            with step.autocast():
                h = encoder(batch.inputs[m])
                z = head.classifier(h)
                loss = F.cross_entropy(z, batch.labels)
            step.zero_grad()
            loss.backward()
            if self.options.gradient_modification and (batch.step, i) != (0, 0):
                self.kept_sum[i] += self._modify_gradient(head.classifier.weight, h.detach(), alpha)
            else:
                self.kept_sum[i] += 1
            step.update([*encoder.parameters(), *head.parameters()])
            losses.append(loss.detach().float())
            features.append(h.detach())
            logits.append(z.detach())
        unimodal_losses = torch.stack(losses)
        self._record(unimodal_losses, torch.stack(features), torch.stack(logits), head.uncertainty)
        return unimodal_losses.mean()

    @torch.no_grad()
    def _modify_gradient(self, weight: nn.Parameter, features: Tensor, alpha: float) -> Tensor:
        """Updates P with the batch's mean feature and replaces psi's weight gradient by G_W P^T; returns the norm kept."""
        assert weight.grad is not None
        self.projection = updated_projection(self.projection, features.float().mean(0), alpha)
        grad = weight.grad
        projected = projected_gradient(grad.float(), self.projection)
        weight.grad = projected.to(grad.dtype)
        return kept_fraction(grad, projected)

    def _record(self, losses: Tensor, features: Tensor, logits: Tensor, uncertainty: bool) -> None:
        """Adds the step's unimodal losses and its samples' test-time weights to the epoch's sums, on the device."""
        weights = fusion_weights(logits, present_modalities(features), uncertainty)
        self.loss_sum += losses
        self.weight_sum += weights.sum(1)
        self.steps += 1
        self.samples += logits.shape[1]

    def end_epoch(self) -> EpochSummary:
        steps, samples = max(self.steps, 1), max(self.samples, 1)
        metrics: dict[str, Tensor] = {}
        for i, m in enumerate(self.modalities):
            metrics[f"mla_loss.{m}"] = self.loss_sum[i] / steps
            metrics[f"mla_weight.{m}"] = self.weight_sum[i] / samples
            metrics[f"mla_grad_kept.{m}"] = self.kept_sum[i] / steps
        metrics["mla_projection_shift"] = projection_shift(self.projection)
        return EpochSummary(metrics=metrics)

    def state_dict(self) -> dict[str, Any]:
        return {"projection": self.projection}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.projection = state["projection"]
