"""``ArmscopeCallback``: a PyTorch Lightning fit logged to an armscope run, with the contribution lens every N epochs.

    callback = ArmscopeCallback(name="my-avnet", modalities=["audio", "visual"], n_classes=6)
    Trainer(max_epochs=30, callbacks=[callback]).fit(model, train_loader, val_loader)

Given ``armscope.init``'s keyword arguments, the callback starts the run when the fit starts and ends
it when the fit ends (failed, with the error, when it raises); given a run, it only logs to it.

What is logged when. ``trainer.callback_metrics`` keeps every value ever logged: at a validation end it
still holds the previous epoch's ``train_loss_epoch``, and after an epoch without validation the last
``val_loss``. Lightning stores a new tensor each time it computes a value, so the callback logs only
the entries that are new objects since it last looked: at each validation end what the validation
computed (and the last training step's values), with the measures when due; at each training epoch
end the epoch's means; at the next epoch's start (or the fit's end) what the module's own
``on_train_epoch_end`` logged. The run merges an epoch's records key by key, so ``train_loss`` logged
with ``on_epoch=True`` ends as the epoch's mean. ``epoch`` is ``trainer.current_epoch + 1``.

With several processes, only global rank zero starts the run, logs and measures (on its own share of the
validation data); a cancel stops every process at the next validation or epoch end.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

try:
    import lightning.pytorch as pl
except ImportError as exc:  # the extra is optional: say how to get it
    raise ImportError('armscope.integrations.lightning needs PyTorch Lightning 2.4 or later: '
                      'pip install "armscope[lightning]"') from exc

from armscope.integrations.loop import MeasureFn, Measuring, Predict, merged, run_modalities
from armscope.lens import measure as lens_measure
from armscope.metrics import LOGGED_KEY
from armscope.tracking.run import Run, init

log = logging.getLogger("armscope.tracking")

DEFAULT_PREDICT = "predict_modalities"


class _Fresh:
    """The entries of ``trainer.callback_metrics`` that Lightning computed since the last look (see the module)."""

    def __init__(self) -> None:
        self._seen: dict[str, Any] = {}

    def take(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        fresh = {key: value for key, value in metrics.items() if self._seen.get(key) is not value}
        self._seen = dict(metrics)
        return fresh


class ArmscopeCallback(pl.Callback):
    """Logs a Lightning fit to armscope, measures the modalities' contributions every ``measure_every`` epochs
    (0: never) and stops the trainer when the run is cancelled in the dashboard.

    ``predict`` is ``(batch, present) -> logits`` or the name of such a method on the LightningModule (by
    default ``predict_modalities``); it gets each batch of ``val_dataloader`` (default: the trainer's one
    validation loader) moved to the module's device as Lightning moves its own, while the module is in
    eval mode. ``modalities`` defaults to the run's; ``features`` and ``label`` go to
    ``armscope.lens.measure``, and ``measure`` replaces it (a test's stand-in). Where the module logs a key
    the measures also have (``val_acc``, ``val_loss``), the module's value is kept.
    """

    def __init__(
        self,
        run: Run | None = None,
        *,
        predict: Predict | str = DEFAULT_PREDICT,
        val_dataloader: Iterable[Any] | None = None,
        modalities: Iterable[str] | None = None,
        n_classes: int | None = None,
        measure_every: int = 1,
        features: Callable[[Any], Any] | None = None,
        label: Callable[[Any], Any] | None = None,
        measure: MeasureFn | None = None,
        **init_kwargs: Any,
    ) -> None:
        if run is not None and init_kwargs:
            raise TypeError("ArmscopeCallback takes a run or armscope.init's keyword arguments, not both "
                            f"(got a run and {', '.join(sorted(init_kwargs))})")
        inspect.signature(init).bind(**init_kwargs)  # a misspelt argument fails here, not when the fit starts
        started = run_modalities(run) if run is not None else tuple(init_kwargs.get("modalities") or ())
        chosen = tuple(modalities) if modalities is not None else started
        self.measuring = Measuring(chosen, n_classes, measure_every, features, label, measure or lens_measure)
        self.run, self.owns_run, self.init_kwargs = run, run is None, init_kwargs
        self.predict, self.val_dataloader = predict, val_dataloader
        self._predict: Predict | None = None
        self._fresh = _Fresh()
        self._logged: tuple[int, dict[str, Any]] = (0, {})
        self._dropped: set[str] = set()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Checks the prediction first, so that a module without one fails before a run is started."""
        if self.measuring.every:
            self._predict = self._resolved_predict(pl_module)
        self._fresh, self._logged = _Fresh(), (0, {})
        if self.owns_run and trainer.is_global_zero:
            self.run = init(**{"epochs": max(trainer.max_epochs or 0, 0), **self.init_kwargs})

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """In one process a cancel stops at the next batch; across processes it waits for an epoch's end, where
        the processes vote anyway (a vote at every batch would cost each step a collective)."""
        if trainer.world_size == 1:
            self._stop_if_cancelled(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:  # a check of the loop, not an epoch: its values are not logged
            self._fresh.take(trainer.callback_metrics)
            return
        if self._logging(trainer):
            epoch = trainer.current_epoch + 1
            measures = self._measures(trainer, epoch)
            self._log(epoch, merged(measures, self._fresh.take(trainer.callback_metrics)))
        self._stop_if_cancelled(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """What the module logged in its own ``on_train_epoch_end`` (called after this callback's) belongs to the
        epoch before this one."""
        self._flush(trainer, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer, trainer.current_epoch + 1)
        self._stop_if_cancelled(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer, trainer.current_epoch)
        if self.owns_run and self.run is not None:
            self.run.finish()  # succeeded, or cancelled when a cancel stopped it

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self.owns_run and self.run is not None:
            lines = traceback.format_exception(type(exception), exception, exception.__traceback__)
            self.run.finish("failed", "".join(lines[-20:]))

    def _resolved_predict(self, pl_module: pl.LightningModule) -> Predict:
        if callable(self.predict):
            return self.predict
        method = getattr(pl_module, self.predict, None)
        if not callable(method):
            raise AttributeError(
                f"ArmscopeCallback measures every {self.measuring.every} epoch(s) with "
                f"{type(pl_module).__name__}.{self.predict}(batch, present) -> logits, which it does not define: "
                "define it, pass predict=, or measure_every=0 to log only")
        return method

    def _logging(self, trainer: pl.Trainer) -> bool:
        return self.run is not None and trainer.is_global_zero

    def _measures(self, trainer: pl.Trainer, epoch: int) -> dict[str, Any]:
        if not self.measuring.due(epoch):
            return {}
        assert self._predict is not None  # resolved at the fit's start whenever measuring
        loader = self._val_loader(trainer)
        return self.measuring.take(self._predict, (trainer.strategy.batch_to_device(batch) for batch in loader))

    def _val_loader(self, trainer: pl.Trainer) -> Iterable[Any]:
        if self.val_dataloader is not None:
            return self.val_dataloader
        loaders = trainer.val_dataloaders
        if isinstance(loaders, Mapping):
            loaders = list(loaders.values())
        if isinstance(loaders, (list, tuple)):
            if len(loaders) != 1:
                raise ValueError(f"the trainer has {len(loaders)} validation loaders; pass ArmscopeCallback "
                                 "val_dataloader= to say which one to measure on")
            loaders = loaders[0]
        if loaders is None:
            raise ValueError("the trainer has no validation loader to measure on; pass ArmscopeCallback val_dataloader=")
        return loaders

    def _flush(self, trainer: pl.Trainer, epoch: int) -> None:
        fresh = self._fresh.take(trainer.callback_metrics)
        if epoch > 0 and self._logging(trainer):
            self._log(epoch, fresh)

    def _log(self, epoch: int, values: Mapping[str, Any]) -> None:
        """Logs what this epoch does not hold yet with the same value (the same means come back at each look)."""
        numbers = self._loggable(values)
        last_epoch, last = self._logged
        known = last if last_epoch == epoch else {}
        new = {key: value for key, value in numbers.items() if key not in known or known[key] != value}
        if new:
            assert self.run is not None
            self.run.log(new, epoch=epoch)
            self._logged = (epoch, {**known, **new})

    def _loggable(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Plain numbers under keys armscope accepts; a key it cannot store is left out, said once, rather than
        stopping the training."""
        kept: dict[str, Any] = {}
        for key, value in values.items():
            if LOGGED_KEY.match(key):
                kept[key] = value.item() if isinstance(value, torch.Tensor) else value
            elif key not in self._dropped:
                self._dropped.add(key)
                log.warning("armscope: metric %r is not logged: a key starts with a letter and holds letters, "
                            "digits and _ . / : -", key)
        return kept

    def _stop_if_cancelled(self, trainer: pl.Trainer) -> None:
        run = self.run
        cancelled = run is not None and trainer.is_global_zero and run.should_stop
        if trainer.strategy.reduce_boolean_decision(cancelled, all=False):
            trainer.should_stop = True
