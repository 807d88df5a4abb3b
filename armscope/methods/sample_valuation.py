"""Sample-level modality valuation and re-sampling (Wei, Feng, Wang, Hu, CVPR 2024; METHODS.md Part C section 5).

Each epoch opens with a valuation pass over the training split: every sample is encoded once (eval mode, no
gradients), the head predicts from every subset S of the modalities with the others' features zeroed (the
authors' masking), and phi_m, the exact Shapley value of v(S) = |S| * 1[the prediction from S is right], values
modality m on that sample. After the warm-up (whose values are only logged, as the authors log theirs) an epoch
trains, besides every original, on copies keeping only a low-valued modality: per sample and modality
(``resampling="sample"``), or for a drawn share of the split and the modality that contributes least on average
(``"modality"``).

A copy rides with its original in the original's batch: the step encodes the batch once, and a copy is the
original's features with the other modalities zeroed, so it costs a head pass, never an encoder pass. The copies
of one sample and modality are identical here (they get no augmentation of their own), so c of them enter the
cross-entropy as one row of weight c: the same loss as c rows, at a batch shape fixed by the batch size. An
epoch therefore takes the originals' number of steps, its copies enlarging the batches, where the authors' copies
join the data set and add steps.

The copies follow from the model at the start of the epoch (and, for modality resampling, from torch's global
generator), both checkpointed with the run, so the pass recomputes them on resume and the method keeps no state.
Its options and metric declarations: ``armscope.builtin.methods.sample_valuation``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from armscope.builtin.methods.sample_valuation import SampleValuationOptions
from armscope.epoch_pass import TrainingData
from armscope.methods.base import EpochSummary, Method
from armscope.shapley import pairwise_gap, shapley_values, subset_masks
from armscope.step import Batch, StepContext

PROGRESS = "valuation"
# The authors' bounds on phi between 3, 2, 1 and 0 copies (their sample-level data set); all comparisons strict.
THREE_BELOW, TWO_BELOW, ONE_BELOW = -0.1, 0.4, 0.9


def characteristic_values(correct: Tensor, masks: Tensor) -> Tensor:
    """v(S) = |S| if the prediction from S alone is right, else 0: the authors' scale, with v(empty) = 0.

    On it a right fused prediction is worth M, a sample's Shapley values sum to M, and 1 is each modality's fair
    share, which is what the copy bounds (0.4, 0.9) are read against. BalanceMM's v(S) = 1[right] halves the
    scale: a sample every modality gets right then has phi = 1/2 each and is copied once in every modality.
    """
    return correct.long() * masks.sum(1).to(correct.device)


def sample_copies(phi: Tensor) -> Tensor:
    """How many copies keeping only m each sample gets: 3 below -0.1, 2 in (-0.1, 0.4), 1 in (0.4, 0.9), else 0.

    The authors' bounds, all strict, so exactly -0.1, exactly 0.4 and 0.9 or more get none. BalanceMM's upper
    bound is 1; with two modalities phi is a multiple of 1/2 and the two agree.
    """
    none = torch.zeros_like(phi, dtype=torch.long)
    one = torch.where((phi > TWO_BELOW) & (phi < ONE_BELOW), 1, none)
    two = torch.where((phi > THREE_BELOW) & (phi < TWO_BELOW), 2, one)
    return torch.where(phi < THREE_BELOW, 3, two)


def modality_gaps(phi_estimate: Tensor) -> Tensor:
    """gap_m = 1 - mean phi_m: how far the modality falls short of its fair share."""
    return 1 - phi_estimate


def resample_share(gaps: Tensor, alpha: float) -> Tensor:
    """P, the share of the split to copy: (2/3) alpha |gap_a - gap_v|, the authors' rule.

    With more modalities |gap_a - gap_v| becomes the mean over pairs of modalities. BalanceMM sums over ordered
    pairs and divides by M - 1, twice the authors' P for two modalities, and leaves alpha out.
    """
    return 2 / 3 * alpha * pairwise_gap(gaps)


def weakest_modality(gaps: Tensor) -> Tensor:
    """The modality the copies keep: the largest gap; on a tie the later one, as the authors' ``gap_a > gap_v``
    keeps visual. BalanceMM gives each drawn sample M copies instead, one of them a plain duplicate."""
    return gaps.numel() - 1 - gaps.flip(0).argmax()


def modality_copies(draws: Tensor, count: Tensor, kept: Tensor, n_samples: int, n_modalities: int) -> Tensor:
    """(N, M) copies: how often each sample is among the first ``count`` of ``draws``, in the kept modality's column.

    ``draws`` holds more indices than ``count`` can reach and the tail is masked: the number of copies is a value
    on the device, and shapes taken from it would have to be read back.
    """
    used = (torch.arange(draws.numel(), device=draws.device) < count).long()
    per_sample = torch.zeros(n_samples, dtype=torch.long, device=draws.device).index_add_(0, draws, used)
    column = (torch.arange(n_modalities, device=draws.device) == kept).long()
    return per_sample[:, None] * column


def keep_only(feats: dict[str, Tensor], kept: set[str]) -> dict[str, Tensor]:
    """The features with every modality outside ``kept`` zeroed, the codebase's and the authors' masking."""
    return {m: h if m in kept else torch.zeros_like(h) for m, h in feats.items()}


def subset_correct(
    predict: Callable[[dict[str, Tensor]], Tensor], feats: dict[str, Tensor], labels: Tensor, masks: Tensor
) -> Tensor:
    """(B, 2^M): whether the prediction from each subset's features alone is right; never for the empty set."""
    names = list(feats)
    columns = [torch.zeros_like(labels, dtype=torch.bool)]
    for keep in masks[1:].tolist():
        logits = predict(keep_only(feats, {m for m, kept in zip(names, keep) if kept}))
        columns.append(logits.argmax(1) == labels)
    return torch.stack(columns, 1)


def copy_batch(feats: dict[str, Tensor]) -> dict[str, Tensor]:
    """The batch's originals, then for each modality m (in ``feats``' order) the same samples keeping only m."""
    return {n: torch.cat([h, *(h if n == m else torch.zeros_like(h) for m in feats)]) for n, h in feats.items()}


def copy_weights(copies: Tensor) -> Tensor:
    """Each row's weight in ``copy_batch``'s order: 1 per original, then per sample its copies (B, M) of each m."""
    return torch.cat([torch.ones_like(copies[:, 0]), *copies.T]).float()


def resampled_loss(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """The cross-entropy over originals and copies together: the mean over rows, a row of weight c counting c times."""
    blocks = logits.shape[0] // labels.shape[0]
    per_row = F.cross_entropy(logits.float(), labels.repeat(blocks), reduction="none")
    return (weights * per_row).sum() / weights.sum()


class SampleValuation(Method):
    options: SampleValuationOptions

    def __init__(
        self, options: SampleValuationOptions, modalities: list[str], n_classes: int, feature_dim: int
    ) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        self.masks = subset_masks(len(self.modalities))
        self.copies: Tensor | None = None
        self.phi_mean: Tensor | None = None
        self.resampling = False

    def epoch_pass(self, data: TrainingData) -> None:
        """Values every epoch, as the authors do (their warm-up epochs value for the log), copies after the warm-up."""
        phi = self.valuate(data)
        self.phi_mean = phi.mean(0)
        if data.epoch <= self.options.warmup_epochs:
            self.copies = torch.zeros_like(phi, dtype=torch.long)
        elif self.options.resampling == "sample":
            self.copies = sample_copies(phi)
        else:
            self.copies = self.modality_level(phi)

    def valuate(self, data: TrainingData) -> Tensor:
        """phi (N, M) of every training sample, each encoded once by the model as the last epoch left it."""
        model = data.model
        model.eval()
        phi = torch.zeros(len(data), len(self.modalities), dtype=torch.float64, device=data.device)
        total = math.ceil(len(data) / data.batch_size)
        with torch.no_grad(), data.autocast():
            for done, batch in enumerate(data.batches(), 1):
                assert batch.index is not None
                feats = model.encode(batch.inputs, self.modalities)
                correct = subset_correct(lambda f: self.predict(model, f), feats, batch.labels, self.masks)
                phi.index_copy_(0, batch.index, shapley_values(characteristic_values(correct, self.masks)))
                data.progress(PROGRESS, done, total)
        return phi

    def modality_level(self, phi: Tensor) -> Tensor:
        """The authors' modality-level copies: gaps from a drawn part of the split, then int(P N) drawn copies.

        Both draws come from torch's global generator on the CPU, so a run draws the same on any device.
        """
        size, n_modalities, alpha = phi.shape[0], phi.shape[1], self.options.alpha
        part = torch.randint(size, (max(int(size * self.options.part_ratio), 1),)).to(phi.device)
        gaps = modality_gaps(phi[part].mean(0))
        count = torch.floor(resample_share(gaps, alpha) * size)
        # |gap_m - gap_n| <= M, as each phi_m lies in [-(M - 1) / 2, (M + 1) / 2]: P <= (2/3) alpha M.
        draws = torch.randint(size, (int(2 / 3 * alpha * n_modalities * size) + 1,)).to(phi.device)
        return modality_copies(draws, count, weakest_modality(gaps), size, n_modalities)

    def sample_order(self, epoch: int, size: int, generator: torch.Generator) -> Tensor:
        """Every original once, shuffled as the loop would: the steps need the indices to find their copies."""
        return torch.randperm(size, generator=generator)

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.resampling = epoch > self.options.warmup_epochs

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        """Plain fused cross-entropy in the warm-up; then over the batch and its copies, from one encoder pass."""
        if not self.resampling:
            return super().train_step(step, batch)
        if batch.index is None or self.copies is None:
            raise RuntimeError("sample-valuation's step needs the epoch's valuation and the batch's sample indices")
        model = step.model
        with step.autocast():
            feats = model.encode(batch.inputs, self.modalities)
            logits = model.head(copy_batch(feats))
        loss = resampled_loss(logits, batch.labels, copy_weights(self.copies[batch.index]))
        step.zero_grad()
        loss.backward()
        step.update()
        return loss.detach()

    def end_epoch(self) -> EpochSummary:
        assert self.copies is not None and self.phi_mean is not None
        copies = self.copies.double()
        metrics = {"sv_copies_total": copies.sum()}
        for i, m in enumerate(self.modalities):
            metrics[f"sv_phi.{m}"] = self.phi_mean[i]
            metrics[f"sv_copied.{m}"] = (copies[:, i] > 0).float().mean()
            metrics[f"sv_copies.{m}"] = copies[:, i].mean()
        return EpochSummary(metrics=metrics)

