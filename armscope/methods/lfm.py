"""LFM, learning the modality gap dynamically (Yang, Wan, Jiang, Xu, NeurIPS 2024; METHODS.md Part B section 3).

Each modality has a linear classifier of its own (``UnimodalHeadsHead``); the
fused logits are the mean of theirs, as in the authors' code, and ``predict``
uses that same mean, so what is evaluated is what was trained (the head's
concat classifier is left untrained). Every step minimises
L = 2 (alpha_cls L_cls + alpha_align L_align): L_cls the fused cross-entropy,
L_align a divergence between the modalities' predictions averaged over every
modality pair (the paper has two modalities). The alphas move once per epoch,
before its steps: on one fixed batch V of training samples that training never
sees, s is the mean over the first parameter tensor of H_tot g_cls, and
alpha_align <- clip(alpha_align - eta_alpha s, 0.05, 0.95), alpha_cls = 1 - alpha_align.

Choices where the sources differ: the authors' initial alphas (0.05, 0.95),
which BalanceBenchmark reverses; the authors' divergence 1/2 [KL(m||p) + KL(m||q)]
by default (the paper's text could not be checked; a true Jensen-Shannon is an
option); V is a seeded draw from the training split, not BalanceBenchmark's
first test batch; V's forward runs in train mode as the authors', but the
BatchNorm running statistics are restored after it, so the held-out samples
reach nothing but the alphas. Epochs are 1-based here: the authors' epoch e
is epoch e + 1 (halvings of eta_alpha before epochs 21, 41, ...; the fitted
schedule evaluated at e). Its options and metric declarations:
``armscope.builtin.methods.lfm``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.methods.lfm import ALPHA_HIGH, ALPHA_LOW, LFMOptions
from armscope.epoch_pass import TrainingData
from armscope.holdout import draw_held_out, kept_indices, shuffled
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import MultimodalModel, UnimodalHeadsHead
from armscope.step import Batch, StepContext

# The authors' fit of alpha_cls to learned trajectories over 200 CREMA-D epochs: c_0 ... c_5 of sum c_i e^i.
FITTED_COEFFICIENTS = (0.204623704, 3.35472727e-3, 1.22989557e-4, -2.92947416e-6, 2.23835486e-8, -5.39717505e-11)
PROGRESS = "LFM alpha update"
LOSS_CLS, LOSS_ALIGN = range(2)


def mixture_log(log_p: Tensor, log_q: Tensor) -> Tensor:
    """log m with m = (p + q) / 2, from log-probabilities, without leaving the log domain."""
    return torch.logaddexp(log_p, log_q) - math.log(2)


def reversed_divergence(log_p: Tensor, log_q: Tensor) -> Tensor:
    """A(p, q) = 1/2 [KL(m||p) + KL(m||q)], batch mean: the authors' ``F.kl_div(p.log(), m)`` pair.

    The KL runs from the mixture to each prediction, the reverse of a
    Jensen-Shannon divergence; it is what the published numbers were trained with.
    """
    log_m = mixture_log(log_p, log_q)
    m = log_m.exp()
    per_sample = (m * (log_m - log_p)).sum(1) + (m * (log_m - log_q)).sum(1)
    return 0.5 * per_sample.mean()


def jensen_shannon(log_p: Tensor, log_q: Tensor) -> Tensor:
    """JS(p, q) = 1/2 [KL(p||m) + KL(q||m)], batch mean: the textbook divergence, offered beside the authors'."""
    log_m = mixture_log(log_p, log_q)
    per_sample = (log_p.exp() * (log_p - log_m)).sum(1) + (log_q.exp() * (log_q - log_m)).sum(1)
    return 0.5 * per_sample.mean()


DIVERGENCES = {"reversed": reversed_divergence, "js": jensen_shannon}


def alignment_loss(logits: Sequence[Tensor], divergence: str) -> Tensor:
    """L_align: the divergence between two modalities' softmax predictions, averaged over every pair."""
    log_probs = [F.log_softmax(z, dim=1) for z in logits]
    measure = DIVERGENCES[divergence]
    return torch.stack([measure(log_probs[a], log_probs[b]) for a, b in combinations(range(len(logits)), 2)]).mean()


def fused_logits(logits: Sequence[Tensor]) -> Tensor:
    """The fused prediction: the mean of the modalities' own logits (the authors' (z_a + z_b) / 2)."""
    return torch.stack(list(logits)).mean(0)


def step_loss(alpha_cls: Tensor, alpha_align: Tensor, loss_cls: Tensor, loss_align: Tensor) -> Tensor:
    """L = 2 (alpha_cls L_cls + alpha_align L_align): the authors' factor 2 keeps equal alphas at unit weight."""
    return 2 * (alpha_cls * loss_cls + alpha_align * loss_align)


def hessian_vector_product(
    total: Tensor, classification: Tensor, parameters: Sequence[Tensor], wrt: Sequence[Tensor]
) -> list[Tensor]:
    """v = d<g_tot, g_cls>/d(wrt) with g_cls held constant: the rows of H_tot g_cls that belong to ``wrt``.

    g_tot and g_cls are taken over all ``parameters``, so v keeps every
    cross-term of the Hessian even when only part of it is wanted; the
    authors differentiate the whole model and keep the first tensor's part.
    """
    classification_grads = torch.autograd.grad(classification, parameters, retain_graph=True, materialize_grads=True)
    total_grads = torch.autograd.grad(total, parameters, create_graph=True, materialize_grads=True)
    curved = [(g, c) for g, c in zip(total_grads, classification_grads) if g.requires_grad]
    return list(
        torch.autograd.grad(
            [g for g, _ in curved], wrt, grad_outputs=[c for _, c in curved], materialize_grads=True
        )
    )


def updated_alpha_align(alpha_align: Tensor, eta: float, s: Tensor) -> Tensor:
    """clip(alpha_align - eta s, 0.05, 0.95); a NaN s (an overflowed second derivative) leaves alpha as it was."""
    change = torch.where(torch.isnan(s), torch.zeros_like(s), eta * s)
    return (alpha_align - change).clamp(ALPHA_LOW, ALPHA_HIGH)


def halved_step_size(eta: float, epoch: int, every: int) -> float:
    """eta_alpha for epoch ``epoch`` (1-based): halved before epochs every + 1, 2 every + 1, ... as the authors'."""
    return eta / 2 if epoch > 1 and (epoch - 1) % every == 0 else eta


def fitted_alpha_cls(authors_epoch: int) -> float:
    """The authors' polynomial alpha_cls(e), e counted from 0, clipped to the learned alphas' range.

    The clip only bites past the fitted 200 epochs, where the degree-5
    polynomial turns and soon goes negative.
    """
    value = 0.0
    for coefficient in reversed(FITTED_COEFFICIENTS):
        value = value * authors_epoch + coefficient
    return min(max(value, ALPHA_LOW), ALPHA_HIGH)


def holdout_count(size: int, wanted: int) -> int:
    """How many of ``size`` training samples form V: ``wanted``, at most half the split, at least one."""
    if size < 2:
        raise ValueError(f"lfm holds out training samples for its alpha update, which needs at least 2, not {size}")
    return min(wanted, size // 2)


def draw_holdout(size: int, wanted: int) -> Tensor:
    """V's indices, sorted, drawn from torch's global generator so that the run's seed fixes them."""
    return draw_held_out(size, holdout_count(size, wanted))


def own_heads(model: MultimodalModel) -> UnimodalHeadsHead:
    """The model's head, which ``head_type`` made: LFM reads only its per-modality classifiers."""
    head = model.head
    assert isinstance(head, UnimodalHeadsHead)
    return head


class LFM(Method):
    options: LFMOptions
    head_type = UnimodalHeadsHead

    def __init__(self, options: LFMOptions, modalities: list[str], n_classes: int, feature_dim: int) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        self.alpha_align = torch.tensor(1 - options.alpha_cls_init, dtype=torch.float32)
        self.eta = options.eta_alpha
        self.s = torch.zeros(())
        self.holdout: Tensor | None = None
        self.learned = options.schedule == "learned"

    def unimodal_logits(self, model: MultimodalModel, feats: dict[str, Tensor]) -> list[Tensor]:
        """Each modality's own classifier's logits, in modality order."""
        own = own_heads(model).unimodal_heads(feats)
        return [own[m] for m in self.modalities]

    def objective(self, logits: Sequence[Tensor], labels: Tensor) -> tuple[Tensor, Tensor]:
        """(L_cls, L_align) in float32 from the modalities' logits."""
        exact = [z.float() for z in logits]
        return F.cross_entropy(fused_logits(exact), labels), alignment_loss(exact, self.options.divergence)

    def epoch_pass(self, data: TrainingData) -> None:
        """The epoch's alphas, before its steps: the fitted schedule's, or one learned update on V."""
        if not self.learned:
            self.alpha_align = torch.tensor(1 - fitted_alpha_cls(data.epoch - 1), dtype=torch.float32)
            return
        if self.holdout is None:
            self.holdout = draw_holdout(len(data), self.options.holdout_size)
        self.eta = halved_step_size(self.eta, data.epoch, self.options.eta_halving_every)
        self.alpha_align = self.alpha_align.to(data.device)
        self.s = self.alpha_gradient(data)
        self.alpha_align = updated_alpha_align(self.alpha_align, self.eta, self.s)
        data.progress(PROGRESS, 1, 1)

    def alpha_gradient(self, data: TrainingData) -> Tensor:
        """s on V: one train-mode forward, then the first parameter tensor's part of H_tot g_cls, averaged.

        L_tot weighs the losses by the current alphas, without the step's
        factor 2, as the authors. The running statistics the train-mode
        forward changed are put back: V steers the alphas and nothing else.
        """
        model = data.model
        model.train()
        saved = [buffer.clone() for buffer in model.buffers()]
        inputs, labels = self.held_out_batch(data)
        with torch.enable_grad():
            with data.autocast():
                feats = model.encode(inputs, self.modalities)
                logits = self.unimodal_logits(model, feats)
            loss_cls, loss_align = self.objective(logits, labels)
            total = (1 - self.alpha_align) * loss_cls + self.alpha_align * loss_align
            parameters = self.trained_parameters(model)
            (v,) = hessian_vector_product(total, loss_cls, parameters, parameters[:1])
        with torch.no_grad():
            for buffer, value in zip(model.buffers(), saved):
                buffer.copy_(value)
        return v.float().mean()

    def held_out_batch(self, data: TrainingData) -> tuple[dict[str, Tensor], Tensor]:
        """V as one batch on the run's device, unaugmented (``TrainingData.batches`` reads the whole split)."""
        assert self.holdout is not None
        (batch,) = data.batches(self.holdout.numel(), order=self.holdout)
        return batch.inputs, batch.labels

    def trained_parameters(self, model: MultimodalModel) -> list[nn.Parameter]:
        """What LFM's losses reach: the encoders, in modality order, then the modalities' own classifiers."""
        modules = [*(model.encoders[m] for m in self.modalities), own_heads(model).unimodal]
        return [p for module in modules for p in module.parameters() if p.requires_grad]

    def sample_order(self, epoch: int, size: int, generator: torch.Generator) -> Tensor | None:
        """The training samples outside V, shuffled; under the fitted schedule nothing is held out."""
        if not self.learned:
            return None
        if self.holdout is None:
            self.holdout = draw_holdout(size, self.options.holdout_size)
        return shuffled(kept_indices(self.holdout, size), generator)

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.alpha_align = self.alpha_align.to(device)
        self.loss_sums = torch.zeros(2, device=device)
        self.correct = torch.zeros(len(self.modalities), device=device)
        self.steps = 0
        self.samples = 0

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        """One forward, one backward of L; returns L_cls, the fused cross-entropy other methods report too."""
        model = step.model
        with step.autocast():
            feats = model.encode(batch.inputs, self.modalities)
            logits = self.unimodal_logits(model, feats)
        loss_cls, loss_align = self.objective(logits, batch.labels)
        loss = step_loss(1 - self.alpha_align, self.alpha_align, loss_cls, loss_align)
        step.zero_grad()
        loss.backward()
        step.update()
        self.record(logits, batch.labels, loss_cls, loss_align)
        return loss_cls.detach()

    def record(self, logits: Sequence[Tensor], labels: Tensor, loss_cls: Tensor, loss_align: Tensor) -> None:
        """Adds the step's losses and each modality's correct predictions to the epoch's device sums."""
        with torch.no_grad():
            self.loss_sums += torch.stack([loss_cls, loss_align])
            self.correct += torch.stack([(z.argmax(1) == labels).sum() for z in logits]).float()
        self.steps += 1
        self.samples += labels.shape[0]

    def predict(self, model: MultimodalModel, feats: dict[str, Tensor]) -> Tensor:
        return fused_logits(self.unimodal_logits(model, feats))

    def end_epoch(self) -> EpochSummary:
        losses = self.loss_sums / max(self.steps, 1)
        accuracy = self.correct / max(self.samples, 1)
        alpha_align = self.alpha_align.float()
        metrics = {
            "lfm_alpha_cls": 1 - alpha_align,
            "lfm_alpha_align": alpha_align,
            "lfm_s": self.s,
            "lfm_eta": torch.tensor(self.eta if self.learned else 0.0),
            "lfm_loss_cls": losses[LOSS_CLS],
            "lfm_loss_align": losses[LOSS_ALIGN],
        }
        metrics.update({f"lfm_acc.{m}": accuracy[i] for i, m in enumerate(self.modalities)})
        return EpochSummary(metrics=metrics)

    def state_dict(self) -> dict[str, Any]:
        return {"alpha_align": self.alpha_align.cpu(), "eta": self.eta, "holdout": self.holdout}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alpha_align, self.eta, self.holdout = state["alpha_align"], state["eta"], state["holdout"]
