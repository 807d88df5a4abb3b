"""UMT: uni-modal teachers (Du et al., ICML 2023, arXiv 2305.01233; METHODS.md Part B section 1).

Joint training of encoders h_m and the concat head, with each encoder's
features pulled towards those of a frozen teacher encoder t_m trained on its
modality alone: L = CE(fused(h), y) + lambda * sum_m MSE(h_m, t_m), the MSE
averaged over batch and features, the second term inside the modulation
window only. The teachers are what the paper distils from: encoders that
learnt their modality's features without another modality to lean on.

A teacher is either trained here once, before epoch 1's steps (a copy of the
run's freshly initialised encoder plus a linear classifier, unimodal
cross-entropy, an SGD optimiser of its own), or loaded from an earlier
``unimodal`` run. Against BalanceMM: the teachers run in eval mode (BalanceMM
leaves them in train mode, so BatchNorm uses batch statistics and its running
statistics drift); the teacher's checkpoint is checked against this run
instead of being found by rewriting an output path. Teachers are checkpointed
with the method's state, so a resumed run neither retrains nor rereads them.
Its options and metric declarations: ``armscope.builtin.methods.umt``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.methods.umt import TRAIN, UMTOptions
from armscope.epoch_pass import TrainingData
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import MultimodalModel
from armscope.rundir import RunDir
from armscope.step import Batch, StepContext

PROGRESS = "teachers"
TEACHER_MOMENTUM = 0.9
TEACHER_WEIGHT_DECAY = 1e-4  # RunConfig's default, so an in-run teacher trains as a default `unimodal` run would


def feature_mse(student: Tensor, teacher: Tensor) -> Tensor:
    """MSE(h_m, t_m) in float32, averaged over batch and features; the teacher side carries no gradient."""
    return F.mse_loss(student.float(), teacher.detach().float())


def feature_cosine(student: Tensor, teacher: Tensor) -> Tensor:
    """The batch mean of each sample's cosine(h_m, t_m): whether the features point the teacher's way."""
    return F.cosine_similarity(student.detach().float(), teacher.detach().float(), dim=1).mean()


def umt_loss(cross_entropy: Tensor, distances: Tensor, weight: float) -> Tensor:
    """L = L_ce + lambda * sum_m MSE_m over the modalities that have a teacher (``distances``, possibly none)."""
    return cross_entropy + weight * distances.sum()


def frozen(module: nn.Module) -> nn.Module:
    """The module in eval mode without gradients: a teacher's BatchNorm statistics and weights stay as trained."""
    module.eval()
    module.zero_grad(set_to_none=True)
    module.requires_grad_(False)
    return module


def encoder_copy(model: MultimodalModel, modality: str, state: Mapping[str, Tensor] | None = None) -> nn.Module:
    """A module of the run's encoder architecture for ``modality`` (on the run's device), with ``state`` loaded."""
    encoder = copy.deepcopy(model.encoders[modality])
    encoder.zero_grad(set_to_none=True)
    if state is not None:
        encoder.load_state_dict(state)
    return encoder


def prefixed(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of a state dict under ``prefix``, with the prefix removed (a submodule's own state)."""
    return {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}


def shuffled_batches(data: TrainingData) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
    """The training split in an order drawn from torch's global generator, on the run's device.

    ``TrainingData.batches`` reads the split in its stored order, which for
    some data sets is sorted by class: SGD on that would not train a teacher.
    """
    for batch in data.batches(order=torch.randperm(len(data))):
        yield batch.inputs, batch.labels


def train_teachers(
    encoders: dict[str, nn.Module], classifiers: dict[str, nn.Linear], data: TrainingData, epochs: int, lr: float
) -> None:
    """Unimodal cross-entropy training of each (encoder, classifier) pair, all in the same passes over the data.

    Each pair has an SGD optimiser of its own and sees only its modality, so
    sharing the passes (and their order) changes nothing but the reading cost.
    """
    optimizers = {
        m: torch.optim.SGD(
            [*encoders[m].parameters(), *classifiers[m].parameters()],
            lr=lr, momentum=TEACHER_MOMENTUM, weight_decay=TEACHER_WEIGHT_DECAY,
        )
        for m in encoders
    }
    for m in encoders:
        encoders[m].train()
        classifiers[m].train()
    with torch.enable_grad():
        for epoch in range(epochs):
            for inputs, labels in shuffled_batches(data):
                for m, optimizer in optimizers.items():
                    with data.autocast():
                        logits = classifiers[m](encoders[m](inputs[m]))
                    loss = F.cross_entropy(logits.float(), labels)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            data.progress(PROGRESS, epoch + 1, epochs + 1)


def training_accuracies(
    encoders: dict[str, nn.Module], classifiers: dict[str, nn.Linear], data: TrainingData
) -> dict[str, Tensor]:
    """Each teacher's accuracy on the whole training split, in eval mode, as device tensors (nothing read back)."""
    correct = {m: torch.zeros((), dtype=torch.float64, device=data.device) for m in encoders}
    for module in (*encoders.values(), *classifiers.values()):
        module.eval()
    with torch.no_grad(), data.autocast():
        for batch in data.batches():
            for m, encoder in encoders.items():
                predicted = classifiers[m](encoder(batch.inputs[m])).argmax(1)
                correct[m] += (predicted == batch.labels).sum()
    return {m: hits / len(data) for m, hits in correct.items()}


def check_teacher_config(
    run_id: int, modality: str, config: Mapping[str, Any], first_modality: str, feature_dim: int, dataset: str | None
) -> None:
    """Refuse a teacher run that is not a ``unimodal`` run on ``modality`` of this data set with this run's feature size.

    A ``unimodal`` run without a modality option trained the data set's first one. ``dataset`` is this
    run's data set (None where the run's config is not at hand, as in a bare pass).
    """
    checks = (
        ("method", config.get("method"), "unimodal"),
        ("dataset", config.get("dataset"), dataset if dataset is not None else config.get("dataset")),
        ("method_options.modality", (config.get("method_options") or {}).get("modality") or first_modality, modality),
        ("model_options.feature_dim", (config.get("model_options") or {}).get("feature_dim"), feature_dim),
    )
    for field, there, here in checks:
        if there != here:
            raise ValueError(f"teacher run {run_id} for {modality!r}: its {field} is {there!r}, this run's teacher "
                             f"needs {here!r}")


def encoder_options(config: Mapping[str, Any], modality: str) -> Any:
    """The encoder a stored run's config chose for ``modality``: its per-modality override, else the default."""
    model_options = config.get("model_options") or {}
    return (model_options.get("encoders") or {}).get(modality, model_options.get("encoder"))


def check_encoder_weights(
    run_id: int, modality: str, weights: Mapping[str, Tensor], encoder: nn.Module, described: Any
) -> None:
    """Refuse weights that do not fit this run's encoder: another encoder (model_options) or input size (data set).

    The run's own config is not at hand here, so the teacher run's encoder
    options are named beside the first parameter whose shape differs.
    """
    expected = encoder.state_dict()
    where = f"teacher run {run_id} for {modality!r}: its encoder (model_options {described!r})"
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{where} is not this run's: it lacks {missing or 'nothing'} and has {extra or 'nothing'} beyond "
            "this run's encoder's parameters"
        )
    for key, value in expected.items():
        if weights[key].shape != value.shape:
            raise ValueError(
                f"{where} or the data set's input size differs from this run's: {key} has shape "
                f"{tuple(weights[key].shape)} there, {tuple(value.shape)} in this run"
            )


def head_classifier(
    run_id: int, modality: str, state: Mapping[str, Tensor], modalities: list[str], n_classes: int, feature_dim: int
) -> nn.Linear:
    """The teacher's classifier: the ``unimodal`` run's concat head with the other modalities zeroed, W_m h + b."""
    weight, bias = state["head.fc.weight"], state["head.fc.bias"]
    width = len(modalities) * feature_dim
    if tuple(weight.shape) != (n_classes, width):
        raise ValueError(
            f"teacher run {run_id} for {modality!r}: its data set differs: its fused head maps "
            f"{weight.shape[1]} features to {weight.shape[0]} classes, this run's {width} features "
            f"({len(modalities)} modalities x {feature_dim}) to {n_classes} classes"
        )
    index = modalities.index(modality)
    classifier = nn.Linear(feature_dim, n_classes)
    with torch.no_grad():
        classifier.weight.copy_(weight[:, index * feature_dim : (index + 1) * feature_dim])
        classifier.bias.copy_(bias)
    return classifier


class UMT(Method):
    options: UMTOptions

    def __init__(self, options: UMTOptions, modalities: list[str], n_classes: int, feature_dim: int) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        problem = options.check_modalities(modalities)
        if problem:
            raise ValueError(f"method_options.{problem[0][0]}: {problem[1]}")
        self.sources = options.teacher_sources(modalities)
        self.teacher_states: dict[str, dict[str, Tensor]] | None = None
        self.teachers: dict[str, nn.Module] | None = None
        self.teacher_accuracy = torch.full((len(modalities),), math.nan, dtype=torch.float64)
        self.origins: dict[str, str] = {}

    def epoch_pass(self, data: TrainingData) -> None:
        """Epoch 1 of a fresh run trains or loads the teachers; a resumed run rebuilds them from its checkpoint."""
        if self.teacher_states is None:
            self.prepare_teachers(data)
        elif self.teachers is None:
            self.teachers = {m: frozen(encoder_copy(data.model, m, s)) for m, s in self.teacher_states.items()}

    def prepare_teachers(self, data: TrainingData) -> None:
        """Trains the in-run teachers, loads the others, and measures each one's training accuracy."""
        encoders: dict[str, nn.Module] = {}
        classifiers: dict[str, nn.Linear] = {}
        trained = [m for m, source in self.sources.items() if source == TRAIN]
        for m in trained:
            encoders[m] = encoder_copy(data.model, m)
            classifiers[m] = nn.Linear(self.feature_dim, self.n_classes).to(data.device)
            self.origins[m] = f"trained here for {self.options.teacher_epochs} epochs"
        epochs = self.options.teacher_epochs if trained else 0
        if trained:
            train_teachers(encoders, classifiers, data, epochs, self.options.teacher_lr)
        for m, source in self.sources.items():
            if source != TRAIN:
                assert isinstance(source, int)
                encoders[m], classifiers[m] = self.load_teacher(data, m, source)
        if encoders:
            accuracy = training_accuracies(encoders, classifiers, data)
            nan = torch.full((), math.nan, dtype=torch.float64, device=data.device)
            self.teacher_accuracy = torch.stack([accuracy.get(m, nan) for m in self.modalities])
        data.progress(PROGRESS, epochs + 1, epochs + 1)
        self.teachers = {m: frozen(encoders[m]) for m in self.sources}
        self.teacher_states = {m: teacher.state_dict() for m, teacher in self.teachers.items()}

    def load_teacher(self, data: TrainingData, modality: str, run_id: int) -> tuple[nn.Module, nn.Linear]:
        """The encoder and classifier of the ``unimodal`` run ``run_id``, once it is checked to fit this run."""
        folder = RunDir(data.run_folder(run_id))
        if not folder.holds_run():
            raise ValueError(f"teacher run {run_id} for {modality!r}: no run was found in {folder.path}")
        config = folder.read_config()
        check_teacher_config(
            run_id, modality, config, self.modalities[0], self.feature_dim, data.run_config.get("dataset")
        )
        checkpoint = folder.load_checkpoint()
        if checkpoint is None:
            raise ValueError(f"teacher run {run_id} for {modality!r} has no checkpoint: it finished no epoch")
        state = checkpoint["model"]
        encoder = encoder_copy(data.model, modality)
        weights = prefixed(state, f"encoders.{modality}.")
        check_encoder_weights(run_id, modality, weights, encoder, encoder_options(config, modality))
        encoder.load_state_dict(weights)
        classifier = head_classifier(run_id, modality, state, self.modalities, self.n_classes, self.feature_dim)
        self.origins[modality] = (
            f"loaded from unimodal run {run_id} (its epoch {checkpoint['state']['epoch']} of {config.get('epochs')})"
        )
        return encoder, classifier.to(data.device)

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.distilling = self.options.modulates(epoch)
        self.sums = torch.zeros(2, len(self.modalities), device=device)
        self.ce_sum = torch.zeros((), device=device)
        self.steps = 0

    def teacher_features(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """t_m for every modality with a teacher, without a graph: the teachers only give targets."""
        assert self.teachers is not None, "UMT's epoch_pass builds the teachers before the first step"
        with torch.no_grad():
            return {m: teacher(inputs[m]) for m, teacher in self.teachers.items()}

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        """One student forward, a no-grad forward per teacher, one backward and one update of every parameter."""
        model = step.model
        with step.autocast():
            feats = model.encode(batch.inputs)
            cross_entropy = F.cross_entropy(model.head(feats), batch.labels).float()
            targets = self.teacher_features(batch.inputs)
        mse = {m: feature_mse(feats[m], t) for m, t in targets.items()}
        loss = cross_entropy
        if self.distilling and mse:
            loss = umt_loss(cross_entropy, torch.stack(list(mse.values())), self.options.distill_weight)
        step.zero_grad()
        loss.backward()
        step.update()
        self.record(cross_entropy, mse, {m: feature_cosine(feats[m], t) for m, t in targets.items()})
        return loss.detach()

    def record(self, cross_entropy: Tensor, mse: dict[str, Tensor], cosine: dict[str, Tensor]) -> None:
        """Adds the step's statistics to the epoch's device sums (a modality without a teacher adds 0)."""
        zero = cross_entropy.new_zeros(())
        self.sums += torch.stack(
            [
                torch.stack([mse.get(m, zero).detach() for m in self.modalities]),
                torch.stack([cosine.get(m, zero) for m in self.modalities]),
            ]
        )
        self.ce_sum += cross_entropy.detach()
        self.steps += 1

    def end_epoch(self) -> EpochSummary:
        count = max(self.steps, 1)
        means = self.sums / count
        metrics: dict[str, Tensor] = {"umt_ce": self.ce_sum / count}
        nan = torch.tensor(math.nan)
        for i, m in enumerate(self.modalities):
            metrics[f"umt_mse.{m}"] = means[0, i] if m in self.sources else nan
            metrics[f"umt_cosine.{m}"] = means[1, i] if m in self.sources else nan
            metrics[f"umt_teacher_acc.{m}"] = self.teacher_accuracy[i]
        return EpochSummary(metrics=metrics, events=self.teacher_events())

    def teacher_events(self) -> list[dict[str, Any]]:
        """One event in the epoch that made the teachers: where each came from and its training accuracy."""
        if not self.origins:
            return []
        parts = []
        for i, m in enumerate(self.modalities):
            origin = self.origins.get(m)
            parts.append(f"{m}: no teacher" if origin is None else
                         f"{m}: {origin}, training accuracy {float(self.teacher_accuracy[i]):.3f}")
        self.origins = {}
        return [{"kind": "umt_teachers", "level": "info", "message": "UMT teachers: " + "; ".join(parts)}]

    def state_dict(self) -> dict[str, Any]:
        return {"teachers": self.teacher_states, "teacher_accuracy": self.teacher_accuracy}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.teacher_states = state["teachers"]
        self.teacher_accuracy = state["teacher_accuracy"]
        self.teachers = None

