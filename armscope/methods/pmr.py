"""PMR, Prototypical Modal Rebalance (Fan et al., CVPR 2023).

Each modality has class prototypes (class means of its features over a slice
of the training data, moved by momentum across epochs). A step scores each
modality by how much probability its prototype classifier (softmax of the
negative Euclidean distances) gives the true classes, and adds the
prototypical cross-entropy of the lagging modalities to the fused loss, which
accelerates their encoders without slowing the dominant one.

Beyond the published two-modality rule: every modality whose score is below
the largest gets the weight alpha, the others 0. With two modalities that is
the authors' rule exactly (rho = s_a / s_v > 1 boosts v, < 1 boosts a, a tie
boosts neither). Its options and metric declarations: ``armscope.builtin.methods.pmr``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from armscope.builtin.methods.pmr import PMROptions
from armscope.epoch_pass import TrainingData
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import MultimodalModel


def prototype_batch_count(n_batches: int, fraction: float) -> int:
    """How many of the first training batches the prototype pass reads: ceil(fraction x n), at least one.

    The product is rounded first so that a fraction with no exact binary form
    (0.1 x 30 = 3.0000000000000004) does not read a batch more than asked.
    """
    return max(1, math.ceil(round(fraction * n_batches, 9)))


def prototype_logits(feats: Tensor, prototypes: Tensor) -> Tensor:
    """sim[i, k] = -||z_i - P_k||_2, in float32 whatever the run's precision.

    The exact (not matrix-product) distance, as the authors compute it, so that
    a feature on its prototype is at distance 0 with gradient 0 rather than a
    rounding residue; the prototypes carry no gradient.
    """
    return -torch.cdist(feats.float(), prototypes.float(), compute_mode="donot_use_mm_for_euclid_dist")


def true_class_score(logits: Tensor, labels: Tensor) -> Tensor:
    """score = sum_i softmax(logits_i)[y_i]: a batch sum, only ever compared between modalities."""
    return torch.softmax(logits.float(), dim=1).gather(1, labels[:, None]).sum()


def rebalance_weights(scores: Tensor, alpha: float) -> Tensor:
    """beta_m = alpha for every modality scoring below the best, else 0 (a tie boosts none).

    For two modalities this is the authors' rule on rho = s_a / s_v, also at
    its edges: a zero score is below any positive one, and equal scores give
    no boost as rho = 1 does.
    """
    lagging = scores < scores.max()
    return lagging.to(scores.dtype) * alpha


def first_prototypes(sums: Tensor, counts: Tensor) -> Tensor:
    """The class means; a class absent from the pass gets the mean of every feature the pass read.

    The authors' code divides by a zero count there and trains on NaN; the
    overall mean is a finite prototype that favours no class and is replaced
    as soon as a pass sees the class.
    """
    seen = counts[:, None] > 0
    means = sums / counts.clamp_min(1)[:, None]
    overall = sums.sum(0) / counts.sum().clamp_min(1)
    return torch.where(seen, means, overall.expand_as(means))


def momentum_prototypes(sums: Tensor, counts: Tensor, previous: Tensor, momentum: float) -> Tensor:
    """P <- (1 - mu) * P_new + mu * P_old per class; a class absent from the pass keeps P_old."""
    seen = counts[:, None] > 0
    means = sums / counts.clamp_min(1)[:, None]
    return torch.where(seen, (1 - momentum) * means + momentum * previous, previous)


class PMR(Method):
    options: PMROptions

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.prototypes: dict[str, Tensor] = {}

    def epoch_pass(self, data: TrainingData) -> None:
        """New prototypes from the first batches of the split, before the epoch's steps use them."""
        sums, counts = self._class_sums(data)
        drift = []
        for m in self.encoded_modalities():
            previous = self.prototypes.get(m)
            if previous is None:
                fresh = first_prototypes(sums[m], counts)
                drift.append(torch.zeros((), device=data.device))
            else:
                previous = previous.to(data.device)
                fresh = momentum_prototypes(sums[m], counts, previous, self.options.momentum)
                drift.append(torch.linalg.vector_norm(fresh - previous))
            self.prototypes[m] = fresh
        self.drift = torch.stack(drift)

    def _class_sums(self, data: TrainingData) -> tuple[dict[str, Tensor], Tensor]:
        """Per modality the float32 sum of features per class, and the class counts, over the pass's batches.

        The number of batches comes from the split's size, never from data values,
        so the pass queues its work without reading anything back.
        """
        model = data.model
        model.eval()
        total = prototype_batch_count(math.ceil(len(data) / data.batch_size), self.options.prototype_fraction)
        sums = {m: torch.zeros(self.n_classes, self.feature_dim, device=data.device) for m in self.encoded_modalities()}
        counts = torch.zeros(self.n_classes, device=data.device)
        with torch.no_grad(), data.autocast():
            for done, batch in enumerate(data.batches(), start=1):
                feats = model.encode(batch.inputs, self.encoded_modalities())
                for m, h in feats.items():
                    sums[m].index_add_(0, batch.labels, h.float())
                counts.index_add_(0, batch.labels, torch.ones_like(batch.labels, dtype=counts.dtype))
                data.progress("prototypes", done, total)
                if done == total:
                    break
        return sums, counts

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.modulating = self.options.modulates(epoch)
        self.prototypes = {m: p.to(device) for m, p in self.prototypes.items()}
        size = len(self.encoded_modalities())
        self.score_sum = torch.zeros(size, device=device)
        self.boosted_sum = torch.zeros(size, device=device)
        self.pce_sum = torch.zeros(size, device=device)
        self.correct = torch.zeros(size, device=device)
        self.steps = 0
        self.samples = 0

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        """CE(fused) + sum_m beta_m * CE(-distances to P_m, y), the sum only inside the modulation window."""
        fused = F.cross_entropy(model.head(feats), labels)
        logits = [prototype_logits(feats[m], self.prototypes[m]) for m in self.encoded_modalities()]
        pce = torch.stack([F.cross_entropy(sim, labels) for sim in logits])
        scores = torch.stack([true_class_score(sim.detach(), labels) for sim in logits])
        weights = rebalance_weights(scores, self.options.alpha) if self.modulating else torch.zeros_like(scores)
        self._record(logits, labels, scores, weights, pce.detach())
        if not self.modulating:
            return fused
        return fused + (weights * pce).sum()

    def _record(self, logits: list[Tensor], labels: Tensor, scores: Tensor, weights: Tensor, pce: Tensor) -> None:
        batch_size = labels.shape[0]
        hits = torch.stack([(sim.detach().argmax(1) == labels).sum() for sim in logits])
        self.score_sum += scores / batch_size
        self.boosted_sum += weights > 0
        self.pce_sum += pce
        self.correct += hits
        self.steps += 1
        self.samples += batch_size

    def end_epoch(self) -> EpochSummary:
        steps, samples = max(self.steps, 1), max(self.samples, 1)
        metrics: dict[str, Tensor] = {}
        for i, m in enumerate(self.encoded_modalities()):
            metrics[f"pmr_score.{m}"] = self.score_sum[i] / steps
            metrics[f"pmr_boosted.{m}"] = self.boosted_sum[i] / steps
            metrics[f"pmr_pce.{m}"] = self.pce_sum[i] / steps
            metrics[f"pmr_proto_acc.{m}"] = self.correct[i] / samples
            metrics[f"pmr_drift.{m}"] = self.drift[i]
        return EpochSummary(metrics=metrics)

    def state_dict(self) -> dict[str, Any]:
        return {"prototypes": dict(self.prototypes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prototypes = dict(state["prototypes"])
