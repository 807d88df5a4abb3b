"""OPM: on-the-fly prediction modulation (Wei, Hu, Du, Wen, T-PAMI 2024; METHODS.md C.2).

Each step measures how far each modality leads the others on its batch (the
summed true-class probability of its slice of the concat head, as OGM does)
and, with probability p_exe, drops the leading modality's features sample by
sample before the fusion, so the fused prediction has to lean on the others.
The kept features of every modality are scaled by 1 / (1 - theta), theta the
expected dropped share of the concatenated features, so the fused input keeps
its expected size; a sample that lost every modality leaves the loss.

Beyond the published two-modality rule: with M > 2 modalities a modality's
ratio is its score over the mean score of the others (BalanceBenchmark
divides by their sum, which needs one modality to beat all the others
together and so rarely drops anything). Evaluation uses every feature: the
prediction is the concat head's. Its options and metric declarations:
``armscope.builtin.methods.opm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from armscope.builtin.methods.opm import OPMOptions
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import ConcatHead, MultimodalModel
from armscope.step import Batch, StepContext

# Keeps 1 / (1 - theta) finite when every modality is dropped for sure (theta = 1): every sample then leaves
# the loss, and the zeroed features times a large finite factor stay zero instead of becoming NaN.
KEPT_SHARE_FLOOR = 1e-6


def true_class_scores(head: ConcatHead, feats: dict[str, Tensor], labels: Tensor) -> Tensor:
    """s_m = sum over the batch of softmax(u_m)[y], u_m modality m's slice logits (bias / M), in float32.

    A measurement, not part of the objective: the authors take the head's
    weight and bias detached, so no gradient flows through it.
    """
    with torch.no_grad():
        unimodal = head.unimodal_logits({m: h.detach().float() for m, h in feats.items()})
        return torch.stack(
            [torch.softmax(unimodal[m], 1).gather(1, labels[:, None]).sum() for m in head.modalities]
        )


def score_ratios(scores: Tensor) -> Tensor:
    """rho_m = s_m / mean_{j != m} s_j: for two modalities exactly s_m / s_other.

    The others' mean is a masked sum rather than (sum - s_m) / (M - 1), so
    that with two modalities it is the other score itself, bit for bit. A
    denominator that underflowed to 0 is floored so that the ratio stays a
    number (the modality then counts as leading, by at most tanh's bound).
    """
    n = scores.numel()
    others = ~torch.eye(n, dtype=torch.bool, device=scores.device)
    mean_others = (scores[None, :] * others).sum(1) / (n - 1)
    return scores / mean_others.clamp_min(torch.finfo(scores.dtype).tiny)


def discrepancies(ratios: Tensor) -> Tensor:
    """r_m = tanh(max(rho_m - 1, 0)): 0 for a modality that does not lead, up to 1 for a large lead."""
    return torch.tanh((ratios - 1).clamp_min(0))


def drop_probabilities(discrepancy: Tensor, q_base: float, lam: float) -> Tensor:
    """q_m = clip(q_base * (1 + lam * r_m), 0, 1) for a leading modality (r_m > 0), else 0."""
    q = (q_base * (1 + lam * discrepancy)).clamp(0, 1)
    return torch.where(discrepancy > 0, q, torch.zeros_like(q))


def drop_share(q: Tensor, widths: Sequence[int]) -> Tensor:
    """theta = sum_m D_m q_m / sum_m D_m: the expected share of the concatenated features that is dropped."""
    dims = q.new_tensor(list(widths))
    return (dims * q).sum() / dims.sum()


def keep_masks(q: Tensor, batch_size: int, executed: Tensor) -> Tensor:
    """kappa (batch x modality): 1 keeps a sample's features of a modality, 0 drops them.

    Drawn from torch's global generator on q's device, kappa ~ Bernoulli(1 - q),
    on every step so that the stream of draws does not depend on the data;
    all ones where the step's draw did not run the dropping.
    """
    kept = torch.bernoulli((1 - q).expand(batch_size, -1).contiguous())
    return torch.where(executed, kept, torch.ones_like(kept))


def drop_features(feats: dict[str, Tensor], modalities: Sequence[str], keep: Tensor, theta: Tensor) -> dict[str, Tensor]:
    """h~_{i,m} = kappa_{i,m} h_{i,m} / (1 - theta): every modality's kept features rescaled by the same factor.

    The factor is a constant of the graph, so the features' gradients carry
    it too, as in the authors' code. It stays in float32 (bf16 features are
    scaled into float32), so that the head's autocast rounds the product once.
    """
    rescale = 1 / (1 - theta).clamp_min(KEPT_SHARE_FLOOR)
    return {m: feats[m] * (keep[:, i, None] * rescale) for i, m in enumerate(modalities)}


def kept_samples(keep: Tensor) -> Tensor:
    """Whether each sample kept at least one modality: a sample with every feature dropped has nothing to learn from."""
    return keep.amax(1) > 0


def kept_mean(per_sample: Tensor, kept: Tensor) -> Tensor:
    """The mean of the kept samples' losses, as if the removed ones were not in the batch (0 if none is kept)."""
    weights = kept.to(per_sample.dtype)
    return (per_sample * weights).sum() / weights.sum().clamp_min(1)


def concat_head(model: MultimodalModel) -> ConcatHead:
    head = model.head
    assert isinstance(head, ConcatHead)
    return head


class OPM(Method):
    options: OPMOptions

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.modulating = self.options.modulates(epoch)
        size = len(self.modalities)
        self.ratio_sum = torch.zeros(size, device=device)
        self.prob_sum = torch.zeros(size, device=device)
        self.dropped = torch.zeros(size, device=device)
        self.drop_steps = torch.zeros((), device=device)
        self.removed = torch.zeros((), device=device)
        self.steps = 0
        self.samples = 0

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        """One forward pass of the encoders, the ratios from it, the fused loss on the (maybe) dropped features."""
        model, head, labels = step.model, concat_head(step.model), batch.labels
        with step.autocast():
            feats = model.encode(batch.inputs, self.modalities)
        ratios = score_ratios(true_class_scores(head, feats, labels))
        if self.modulating:
            keep, theta = self._keep_masks(ratios, feats)
            inputs, kept = drop_features(feats, self.modalities, keep, theta), kept_samples(keep)
        else:
            inputs, kept = feats, torch.ones_like(labels, dtype=torch.bool)
        with step.autocast():
            logits = head(inputs)
        loss = kept_mean(F.cross_entropy(logits.float(), labels, reduction="none"), kept)
        step.zero_grad()
        loss.backward()
        step.update()
        self._record(ratios, kept)
        return loss.detach()

    def _keep_masks(self, ratios: Tensor, feats: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """kappa and theta of a step in the modulation window: the drop probabilities, then one draw for the batch
        (p_exe) and one per sample and modality; theta is 0 where the batch's draw did not run the dropping."""
        options = self.options
        q = drop_probabilities(discrepancies(ratios), options.q_base, options.lam)
        executed = torch.rand((), device=q.device) < options.p_exe
        keep = keep_masks(q, feats[self.modalities[0]].shape[0], executed)
        theta = torch.where(executed, drop_share(q, [feats[m].shape[1] for m in self.modalities]), 0.0)
        self.prob_sum += q
        self.dropped += (1 - keep).sum(0)
        self.drop_steps += executed
        return keep, theta

    def _record(self, ratios: Tensor, kept: Tensor) -> None:
        self.ratio_sum += ratios
        self.removed += (~kept).sum()
        self.steps += 1
        self.samples += kept.shape[0]

    def end_epoch(self) -> EpochSummary:
        count, samples = max(self.steps, 1), max(self.samples, 1)
        metrics: dict[str, Tensor] = {
            "opm_drop_steps": self.drop_steps / count,
            "opm_removed": self.removed / samples,
        }
        for i, m in enumerate(self.modalities):
            metrics[f"opm_ratio.{m}"] = self.ratio_sum[i] / count
            metrics[f"opm_drop_prob.{m}"] = self.prob_sum[i] / count
            metrics[f"opm_dropped.{m}"] = self.dropped[i] / samples
        return EpochSummary(metrics=metrics)
