"""AGM: Adaptive Gradient Modulation with Shapley mono-modal responses (Li et al., ICCV 2023; METHODS.md A.1).

Each step splits the fused logits into one response per modality, phi_m, the
Shapley value of the fusion head's output over coalitions of modalities: an
absent modality's features are zeroed at the head's input, and the empty
coalition's output counts as 0, as in the authors' code. The responses sum to
the fused logits, so the loss and the prediction are the plain ones; what
changes is the backward pass, where the gradient of phi_m is multiplied by
c_m. A modality doing better on this batch than its running average says it
usually does (r_m above r*_m) is slowed down, one doing worse is sped up: the
authors' sign, where r_m grows with the modality's strength.

Features are encoded once per step; the coalitions are head evaluations on
masked copies of them, stacked into one head call. They carry gradient, as
the authors' padded passes do: with the concat head the responses are then
each a function of their own modality's features only, so the scaled
gradient of phi_m reaches modality m alone and encoder m's gradient is
exactly c_m times the plain one. Its options and metric declarations:
``armscope.builtin.methods.agm``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import BaseModel
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.methods.agm import AGMOptions
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import MultimodalModel
from armscope.shapley import shapley_weights, subset_masks

PROBABILITY_FLOOR = 1e-8  # the authors' floor on the true-class probability of a response


def coalitions(n: int) -> list[tuple[int, ...]]:
    """Every non-empty coalition of modalities 0..n-1, coalition k holding the modalities whose bit is set in k + 1."""
    return [tuple(m for m in range(n) if code >> m & 1) for code in range(1, 2**n)]


def coalition_masks(n: int) -> Tensor:
    """Membership flags (coalition x modality), in ``coalitions`` order, as 0/1 floats to multiply features by."""
    return subset_masks(n)[1:].float()


def shapley_matrix(n: int) -> Tensor:
    """A (n x coalitions) with phi = A @ f(coalitions): the Shapley weights, with f(empty) := 0.

    phi_m = sum over S of others of |S|!(n-|S|-1)!/n! * (f(S + m) - f(S)): the shared Shapley map
    (``armscope.shapley``) without the empty coalition's column, which weighs a value of 0.
    """
    return (shapley_weights(n)[1:].T.double() / math.factorial(n)).float()


def coalition_outputs(head: nn.Module, feats: dict[str, Tensor], modalities: list[str], masks: Tensor) -> Tensor:
    """The head's logits for every non-empty coalition (coalition x batch x class), from one stacked head call.

    The other modalities' features are zeroed, the convention of every
    masked measure here; the full coalition's row is the fused output itself.
    """
    count, size = masks.shape[0], feats[modalities[0]].shape[0]
    stacked = {
        m: (feats[m][None] * masks[:, i, None, None].to(feats[m].dtype)).flatten(0, 1)
        for i, m in enumerate(modalities)
    }
    return head(stacked).reshape(count, size, -1)


def shapley_responses(outputs: Tensor, matrix: Tensor) -> Tensor:
    """phi (modality x batch x class) from the coalitions' outputs, in float32: they sum to the full coalition's."""
    return torch.einsum("mk,kbc->mbc", matrix, outputs.float())


class _ScaledGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: Tensor) -> Tensor:
        ctx.save_for_backward(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (scale,) = ctx.saved_tensors
        return grad * scale, None


def scale_gradient(x: Tensor, scale: Tensor) -> Tensor:
    """x unchanged; its gradient multiplied by ``scale`` (broadcast): the authors' backward hook, on every path
    through x, without the host reading the scale."""
    return _ScaledGradient.apply(x, scale.detach())


def response_losses(responses: Tensor, labels: Tensor) -> Tensor:
    """s_m: the batch's mean of -log p_y(phi_m), each probability floored at 1e-8 as the authors do."""
    log_p = torch.log_softmax(responses.detach().float(), dim=-1)
    index = labels[None, :, None].expand(responses.shape[0], -1, 1)
    true_class = log_p.gather(-1, index).squeeze(-1)
    return -true_class.clamp_min(math.log(PROBABILITY_FLOOR)).mean(1)


def response_ratios(losses: Tensor) -> Tensor:
    """r_m = exp(M/(M-1) * (mean_k s_k - s_m)): above 1 where modality m's responses fit better than the mean."""
    n = losses.numel()
    return torch.exp(n / (n - 1) * (losses.mean() - losses))


def agm_coefficients(losses: Tensor, running: Tensor, alpha: float, clamp: float) -> tuple[Tensor, Tensor, Tensor]:
    """(r, r*, c): the batch's ratios, the ratios of the running losses, and c_m = exp(alpha * min(r*_m - r_m, K))."""
    ratio, target = response_ratios(losses), response_ratios(running)
    return ratio, target, torch.exp(alpha * (target - ratio).clamp_max(clamp))


def running_mean(running: Tensor, losses: Tensor, iteration: int) -> Tensor:
    """S_m after the run's ``iteration``-th step (from 1): the mean of every step's s_m so far."""
    return running * ((iteration - 1) / iteration) + losses / iteration


def response_hits(responses: Tensor, labels: Tensor) -> Tensor:
    """How many samples each modality's response alone classifies correctly (argmax phi_m = y)."""
    return (responses.detach().argmax(-1) == labels[None]).sum(1)


def head_spiked(head_grads: list[Tensor], limit: float) -> Tensor:
    """Whether any fusion-head gradient entry lies outside +/- limit: the authors' trigger for clipping."""
    return torch.stack([g.abs().amax() for g in head_grads]).amax() > limit


def clip_factor(total_norm: Tensor, spiked: Tensor, limit: float) -> Tensor:
    """clip_grad_norm_'s factor min(1, limit / (norm + 1e-6)) where ``spiked``, else 1: decided on the device."""
    clipped = (limit / (total_norm + 1e-6)).clamp(max=1.0)
    return torch.where(spiked, clipped, torch.ones_like(clipped))


class AGM(Method):
    options: AGMOptions

    def __init__(self, options: BaseModel, modalities: list[str], n_classes: int, feature_dim: int) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        self.masks = coalition_masks(len(self.modalities))
        self.matrix = shapley_matrix(len(self.modalities))
        # Kept across epochs: the running response losses S and the run's step count t.
        self.running: Tensor | None = None
        self.iterations = 0

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.modulating = self.options.modulates(epoch)
        size = len(self.modalities)
        self.masks, self.matrix = self.masks.to(device), self.matrix.to(device)
        self.running = torch.zeros(size, device=device) if self.running is None else self.running.to(device)
        self.coeff_sum = torch.zeros(size, device=device)
        self.coeff_min = torch.full((size,), math.inf, device=device)
        self.coeff_max = torch.full((size,), -math.inf, device=device)
        self.ratio_sum = torch.zeros(size, device=device)
        self.target_sum = torch.zeros(size, device=device)
        self.loss_sum = torch.zeros(size, device=device)
        self.hits = torch.zeros(size, dtype=torch.int64, device=device)
        self.clipped = torch.zeros((), dtype=torch.int64, device=device)
        self.steps = 0
        self.samples = 0

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        assert self.running is not None
        outputs = coalition_outputs(model.head, feats, self.modalities, self.masks)
        responses = shapley_responses(outputs, self.matrix)
        losses = response_losses(responses, labels)
        ratio, target, coeff = agm_coefficients(losses, self.running, self.options.alpha, self.options.clamp)
        self.iterations += 1
        self.running = running_mean(self.running, losses, self.iterations)
        applied = coeff if self.modulating else torch.ones_like(coeff)
        self._record(applied, ratio, target, losses, response_hits(responses, labels), labels.shape[0])
        fused = scale_gradient(responses, applied[:, None, None]).sum(0)
        return F.cross_entropy(fused, labels)

    def _record(
        self, applied: Tensor, ratio: Tensor, target: Tensor, losses: Tensor, hits: Tensor, samples: int
    ) -> None:
        self.coeff_sum += applied
        torch.minimum(self.coeff_min, applied, out=self.coeff_min)
        torch.maximum(self.coeff_max, applied, out=self.coeff_max)
        self.ratio_sum += ratio
        self.target_sum += target
        self.loss_sum += losses
        self.hits += hits
        self.steps += 1
        self.samples += samples

    def after_backward(self, model: MultimodalModel, step: int) -> None:
        """The authors' safeguard: clip the whole gradient's norm when a fusion-head entry spikes."""
        limit = self.options.grad_clip
        if limit is None:
            return
        head_grads = [p.grad for p in model.head.parameters() if p.grad is not None]
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        spiked = head_spiked(head_grads, limit)
        factor = clip_factor(torch.nn.utils.get_total_norm(grads), spiked, limit)
        torch._foreach_mul_(grads, factor)
        self.clipped += spiked

    def end_epoch(self) -> EpochSummary:
        assert self.running is not None
        count, samples = max(self.steps, 1), max(self.samples, 1)
        metrics: dict[str, Tensor] = {"agm_clipped_steps": self.clipped.float()}
        for i, m in enumerate(self.modalities):
            metrics[f"agm_coeff.{m}"] = self.coeff_sum[i] / count
            metrics[f"agm_coeff_min.{m}"] = self.coeff_min[i]
            metrics[f"agm_coeff_max.{m}"] = self.coeff_max[i]
            metrics[f"agm_ratio.{m}"] = self.ratio_sum[i] / count
            metrics[f"agm_target_ratio.{m}"] = self.target_sum[i] / count
            metrics[f"agm_score.{m}"] = self.loss_sum[i] / count
            metrics[f"agm_running_score.{m}"] = self.running[i]
            metrics[f"agm_response_acc.{m}"] = self.hits[i] / samples
        return EpochSummary(metrics=metrics)

    def state_dict(self) -> dict[str, Any]:
        return {"running_scores": self.running, "iterations": self.iterations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.running, self.iterations = state["running_scores"], state["iterations"]
