"""Toy methods, one per capability of the method interface, for the tests only (never registered in the product).

Each is the smallest method that leans on its capability the way the field's
methods will: an alternating, two-backward step with gradient surgery
(MLA, MMPareto); prototypes from a pass at epoch start (PMR); a weighted
sampler with per-sample loss weights (sample valuation); state kept across
epochs (AGM's running scores); a test-time fusion rule (MLA's entropy weights).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor
from torch.nn import functional as F

from armscope.epoch_pass import TrainingData
from armscope.methods import EpochSummary, Method
from armscope.models import ConcatHead, MultimodalModel
from armscope.plugins import METHODS
from armscope.specs import MethodSpec
from armscope.step import Batch, StepContext


class ToyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def concat_head(model: MultimodalModel) -> ConcatHead:
    head = model.head
    assert isinstance(head, ConcatHead)
    return head


class AlternatingSurgery(Method):
    """Step k trains modality k mod M alone (its encoder and the head), from two backward passes.

    Each half of the batch gives the encoder a gradient; where the two
    conflict (negative inner product), each loses its component along the
    other before they are summed (PCGrad). The other encoders do not move.
    """

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.conflicts = torch.zeros((), device=device)
        self.steps = 0

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        model, head = step.model, concat_head(step.model)
        trained = self.modalities[batch.step % len(self.modalities)]
        half = batch.labels.shape[0] // 2
        with step.autocast():
            logits = head(model.encode(batch.inputs))
            first = F.cross_entropy(logits[:half], batch.labels[:half])
            second = F.cross_entropy(logits[half:], batch.labels[half:])
        encoder = list(model.encoders[trained].parameters())
        step.zero_grad()
        first.backward(retain_graph=True)
        one = [p.grad.clone() for p in encoder]
        second.backward()
        two = [p.grad - g for p, g in zip(encoder, one)]
        dot = sum((a * b).sum() for a, b in zip(one, two))
        conflict = torch.clamp(dot, max=0)
        norm_one, norm_two = (sum(g.square().sum() for g in grads).clamp_min(1e-12) for grads in (one, two))
        for p, a, b in zip(encoder, one, two):
            p.grad = (a - conflict / norm_two * b) + (b - conflict / norm_one * a)
        step.update([*encoder, *head.parameters()])
        self.conflicts += dot < 0
        self.steps += 1
        return ((first + second) / 2).detach()

    def end_epoch(self) -> EpochSummary:
        return EpochSummary(metrics={"toy_conflicts": self.conflicts / max(self.steps, 1)})


class Prototypes(Method):
    """Class prototypes of each modality from a pass at epoch start, moved by momentum across epochs.

    The loss adds each modality's prototype cross-entropy (distances as
    logits). The prototypes are state: a resumed run must get them back.
    """

    momentum = 0.5

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.prototypes: dict[str, Tensor] = {}
        self.passes: list[tuple[int, Tensor]] = []

    def epoch_pass(self, data: TrainingData) -> None:
        model = data.model
        model.eval()
        sums: dict[str, Tensor] = {}
        counts = torch.zeros(self.n_classes, device=data.device)
        seen = []
        with torch.no_grad(), data.autocast():
            for batch in data.batches():
                feats = model.encode(batch.inputs)
                for m, h in feats.items():
                    total = sums.setdefault(m, torch.zeros(self.n_classes, h.shape[1], device=data.device))
                    total.index_add_(0, batch.labels, h.float())
                counts.index_add_(0, batch.labels, torch.ones_like(batch.labels, dtype=counts.dtype))
                seen.append(batch.index)
        self.passes.append((data.epoch, torch.cat(seen)))
        for m, total in sums.items():
            fresh = total / counts.clamp_min(1)[:, None]
            old = self.prototypes.get(m)
            self.prototypes[m] = fresh if old is None else self.momentum * old.to(fresh.device) + (1 - self.momentum) * fresh

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        total = F.cross_entropy(model.head(feats), labels)
        for m, h in feats.items():
            total = total + 0.1 * F.cross_entropy(-torch.cdist(h.float(), self.prototypes[m]), labels)
        return total

    def state_dict(self) -> dict[str, Any]:
        return {"prototypes": dict(self.prototypes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prototypes = dict(state["prototypes"])


class WeightedSampler(Method):
    """The first tenth of the training samples is never drawn; the others with weight 1, with replacement.

    Each step weights its samples' losses by their index (later samples
    count more), through ``Batch.index``.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.drawn: list[Tensor] = []

    def sample_order(self, epoch: int, size: int, generator: torch.Generator) -> Tensor:
        weights = torch.ones(size)
        weights[: size // 10] = 0
        return torch.multinomial(weights, size, replacement=True, generator=generator)

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        assert batch.index is not None
        self.drawn.append(batch.index)
        model = step.model
        with step.autocast():
            per_sample = F.cross_entropy(model.head(model.encode(batch.inputs)), batch.labels, reduction="none")
            loss = (per_sample * (1 + batch.index / 1000)).mean()
        step.zero_grad()
        loss.backward()
        step.update()
        return loss.detach()


class RunningLoss(Method):
    """Scales its loss by the running mean of all its past losses: what it keeps must survive a resume.

    Its state mixes a tensor, an int, a list of floats and a string.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.loss_sum: Tensor | None = None
        self.count = 0
        self.history: list[float] = []

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device) if self.loss_sum is None else self.loss_sum.to(device)

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        assert self.loss_sum is not None
        plain = F.cross_entropy(model.head(feats), labels)
        scale = 1 + 0.5 * torch.tanh(self.loss_sum / max(self.count, 1)).to(plain.dtype)
        self.loss_sum += plain.detach().double()
        self.count += 1
        return plain * scale

    def end_epoch(self) -> EpochSummary:
        assert self.loss_sum is not None
        self.history.append(float(self.loss_sum / self.count))
        return EpochSummary(metrics={"toy_running_loss": torch.tensor(sum(self.history) / len(self.history))})

    def state_dict(self) -> dict[str, Any]:
        return {"loss_sum": self.loss_sum, "count": self.count, "history": list(self.history), "kind": "running"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_sum, self.count, self.history = state["loss_sum"], state["count"], list(state["history"])


def entropy_fusion(unimodal: dict[str, Tensor]) -> Tensor:
    """MLA's test-time rule: each modality's logits weighted by softmax(-entropy) over modalities, per sample."""
    logits = torch.stack(list(unimodal.values()))
    probs = torch.softmax(logits.float(), dim=-1)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)
    weights = torch.softmax(-entropy, dim=0)
    return (weights[..., None] * logits).sum(0)


class EntropyFusion(Method):
    """Trains the concat head jointly; predicts with entropy-weighted unimodal logits instead."""

    def predict(self, model: MultimodalModel, feats: dict[str, Tensor]) -> Tensor:
        return entropy_fusion(concat_head(model).unimodal_logits(feats))


TOYS: dict[str, type[Method]] = {
    "toy-alternating-surgery": AlternatingSurgery,
    "toy-prototypes": Prototypes,
    "toy-weighted-sampler": WeightedSampler,
    "toy-running-loss": RunningLoss,
    "toy-entropy-fusion": EntropyFusion,
}


def register(monkeypatch: Any, name: str, cls: type[Method]) -> list[Method]:
    """Put ``cls`` into ``METHODS`` as ``name`` for one test; the list collects each instance a run builds."""
    built: list[Method] = []

    def build(*args: Any) -> Method:
        built.append(cls(*args))
        return built[-1]

    monkeypatch.setitem(METHODS._entries, name, MethodSpec(name, build, ToyOptions, cls.__doc__ or ""))
    return built
