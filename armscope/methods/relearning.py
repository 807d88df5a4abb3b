"""Diagnosing and Re-learning (Wei, Li, Feng, Hu, ECCV 2024; METHODS.md Part B section 4).

Between re-initialisations each step is plain cross-entropy on the fused
output. Every ``reinit_every`` epochs the method diagnoses how well each
encoder's features separate the classes, without any classifier: it
clusters them (k-means, k = classes) and measures the clustering's purity on
the trained part D of the training split and on a held-out part V that
training never sees. An encoder whose purity is much higher on D than on V
has memorised rather than learnt (the dominant modality typically does), so
its parameters are pulled back towards their initial values by
alpha = tanh(lambda x |P_D - P_V|) and it re-learns; an encoder that
generalises is left nearly as it is.

Choices where the sources differ: V is a fixed random share of the training
split, never the validation or test split (BalanceMM clusters the test set);
epochs are 1-based, so the re-inits follow epochs R, 2R, ... (the authors'
0-based counter puts them one epoch later); the k-means is written here in
torch, with a fixed iteration count, so that the diagnosis runs on the
device without reading anything back. As in the authors' code, every
encoder parameter is moved (BatchNorm's affine ones included), while the
head, BatchNorm's running statistics and the optimiser's state are not.
Its options and metric declarations: ``armscope.builtin.methods.relearning``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from armscope.builtin.methods.relearning import RelearningOptions
from armscope.epoch_pass import TrainingData
from armscope.holdout import draw_held_out, held_out_count, kept_indices, shuffled
from armscope.methods.base import EpochSummary, Method

# Rows of the last diagnosis, one column per modality.
PURITY_TRAIN, PURITY_HOLDOUT, GAP, ALPHA = range(4)


def diagnosis_due(finished_epoch: int, every: int, limit: int, done: int) -> bool:
    """Whether the epoch just finished (1-based) is followed by a diagnosis: every R-th, at most N in all."""
    return finished_epoch > 0 and finished_epoch % every == 0 and done < limit


def minmax_scale(features: Tensor) -> Tensor:
    """Each column mapped onto [-1, 1] by its own minimum and maximum (sklearn's MinMaxScaler((-1, 1))).

    Without it the dimensions with the largest ranges would decide the
    clustering alone. A constant column goes to -1, as in sklearn.
    """
    low, high = features.amin(0), features.amax(0)
    span = high - low
    span = torch.where(span > 0, span, torch.ones_like(span))
    return 2 * (features - low) / span - 1


def squared_distances(points: Tensor, centers: Tensor) -> Tensor:
    """||x_i - c_rj||^2 for points (n, d) and R sets of centres (R, k, d): an (R, n, k) tensor.

    Expanded as |x|^2 - 2 x.c + |c|^2, which needs no (R, n, k, d)
    intermediate; rounding below zero is clamped.
    """
    cross = points @ centers.transpose(1, 2)
    return (points.square().sum(1)[None, :, None] - 2 * cross + centers.square().sum(2)[:, None, :]).clamp_min(0)


def kmeans_plus_plus(points: Tensor, k: int, uniforms: Tensor) -> Tensor:
    """k-means++ starting centres (R, k, d), one set per row of ``uniforms`` (R, k) in [0, 1).

    The first centre is a uniformly drawn point, each next one a point drawn
    with probability proportional to its squared distance from the nearest
    centre so far, by inverting the cumulative distances at the given
    uniform: the draw needs no device generator and reads nothing back.
    """
    n = points.shape[0]
    first = (uniforms[:, 0] * n).long().clamp_max(n - 1)
    centers = [points.index_select(0, first)]
    nearest = squared_distances(points, centers[0][:, None]).squeeze(2)
    for j in range(1, k):
        cumulative = nearest.cumsum(1)
        target = uniforms[:, j : j + 1] * cumulative[:, -1:]
        chosen = torch.searchsorted(cumulative, target, right=True).clamp_max(n - 1).squeeze(1)
        centers.append(points.index_select(0, chosen))
        nearest = torch.minimum(nearest, squared_distances(points, centers[-1][:, None]).squeeze(2))
    return torch.stack(centers, 1)


def lloyd(points: Tensor, centers: Tensor, iterations: int) -> Tensor:
    """``iterations`` rounds of assigning each point to its nearest centre and moving centres to their means.

    A fixed count instead of a convergence test, which would read a value
    back every round; a converged clustering is a fixed point and stays. A
    centre left without points keeps its place.
    """
    for _ in range(iterations):
        nearest = squared_distances(points, centers).argmin(2)
        members = torch.zeros(*nearest.shape, centers.shape[1], device=points.device)
        members.scatter_(2, nearest[..., None], 1.0)
        counts = members.sum(1)[..., None]
        means = members.transpose(1, 2) @ points / counts.clamp_min(1)
        centers = torch.where(counts > 0, means, centers)
    return centers


def kmeans(points: Tensor, k: int, iterations: int, restarts: int, seed: int) -> Tensor:
    """The cluster of each point (n,) under the least-inertia clustering of ``restarts`` k-means++ starts.

    The starts come from a generator of its own seeded with ``seed``, like
    sklearn's ``random_state``, so a clustering depends on the points alone
    and the run's generators are left as they were.
    """
    uniforms = torch.rand(restarts, k, generator=torch.Generator().manual_seed(seed)).to(points.device)
    centers = lloyd(points, kmeans_plus_plus(points, k, uniforms), iterations)
    distances = squared_distances(points, centers)
    best = distances.amin(2).sum(1).argmin()
    return distances.argmin(2).index_select(0, best.view(1)).squeeze(0)


def purity(clusters: Tensor, labels: Tensor, n_clusters: int, n_classes: int) -> Tensor:
    """(1/n) x the sum over clusters of their largest class count: the accuracy of majority-vote labels.

    Which class wins a tied vote (the authors take the smallest label) does
    not change the count, so it needs no rule here.
    """
    pairs = clusters * n_classes + labels
    counts = torch.zeros(n_clusters * n_classes, device=labels.device)
    counts.index_add_(0, pairs, torch.ones_like(pairs, dtype=counts.dtype))
    return counts.view(n_clusters, n_classes).amax(1).sum() / labels.numel()


def reinit_strength(gap: Tensor, strength: float) -> Tensor:
    """alpha = tanh(lambda x g): 0 for no gap, approaching 1 (a full reset) as the gap grows."""
    return torch.tanh(strength * gap)


@torch.no_grad()
def soft_reinit_(parameters: list[nn.Parameter], initial: list[Tensor], alpha: Tensor) -> None:
    """theta <- alpha x theta_init + (1 - alpha) x theta, in place, for each parameter and its snapshot."""
    for parameter, start in zip(parameters, initial, strict=True):
        parameter.mul_(1 - alpha).add_(start * alpha)


def distance_from(parameters: list[nn.Parameter], initial: list[Tensor]) -> Tensor:
    """||theta - theta_init||, the L2 norm over all of the parameters together, in float32."""
    norms = [torch.linalg.vector_norm(p.detach().float() - q.float()) for p, q in zip(parameters, initial, strict=True)]
    return torch.linalg.vector_norm(torch.stack(norms))


class Relearning(Method):
    options: RelearningOptions

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.initial: dict[str, list[Tensor]] | None = None
        self.train_index: Tensor | None = None
        self.holdout_index: Tensor | None = None
        self.reinits = 0
        self.diagnosis = torch.zeros(4, len(self.modalities))
        self.encoder_parameters: dict[str, list[nn.Parameter]] = {}
        self.diagnosed_after: int | None = None

    def epoch_pass(self, data: TrainingData) -> None:
        """Snapshot theta_init and hold out V before any training; after every R-th epoch, diagnose and re-init."""
        model = data.model
        if self.initial is None:
            self.initial = {m: [p.detach().clone() for p in model.encoders[m].parameters()] for m in self.modalities}
        self.initial = {m: [t.to(data.device) for t in tensors] for m, tensors in self.initial.items()}
        self._hold_out(len(data))
        self.diagnosis = self.diagnosis.to(data.device)
        self.encoder_parameters = {m: list(model.encoders[m].parameters()) for m in self.modalities}
        self.diagnosed_after = None
        options = self.options
        if diagnosis_due(data.epoch - 1, options.reinit_every, options.reinit_limit, self.reinits):
            self._relearn(data)

    def sample_order(self, epoch: int, size: int, generator: torch.Generator) -> Tensor:
        """The trained part D, shuffled: the held-out samples are never trained on."""
        trained, _ = self._hold_out(size)
        return shuffled(trained, generator)

    def _hold_out(self, size: int) -> tuple[Tensor, Tensor]:
        """(trained, held-out) indices on the CPU, chosen at their first use and kept for the run."""
        if self.train_index is None or self.holdout_index is None:
            held = draw_held_out(size, held_out_count(size, self.options.holdout_fraction))
            self.train_index, self.holdout_index = kept_indices(held, size), held
        return self.train_index, self.holdout_index

    def _relearn(self, data: TrainingData) -> None:
        """One diagnosis: every modality's purities, gap and alpha, then its soft re-initialisation."""
        assert self.initial is not None and self.train_index is not None and self.holdout_index is not None
        features, labels = self._features(data)
        trained, held = self.train_index.to(data.device), self.holdout_index.to(data.device)
        on_train = torch.stack([self._purity(features[m], labels, trained) for m in self.modalities])
        on_holdout = torch.stack([self._purity(features[m], labels, held) for m in self.modalities])
        gap = (on_train - on_holdout).abs()
        alpha = reinit_strength(gap, self.options.strength)
        for i, m in enumerate(self.modalities):
            soft_reinit_(self.encoder_parameters[m], self.initial[m], alpha[i])
        self.diagnosis = torch.stack([on_train, on_holdout, gap, alpha])
        self.reinits += 1
        self.diagnosed_after = data.epoch - 1

    def _features(self, data: TrainingData) -> tuple[dict[str, Tensor], Tensor]:
        """Every training sample's float32 features per modality and its label, at the sample's index.

        Eval mode and no gradient, as the authors extract them. The number of
        batches comes from the split's size, so nothing is read back.
        """
        model = data.model
        model.eval()
        n = len(data)
        total = math.ceil(n / data.batch_size)
        features = {m: torch.zeros(n, self.feature_dim, device=data.device) for m in self.modalities}
        labels = torch.zeros(n, dtype=torch.long, device=data.device)
        with torch.no_grad(), data.autocast():
            for done, batch in enumerate(data.batches(), start=1):
                assert batch.index is not None
                for m, h in model.encode(batch.inputs, self.modalities).items():
                    features[m].index_copy_(0, batch.index, h.float())
                labels.index_copy_(0, batch.index, batch.labels)
                data.progress("diagnosis", done, total)
        return features, labels

    def _purity(self, features: Tensor, labels: Tensor, index: Tensor) -> Tensor:
        """The purity of a k-means clustering (k = classes) of the min-max scaled features of the samples ``index``."""
        options = self.options
        points = minmax_scale(features.index_select(0, index))
        clusters = kmeans(points, self.n_classes, options.kmeans_iterations, options.kmeans_restarts, options.kmeans_seed)
        return purity(clusters, labels.index_select(0, index), self.n_classes, self.n_classes)

    def end_epoch(self) -> EpochSummary:
        assert self.initial is not None
        metrics: dict[str, Tensor] = {}
        for i, m in enumerate(self.modalities):
            metrics[f"relearn_purity_train.{m}"] = self.diagnosis[PURITY_TRAIN, i]
            metrics[f"relearn_purity_holdout.{m}"] = self.diagnosis[PURITY_HOLDOUT, i]
            metrics[f"relearn_gap.{m}"] = self.diagnosis[GAP, i]
            metrics[f"relearn_alpha.{m}"] = self.diagnosis[ALPHA, i]
            metrics[f"relearn_drift.{m}"] = distance_from(self.encoder_parameters[m], self.initial[m])
        metrics["relearn_reinits"] = torch.tensor(float(self.reinits))
        return EpochSummary(metrics=metrics, events=self._reinit_events())

    def _reinit_events(self) -> list[dict[str, Any]]:
        """One event in the epoch whose start re-initialised, with each modality's gap and alpha."""
        if self.diagnosed_after is None:
            return []
        gaps, alphas = self.diagnosis[GAP].tolist(), self.diagnosis[ALPHA].tolist()
        moved = ", ".join(f"{m} alpha {a:.3f} (gap {g:.3f})" for m, a, g in zip(self.modalities, alphas, gaps))
        return [
            {
                "kind": "relearning_reinit",
                "level": "info",
                "message": f"re-initialisation {self.reinits} of {self.options.reinit_limit} after epoch "
                f"{self.diagnosed_after}: encoders moved towards their initial weights by {moved}",
                "data": {"after_epoch": self.diagnosed_after, "alpha": dict(zip(self.modalities, alphas)),
                         "gap": dict(zip(self.modalities, gaps))},
            }
        ]

    def state_dict(self) -> dict[str, Any]:
        return {
            "initial": self.initial,
            "train_index": self.train_index,
            "holdout_index": self.holdout_index,
            "reinits": self.reinits,
            "diagnosis": self.diagnosis,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.initial = {m: list(tensors) for m, tensors in state["initial"].items()}
        self.train_index, self.holdout_index = state["train_index"], state["holdout_index"]
        self.reinits = state["reinits"]
        self.diagnosis = state["diagnosis"]
