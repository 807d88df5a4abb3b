"""ReconBoost (Hua, Xu, Bao, Yang, Huang, ICML 2024): alternating boosting with reconcilement (METHODS.md B.5).

Training all modalities at once lets the dominant one's gradient starve the
others. ReconBoost trains one modality's learner at a time instead, weighting
each sample by how badly the other modalities' ensemble does on it, as
gradient boosting does, and then rectifies the whole ensemble.

- Learners: f_m = head(h_m), one head shared by every modality (the authors'
  MLP, scaled to feature_dim); the prediction is F = beta * sum_m f_m, beta a
  learnable scalar of the head starting at the authors' 1.0.
- Schedule (``stage_at``), by epoch so that a resumed run is exact: warm-up
  epochs, then stages t = 0, 1, ... in round-robin over the data set's
  modalities, each ``boost_epochs`` of boosting m_t then ``rectify_epochs`` of
  global rectification.
- Boosting m: only encoder m and the shared learner are updated, on
  mean_i (1/C) (w1 - w2 q_y,i) CE_i(f_m), q = softmax(beta * sum_{m' != m} f_m'),
  plus alpha * MSE(softmax(f_m), softmax(f_prev)) from the second stage on.
- Rectification: CE(beta * sum_m f_m, y), updating everything.

Where this differs from the authors' code: every published run starts from
pretrained unimodal learners; here ``warmup_epochs`` train each learner on its
own cross-entropy instead. The reconcilement term detaches f_prev only: the
authors (and BalanceMM) detach both sides, so it has no gradient at all.
f_prev is the previous stage's learner as it is now, computed with the current
shared head, as the authors compute it; nothing is kept across epochs.
A modality whose features are all zero (masked) is absent: its learner is left
out of the sum, so a masked measure sees the ensemble of the others, as the
authors' ensemble before a modality joins it. Any number of modalities.
Its options, head size and metric declarations: ``armscope.builtin.methods.reconboost``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.methods.reconboost import ReconBoostOptions, learner_hidden, reconboost_head_size
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import FusionHead, MultimodalModel
from armscope.step import Batch, StepContext

Phase = Literal["warmup", "boost", "rectify"]
WARMUP: Phase = "warmup"
BOOST: Phase = "boost"
RECTIFY: Phase = "rectify"
# The per-sample sums a boosting step adds, in this order: loss, reconcilement term, q_y, weight.
BOOST_FAMILIES = ("reconboost_boost_loss", "reconboost_reconcile", "reconboost_q_true", "reconboost_weight")


@dataclass(frozen=True)
class Stage:
    """Where an epoch sits in the schedule.

    ``index`` counts boosting stages from 0 (-1 in the warm-up); ``modality`` is
    the stage's boosted modality (also during its rectification epochs);
    ``previous`` the one boosted in the stage before, None in the first.
    """

    phase: Phase
    index: int = -1
    modality: str | None = None
    previous: str | None = None


def stage_at(epoch: int, modalities: Sequence[str], warmup: int, boost: int, rectify: int) -> Stage:
    """The stage of 1-based ``epoch``: ``warmup`` epochs, then stages of ``boost`` + ``rectify`` epochs, round-robin.

    A function of the epoch alone, so a run resumed at any epoch continues the schedule where it stopped.
    """
    if epoch <= warmup:
        return Stage(WARMUP)
    index, position = divmod(epoch - warmup - 1, boost + rectify)
    previous = modalities[(index - 1) % len(modalities)] if index > 0 else None
    phase = BOOST if position < boost else RECTIFY
    return Stage(phase, index, modalities[index % len(modalities)], previous)


def true_class_probability(logits: Tensor, labels: Tensor) -> Tensor:
    """softmax(logits)[y] per sample."""
    return torch.softmax(logits, 1).gather(1, labels[:, None]).squeeze(1)


def boosting_weights(q_true: Tensor, w1: float, w2: float) -> Tensor:
    """w1 - w2 * q_y: a sample the others already classify confidently counts less, as in gradient boosting."""
    return w1 - w2 * q_true


def boosting_loss(logits: Tensor, labels: Tensor, q_true: Tensor, w1: float, w2: float) -> Tensor:
    """Per sample (1/C) (w1 - w2 q_y) CE(f_m): the authors' loss, their mean over the C one-hot entries kept as 1/C."""
    weights = boosting_weights(q_true, w1, w2) / logits.shape[1]
    return weights * F.cross_entropy(logits, labels, reduction="none")


def reconcilement(logits: Tensor, previous_logits: Tensor) -> Tensor:
    """Per sample, mean over classes of (softmax(f_m) - softmax(f_prev))^2, with f_prev a fixed target.

    Only f_prev is detached: the authors detach both sides, which leaves the
    term without any gradient; this way it pulls the boosted learner towards
    what the previous stage's learner predicts.
    """
    gap = torch.softmax(logits, 1) - torch.softmax(previous_logits, 1).detach()
    return gap.square().mean(1)


def ensemble_logits(beta: Tensor, learner_logits: Sequence[Tensor]) -> Tensor:
    """F = beta * sum of the learners' logits."""
    return beta * torch.stack(list(learner_logits)).sum(0)


def fused_cross_entropy(beta: Tensor, learner_logits: Sequence[Tensor], labels: Tensor) -> Tensor:
    """CE(beta * sum_m f_m, y): the rectification loss, and what every phase reports as its training loss."""
    return F.cross_entropy(ensemble_logits(beta, learner_logits), labels)


def absent_as_zero(logits: Tensor, features: Tensor) -> Tensor:
    """The learner's logits, 0 for a sample whose features are all zero (a masked modality).

    The shared head maps zero features to a constant, its biases' output,
    which would shift every masked prediction by the same vector; a sum of
    learners without that modality is what its absence means.
    """
    present = features.flatten(1).ne(0).any(1)
    return torch.where(present[:, None], logits, torch.zeros_like(logits))


class ReconBoostHead(FusionHead):
    """One learner network shared by every modality, and beta; predicts beta * sum_m learner(h_m).

    The learner is the authors' MLP (512 -> 256 -> ReLU -> classes), scaled to
    feature_dim -> feature_dim // 2 -> classes.
    """

    def __init__(self, modalities: list[str], feature_dim: int, n_classes: int, beta_init: float = 1.0) -> None:
        super().__init__(modalities, feature_dim, n_classes)
        hidden = learner_hidden(feature_dim)
        self.learner = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
        self.beta = nn.Parameter(torch.tensor(float(beta_init)))

    size = staticmethod(reconboost_head_size)

    def learner_logits(self, feats: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """f_m in float32 for each modality given, zero where its features are (``absent_as_zero``)."""
        return {m: absent_as_zero(self.learner(h).float(), h) for m, h in feats.items()}

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        logits = self.learner_logits({m: feats[m] for m in self.modalities})
        return ensemble_logits(self.beta, list(logits.values()))


def reconboost_head(model: MultimodalModel) -> ReconBoostHead:
    head = model.head
    assert isinstance(head, ReconBoostHead)
    return head


class ReconBoost(Method):
    options: ReconBoostOptions
    head_type = ReconBoostHead

    def __init__(self, options: ReconBoostOptions, modalities: list[str], n_classes: int, feature_dim: int) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        self.beta: Tensor | None = None

    def build_head(self) -> ReconBoostHead:
        return ReconBoostHead(self.modalities, self.feature_dim, self.n_classes, self.options.beta_init)

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        o = self.options
        self.stage = stage_at(epoch, self.modalities, o.warmup_epochs, o.boost_epochs, o.rectify_epochs)
        self.boost_sums = torch.zeros(len(BOOST_FAMILIES), device=device)
        self.hits = torch.zeros(len(self.modalities), device=device)
        self.samples = 0

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        """The epoch's phase on one batch; returns the ensemble's cross-entropy before the update, in every phase,
        so that the training loss compares with other methods' (the phase's own loss is in the metrics)."""
        head = reconboost_head(step.model)
        phases = {WARMUP: self._warm_up, BOOST: self._boost, RECTIFY: self._rectify}
        fused_loss = phases[self.stage.phase](step, head, batch)
        self.samples += batch.labels.shape[0]
        self.beta = head.beta.detach()
        return fused_loss

    def _learners(self, step: StepContext, head: ReconBoostHead, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        with step.autocast():
            return head.learner_logits(step.model.encode(inputs, self.modalities))

    def _warm_up(self, step: StepContext, head: ReconBoostHead, batch: Batch) -> Tensor:
        """Each learner on its own cross-entropy, summed: every encoder gets the gradient it would get alone."""
        logits = self._learners(step, head, batch.inputs)
        loss = torch.stack([F.cross_entropy(f, batch.labels) for f in logits.values()]).sum()
        step.zero_grad()
        loss.backward()
        step.update()
        self._count_hits(logits, batch.labels)
        return fused_cross_entropy(head.beta.detach(), [f.detach() for f in logits.values()], batch.labels)

    def _rectify(self, step: StepContext, head: ReconBoostHead, batch: Batch) -> Tensor:
        """CE(beta * sum_m f_m, y), updating every encoder, the shared learner and beta."""
        logits = self._learners(step, head, batch.inputs)
        loss = fused_cross_entropy(head.beta, list(logits.values()), batch.labels)
        step.zero_grad()
        loss.backward()
        step.update()
        self._count_hits(logits, batch.labels)
        return loss.detach()

    def _boost(self, step: StepContext, head: ReconBoostHead, batch: Batch) -> Tensor:
        """The boosted learner's weighted loss (+ reconcilement), updating its encoder and the shared learner only.

        The other learners run without gradient: they set q and, for the
        previous stage's modality, the reconcilement target.
        """
        model, labels, boosted = step.model, batch.labels, self.stage.modality
        assert boosted is not None
        encoder = model.encoders[boosted]
        with step.autocast():
            with torch.no_grad():
                others = head.learner_logits(
                    {m: model.encoders[m](batch.inputs[m]) for m in self.modalities if m != boosted}
                )
            learner = head.learner_logits({boosted: encoder(batch.inputs[boosted])})[boosted]
        q_true = true_class_probability(ensemble_logits(head.beta.detach(), list(others.values())), labels)
        per_sample = boosting_loss(learner, labels, q_true, self.options.w1, self.options.w2)
        reconciled = torch.zeros_like(per_sample)
        if self.stage.previous is not None:
            reconciled = reconcilement(learner, others[self.stage.previous])
        loss = per_sample.mean() + self.options.alpha * reconciled.mean()
        step.zero_grad()
        loss.backward()
        step.update([*encoder.parameters(), *head.learner.parameters()])
        weights = boosting_weights(q_true, self.options.w1, self.options.w2)
        terms = torch.stack([per_sample.sum(), reconciled.sum(), q_true.sum(), weights.sum()])
        self.boost_sums += terms.detach()
        everyone = {m: learner.detach() if m == boosted else others[m] for m in self.modalities}
        self._count_hits(everyone, labels)
        return fused_cross_entropy(head.beta.detach(), list(everyone.values()), labels)

    def _count_hits(self, logits: dict[str, Tensor], labels: Tensor) -> None:
        """Adds how many samples each learner alone classifies right to the epoch's device sums."""
        self.hits += torch.stack([(logits[m].detach().argmax(1) == labels).sum() for m in self.modalities]).float()

    def end_epoch(self) -> EpochSummary:
        assert self.beta is not None, "end_epoch before any step"
        count = max(self.samples, 1)
        stage = self.stage
        metrics: dict[str, Tensor] = {}
        for i, m in enumerate(self.modalities):
            metrics[f"reconboost_boosted.{m}"] = torch.tensor(float(stage.phase == BOOST and stage.modality == m))
            metrics[f"reconboost_acc.{m}"] = self.hits[i] / count
        metrics["reconboost_rectifying"] = torch.tensor(float(stage.phase == RECTIFY))
        metrics["reconboost_warmup"] = torch.tensor(float(stage.phase == WARMUP))
        for key, total in zip(BOOST_FAMILIES, self.boost_sums / count):
            metrics[key] = total
        metrics["reconboost_beta"] = self.beta.clone()
        return EpochSummary(metrics=metrics)
