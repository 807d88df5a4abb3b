"""Gradient-Blending (Wang, Tran, Feiszli, CVPR 2020; METHODS.md Part A section 4).

The loss is sum_k w_k CE(logits_k, y) over K = M + 1 heads: each modality's
own classifier on its encoder, and the fused (concat) classifier. At epoch 1
and every ``super_epoch`` epochs the weights are re-estimated: for each head a
copy of the model trains only what that head uses for ``estimate_epochs``
epochs, and the head's mean cross-entropy on the training samples (T) and on a
held-out part of the training split (V) is measured before and after. A head
that generalised much (ΔG = V_N − V_{N+n}) for little extra overfitting
(ΔO = (V − T)_{N+n} − (V − T)_N) gets a large weight, w_k ∝ max(ΔG, 0) / ΔO².

Choices against BalanceMM: means of per-sample losses instead of sums of
batch losses (sums let the train and held-out sizes decide O); max(ΔG, 0)
instead of abs(), so a head whose held-out loss got worse gets no weight
(uniform weights where that would leave an encoder untrained); the
held-out samples come from the training split and are never trained on,
instead of the test split; the unimodal heads are the modalities' own
classifiers (the paper's unimodal branches), not the fused head with the
other modalities zero-filled. Its options and metric declarations:
``armscope.builtin.methods.gblending``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.methods.gblending import GBlendingOptions
from armscope.epoch_pass import TrainingData
from armscope.holdout import draw_held_out, held_out_count, kept_indices, shuffled
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import MultimodalModel, UnimodalHeadsHead

ESTIMATE_MOMENTUM = 0.9
PROGRESS = "blending weights"


def estimation_due(epoch: int, super_epoch: int) -> bool:
    """Epoch 1 and every ``super_epoch`` epochs after it (1-based): BalanceMM's 0, 10, 20 for 10."""
    return (epoch - 1) % super_epoch == 0


def gain_and_overfitting(
    train_before: Tensor, held_before: Tensor, train_after: Tensor, held_after: Tensor
) -> tuple[Tensor, Tensor]:
    """ΔG = V_N − V_{N+n} and ΔO = (V − T)_{N+n} − (V − T)_N, per head, from mean losses."""
    gain = held_before - held_after
    overfitting = (held_after - train_after) - (held_before - train_before)
    return gain, overfitting


def blending_weights(gain: Tensor, overfitting: Tensor) -> tuple[Tensor, Tensor]:
    """w_k = max(ΔG_k, 0) / ΔO_k², normalised to sum 1, and whether the uniform fallback was used.

    Heads are the modalities' own classifiers, then the fused one (last). A
    head whose held-out loss did not fall gets 0: abs() (BalanceMM) would
    reward it for getting worse. The weights are uniform instead when no head
    earns a finite positive weight (no ratio says which head to favour), or
    when a modality's own head and the fused head both get 0: its encoder
    would then receive no gradient until the next estimation, and G-Blend
    re-weights modalities, it does not switch one off.
    """
    raw = torch.where(gain > 0, gain / overfitting.square(), torch.zeros_like(gain))
    total = raw.sum()
    normalised = raw / total
    trained = (normalised[:-1] > 0) | (normalised[-1] > 0)
    usable = torch.isfinite(total) & (total > 0) & trained.all()
    uniform = torch.full_like(raw, 1 / raw.numel())
    return torch.where(usable, normalised, uniform), ~usable


def overfitting_to_generalisation_ratio(gain: Tensor, overfitting: Tensor) -> Tensor:
    """OGR = |ΔO / ΔG|, the paper's measure of how badly a head trades overfitting for generalisation."""
    return (overfitting / gain).abs()


def blended_loss(losses: Tensor, weights: Tensor) -> Tensor:
    """sum_k w_k L_k: the heads' cross-entropies in one loss, so one backward pass trains them all."""
    return (weights.to(losses.dtype) * losses).sum()


def blending_head(model: MultimodalModel) -> UnimodalHeadsHead:
    """The model's head, which ``head_type`` made: per-modality classifiers beside the fused one."""
    head = model.head
    assert isinstance(head, UnimodalHeadsHead)
    return head


class GradientBlending(Method):
    options: GBlendingOptions
    head_type = UnimodalHeadsHead

    def __init__(self, options: GBlendingOptions, modalities: list[str], n_classes: int, feature_dim: int) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        heads = len(modalities) + 1
        self.holdout: Tensor | None = None
        self.weights = torch.full((heads,), 1 / heads, dtype=torch.float64)
        self.gain = torch.zeros(heads, dtype=torch.float64)
        self.overfitting = torch.zeros(heads, dtype=torch.float64)
        self.fallback: Tensor | None = None
        self.step_weights = self.weights.float()

    @property
    def fused(self) -> int:
        """The fused head's index: heads 0..M-1 are the modalities' own classifiers, in modality order."""
        return len(self.modalities)

    def head_modalities(self, head: int) -> list[str]:
        """What head ``head`` sees: its modality alone, or every modality for the fused head."""
        return self.modalities if head == self.fused else [self.modalities[head]]

    def head_logits(self, model: MultimodalModel, feats: dict[str, Tensor], head: int) -> Tensor:
        """Head ``head``'s logits; a unimodal head needs only its own modality's features."""
        fusion = blending_head(model)
        if head == self.fused:
            return fusion(feats)
        modality = self.modalities[head]
        return fusion.unimodal[modality](feats[modality])

    def head_parameters(self, model: MultimodalModel, head: int) -> list[nn.Parameter]:
        """What head ``head`` trains: its modality's encoder and classifier, or every encoder and the fused classifier."""
        fusion = blending_head(model)
        classifier = fusion.fc if head == self.fused else fusion.unimodal[self.modalities[head]]
        encoders = [model.encoders[m] for m in self.head_modalities(head)]
        parameters = [p for module in (*encoders, classifier) for p in module.parameters()]
        return [p for p in parameters if p.requires_grad]

    def epoch_pass(self, data: TrainingData) -> None:
        if self.holdout is None:
            self.holdout = self._draw_holdout(len(data))
        if estimation_due(data.epoch, self.options.super_epoch):
            self.estimate(data)

    def estimate(self, data: TrainingData) -> None:
        """New weights from each head's mean losses before and after a copy of the model trains it.

        The run's model is only read (in eval mode): every head trains on a
        copy with a fresh optimiser of its own, so the estimation changes
        nothing the main training continues from.
        """
        assert self.holdout is not None
        held_out = torch.zeros(len(data), dtype=torch.bool)
        held_out[self.holdout] = True
        held_out = held_out.to(data.device)
        count = int(self.holdout.numel())
        heads = list(range(self.fused + 1))
        train_before, held_before = self.mean_losses(data.model, data, heads, held_out, count)
        after = [self.mean_losses(self.trained_copy(data, head), data, [head], held_out, count) for head in heads]
        train_after = torch.cat([train for train, _ in after])
        held_after = torch.cat([held for _, held in after])
        self.gain, self.overfitting = gain_and_overfitting(train_before, held_before, train_after, held_after)
        self.weights, self.fallback = blending_weights(self.gain, self.overfitting)

    def mean_losses(
        self, model: MultimodalModel, data: TrainingData, heads: list[int], held_out: Tensor, held_count: int
    ) -> tuple[Tensor, Tensor]:
        """Each head's mean cross-entropy on the remaining training samples (T) and on the held-out ones (V).

        One pass in eval mode, split by mask rather than by reading the split
        twice: the counts come from sizes, so nothing is read back.
        """
        model.eval()
        needed = self.modalities if self.fused in heads else [self.modalities[h] for h in heads]
        sums = torch.zeros(2, len(heads), dtype=torch.float64, device=data.device)
        with torch.no_grad(), data.autocast():
            for batch in data.batches():
                feats = model.encode(batch.inputs, needed)
                losses = torch.stack(
                    [F.cross_entropy(self.head_logits(model, feats, h).float(), batch.labels, reduction="none") for h in heads]
                ).double()
                in_held = held_out[batch.index]
                sums[0] += torch.where(in_held, 0.0, losses).sum(1)
                sums[1] += torch.where(in_held, losses, 0.0).sum(1)
        return sums[0] / (len(data) - held_count), sums[1] / held_count

    def trained_copy(self, data: TrainingData, head: int) -> MultimodalModel:
        """A copy of the run's model after ``estimate_epochs`` epochs of training head ``head`` alone.

        The copy sees the remaining training samples only, reshuffled each
        epoch from torch's global generator; its SGD starts without momentum
        history, so each head starts from the same point.
        """
        assert self.holdout is not None
        model = copy.deepcopy(data.model)
        model.zero_grad(set_to_none=True)
        model.train()
        optimizer = torch.optim.SGD(
            self.head_parameters(model, head), lr=self.options.estimate_lr, momentum=ESTIMATE_MOMENTUM
        )
        remaining = kept_indices(self.holdout, len(data))
        epochs = self.options.estimate_epochs
        total = (self.fused + 1) * epochs
        with torch.enable_grad():
            for epoch in range(epochs):
                order = remaining[torch.randperm(remaining.numel())]
                for batch in data.batches(order=order):
                    with data.autocast():
                        feats = model.encode(batch.inputs, self.head_modalities(head))
                        loss = F.cross_entropy(self.head_logits(model, feats, head).float(), batch.labels)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                data.progress(PROGRESS, head * epochs + epoch + 1, total)
        return model

    def sample_order(self, epoch: int, size: int, generator: torch.Generator) -> Tensor:
        """The remaining training samples, shuffled: the held-out ones never reach the main training."""
        if self.holdout is None:
            self.holdout = self._draw_holdout(size)
        return shuffled(kept_indices(self.holdout, size), generator)

    def _draw_holdout(self, size: int) -> Tensor:
        return draw_held_out(size, held_out_count(size, self.options.holdout_fraction))

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.step_weights = self.weights.to(device=device, dtype=torch.float32)

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        heads = range(self.fused + 1)
        losses = torch.stack([F.cross_entropy(self.head_logits(model, feats, h).float(), labels) for h in heads])
        return blended_loss(losses, self.step_weights)

    def end_epoch(self) -> EpochSummary:
        ratio = overfitting_to_generalisation_ratio(self.gain, self.overfitting)
        metrics: dict[str, Tensor] = {}
        for family, values in (
            ("gblend_weight", self.weights),
            ("gblend_gain", self.gain),
            ("gblend_overfit", self.overfitting),
            ("gblend_ogr", ratio),
        ):
            for i, m in enumerate(self.modalities):
                metrics[f"{family}.{m}"] = values[i]
            metrics[f"{family}_fused"] = values[self.fused]
        return EpochSummary(metrics=metrics, events=self.estimation_events())

    def estimation_events(self) -> list[dict[str, Any]]:
        """One event in an epoch that re-estimated the weights: the new weights, or that none could be told apart."""
        if self.fallback is None:
            return []
        fallback, self.fallback = bool(self.fallback), None
        names = [*self.modalities, "fused"]
        weights = [float(w) for w in self.weights]
        listed = ", ".join(f"{name} {w:.3f}" for name, w in zip(names, weights))
        data = {"weights": dict(zip(names, weights))}
        if fallback:
            return [
                {
                    "kind": "gblending_uniform",
                    "level": "warning",
                    "message": "Gradient-Blending: the estimate gave no head a finite positive weight, or would "
                    f"have stopped training an encoder, so every head gets the same weight ({listed})",
                    "data": data,
                }
            ]
        return [
            {
                "kind": "gblending_weights",
                "level": "info",
                "message": f"Gradient-Blending weights re-estimated: {listed}",
                "data": data,
            }
        ]

    def state_dict(self) -> dict[str, Any]:
        return {
            "holdout": self.holdout,
            "weights": self.weights.cpu(),
            "gain": self.gain.cpu(),
            "overfitting": self.overfitting.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.holdout = state["holdout"]
        self.weights, self.gain, self.overfitting = state["weights"], state["gain"], state["overfitting"]
