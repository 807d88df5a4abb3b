"""OGM and OGM-GE (Peng et al., CVPR 2022), as comparison methods (ARM.md section 4).

Beyond the published two-modality rule: with M > 2 modalities the ratio of
modality m is its score over the mean score of the others, and every modality
whose ratio exceeds 1 is slowed down. Encoders without convolutions (MLPs)
have their weight matrices modulated where the original modulates
convolution kernels: every encoder parameter with two or more dimensions.

The option ``form: tpami2024`` gives the rule of the T-PAMI 2024 version
(Wei, Hu, Du, Wen): the ratio is the mean of the modality's ratios to each
other modality, a modality is slowed only when its ratio is strictly above 1,
and training starts with six unmodulated epochs (the options' ``modulates``).
The coefficient, the noise and the parameters modulated are the same in both.
Its options and metric declarations: ``armscope.builtin.methods.ogm``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from armscope.builtin.methods.ogm import OGMOptions
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import ConcatHead, MultimodalModel


def ogm_coefficients(scores: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """Ratios rho_m and coefficients k_m from the summed true-class probabilities s_m.

    For two modalities (a, v): rho_v = s_v / s_a; the modality with rho > 1
    gets k = 1 - tanh(alpha * rho), the other 1; on a tie the first is slowed,
    as in the original code.
    """
    n = scores.numel()
    others = (scores.sum() - scores) / (n - 1)
    ratio = scores / others
    slowed = ratio > 1
    tie = ~slowed.any()
    slowed = slowed | (tie & (torch.arange(n, device=scores.device) == 0))
    coeff = torch.where(slowed, 1 - torch.tanh(alpha * ratio), torch.ones_like(ratio))
    return ratio, coeff


def mean_pairwise_ratios(scores: Tensor) -> Tensor:
    """rho_m = (1 / (M - 1)) sum_{j != m} s_m / s_j: the T-PAMI version's ratio, s_m / s_other for two modalities.

    The mean of the ratios rather than the ratio to the mean: with M > 2 it is
    never below the CVPR form's s_m / mean_{j != m} s_j, and above it the more
    the others' scores differ, so a modality far ahead of one weak modality is
    slowed harder. A score that underflowed to 0 is floored as a divisor so
    that every ratio stays a number (the others then read as far ahead of it).
    """
    n = scores.numel()
    ratios = scores[:, None] / scores[None, :].clamp_min(torch.finfo(scores.dtype).tiny)
    others = ~torch.eye(n, dtype=torch.bool, device=scores.device)
    return (ratios * others).sum(1) / (n - 1)


def tpami_coefficients(scores: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """Ratios rho_m and coefficients k_m of the T-PAMI form: k_m = 1 - tanh(alpha * rho_m) where rho_m > 1, else 1.

    Strictly above 1: on an exact tie no modality is slowed (the authors' code
    slows the second there, an artefact of its if/else over two modalities).
    """
    ratio = mean_pairwise_ratios(scores)
    coeff = torch.where(ratio > 1, 1 - torch.tanh(alpha * ratio), torch.ones_like(ratio))
    return ratio, coeff


COEFFICIENTS = {"cvpr2022": ogm_coefficients, "tpami2024": tpami_coefficients}


def gradient_noise(grads: list[Tensor]) -> list[Tensor]:
    """OGM-GE's noise: N(0, 1) scaled by each gradient's standard deviation (+ 1e-8), drawn in list order."""
    scales = [g.std() for g in grads]
    torch._foreach_add_(scales, 1e-8)
    noise = [torch.randn_like(g) for g in grads]
    torch._foreach_mul_(noise, scales)
    return noise


class OGM(Method):
    options: OGMOptions
    with_noise = False

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.modulating = self.options.modulates(epoch)
        size = len(self.modalities)
        self.ratio_sum = torch.zeros(size, device=device)
        self.coeff_sum = torch.zeros(size, device=device)
        self.steps = 0

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        head = model.head
        assert isinstance(head, ConcatHead)
        with torch.no_grad():
            unimodal = head.unimodal_logits({m: h.detach() for m, h in feats.items()})
            scores = torch.stack(
                [
                    torch.softmax(unimodal[m].float(), 1).gather(1, labels[:, None]).sum()
                    for m in self.modalities
                ]
            )
            ratio, coeff = COEFFICIENTS[self.options.form](scores, self.options.alpha)
        self.coeff = coeff
        self.ratio_sum += ratio
        self.coeff_sum += coeff
        self.steps += 1
        return F.cross_entropy(head(feats), labels)

    def after_backward(self, model: MultimodalModel, step: int) -> None:
        """k_m * g (+ Gaussian noise of g's standard deviation) on every >= 2-D gradient of encoder m.

        The same arithmetic, in the same order, as the published one statement
        per parameter, with the scaling and the sums as list operations: about
        two host calls per parameter instead of six, which shows on a GPU
        whose step is bound by kernel launches.
        """
        if not self.modulating:
            return
        for i, m in enumerate(self.modalities):
            grads = [p.grad for p in model.encoders[m].parameters() if p.grad is not None and p.grad.dim() >= 2]
            if not grads:
                continue
            noise = gradient_noise(grads) if self.with_noise else None
            torch._foreach_mul_(grads, self.coeff[i])
            if noise is not None:
                torch._foreach_add_(grads, noise)

    def end_epoch(self) -> EpochSummary:
        count = max(self.steps, 1)
        metrics: dict[str, Tensor] = {}
        for i, m in enumerate(self.modalities):
            metrics[f"ogm_ratio.{m}"] = self.ratio_sum[i] / count
            metrics[f"ogm_coeff.{m}"] = self.coeff_sum[i] / count
        return EpochSummary(metrics=metrics)


class OGMGE(OGM):
    with_noise = True

