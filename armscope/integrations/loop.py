"""``EpochHook``: armscope's logging and measures in a hand-written training loop, one call per epoch.

    with armscope.init(name="my-avnet", modalities=["audio", "visual"]) as run:
        hook = EpochHook(run, predict=model.predict_modalities, val_loader=val, n_classes=10, model=model)
        for epoch in range(1, epochs + 1):
            train_loss = train_one_epoch(model, train)
            if hook.end_epoch(epoch, {"train_loss": train_loss}):
                break  # cancelled in the dashboard

``Measuring`` is what this hook and the Lightning callback share: which modalities and classes, how
often, and the function that measures (``armscope.lens.measure``; a test passes a stand-in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from armscope.lens import measure as lens_measure
from armscope.tracking.run import Run

# Logits of a batch, as the loader yields it, predicted with only the modalities in the set.
Predict = Callable[[Any, frozenset[str]], Any]
# ``armscope.lens.measure``'s signature: (predict, loader, *, modalities, n_classes, features, label, model).
MeasureFn = Callable[..., Mapping[str, Any]]


def require(every: int, **needed: Any) -> None:
    """Refuse, before any training, a setting that measures but lacks what measuring needs."""
    missing = [name for name, value in needed.items() if value is None or (isinstance(value, tuple) and not value)]
    if every and missing:
        raise ValueError(f"measuring every {every} epoch(s) needs {', '.join(missing)}: pass "
                         f"{'it' if len(missing) == 1 else 'them'}, or measure_every=0 to log only")


@dataclass(frozen=True)
class Measuring:
    """Which modalities and classes the lens is taken over, every how many epochs (0: never), and with what."""

    modalities: tuple[str, ...]
    n_classes: int | None
    every: int = 1
    features: Callable[[Any], Any] | None = None
    label: Callable[[Any], Any] | None = None
    measure: MeasureFn = lens_measure

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 0:
            raise ValueError(f"measure_every must be a whole number >= 0 (0: never), got {self.every!r}")
        require(self.every, modalities=self.modalities, n_classes=self.n_classes)

    def due(self, epoch: int) -> bool:
        return self.every > 0 and epoch % self.every == 0

    def take(self, predict: Predict, loader: Iterable[Any], model: torch.nn.Module | None = None) -> dict[str, Any]:
        """The measures of one epoch; options left unset are not passed, so the measure's defaults hold."""
        options = {"features": self.features, "label": self.label, "model": model}
        given = {key: value for key, value in options.items() if value is not None}
        return dict(self.measure(predict, loader, modalities=list(self.modalities), n_classes=self.n_classes, **given))


def run_modalities(run: Run) -> tuple[str, ...]:
    """The modalities the run was started with (``armscope.init(modalities=...)``): what is measured by default."""
    return tuple(run.spool.run().get("modalities") or ())


def merged(measures: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One epoch's record: the measures, then the training code's own metrics, which win where both name a key
    (its ``val_acc`` is the one the researcher defined and sees elsewhere)."""
    return {**measures, **metrics}


class EpochHook:
    """Call ``end_epoch`` once per epoch: it logs the metrics, adds the measures every ``measure_every`` epochs
    (0: never) and returns True once the run was cancelled in the dashboard, for the loop to stop.

    ``predict(batch, present)`` and ``val_loader`` are ``armscope.lens.measure``'s; ``modalities`` defaults
    to the run's; ``model``, when given, is put in eval mode while measuring and restored after.
    """

    def __init__(
        self,
        run: Run,
        *,
        predict: Predict | None = None,
        val_loader: Iterable[Any] | None = None,
        modalities: Iterable[str] | None = None,
        n_classes: int | None = None,
        measure_every: int = 1,
        features: Callable[[Any], Any] | None = None,
        label: Callable[[Any], Any] | None = None,
        model: torch.nn.Module | None = None,
        measure: MeasureFn | None = None,
    ) -> None:
        chosen = tuple(modalities) if modalities is not None else run_modalities(run)
        self.measuring = Measuring(chosen, n_classes, measure_every, features, label, measure or lens_measure)
        require(measure_every, predict=predict, val_loader=val_loader)
        self.run, self.predict, self.val_loader, self.model = run, predict, val_loader, model

    def end_epoch(self, epoch: int, metrics: Mapping[str, Any] | None = None) -> bool:
        """Log ``metrics`` (and the measures, when due) for ``epoch``; True when the loop should stop."""
        measures: dict[str, Any] = {}
        if self.measuring.due(epoch):
            assert self.predict is not None and self.val_loader is not None  # required when measuring
            measures = self.measuring.take(self.predict, self.val_loader, self.model)
        self.run.log(merged(measures, metrics or {}), epoch=epoch)
        return self.run.should_stop
