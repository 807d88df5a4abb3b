"""Framework integrations of the tracking SDK: the Lightning callback on a real Trainer, the plain loop hook."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import armscope
from armscope.integrations.lightning import ArmscopeCallback
from armscope.integrations.loop import EpochHook
from armscope.tracking.spool import Spool, spool_root
from tests.tracking_support import BareServer

MODALITIES = ["audio", "visual"]
BOTH = frozenset(MODALITIES)
N_CLASSES = 3
SAMPLES, BATCH = 16, 8  # two equal batches: an epoch's mean loss is the plain mean of its two steps


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ARMSCOPE_HOME", str(tmp_path))
    monkeypatch.delenv("ARMSCOPE_API_TOKEN", raising=False)
    return tmp_path


def loader(seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(SAMPLES, 3, generator=generator), torch.randn(SAMPLES, 2, generator=generator),
                         torch.randint(0, N_CLASSES, (SAMPLES,), generator=generator))
    return DataLoader(data, batch_size=BATCH)


class Encoders(nn.Module):
    """Audio and visual encoders, concatenated into a linear head; an absent modality's features are zeroed."""

    def __init__(self) -> None:
        super().__init__()
        self.audio, self.visual, self.head = nn.Linear(3, 4), nn.Linear(2, 4), nn.Linear(8, N_CLASSES)

    def forward(self, batch: Any, present: frozenset[str]) -> torch.Tensor:
        audio, visual, _ = batch
        a = self.audio(audio) * ("audio" in present)
        v = self.visual(visual) * ("visual" in present)
        return self.head(torch.cat([a, v], dim=1))


class Unmeasurable(pl.LightningModule):
    """Trains and validates, but cannot predict with a modality left out."""

    def __init__(self, fail_at_epoch: int | None = None) -> None:
        super().__init__()
        self.net = Encoders()
        self.fail_at_epoch = fail_at_epoch
        self.step_losses: dict[int, list[float]] = {}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.current_epoch + 1 == self.fail_at_epoch:
            raise RuntimeError("the data went bad")
        loss = F.cross_entropy(self.net(batch, BOTH), batch[-1])
        self.step_losses.setdefault(self.current_epoch + 1, []).append(loss.item())
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        logits = self.net(batch, BOTH)
        self.log("val_loss", F.cross_entropy(logits, batch[-1]))
        self.log("val_acc", (logits.argmax(dim=1) == batch[-1]).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class TwoModalities(Unmeasurable):
    def predict_modalities(self, batch: Any, present: frozenset[str]) -> torch.Tensor:
        return self.net(batch, present)


class StandInMeasure:
    """Records what it was given (one pass over the loader, a prediction of the first batch) and returns ``result``."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result, self.calls = result, []

    def __call__(self, predict, val_loader, *, modalities, n_classes, **options) -> dict[str, Any]:
        batches = list(val_loader)
        logits = predict(batches[0], frozenset(modalities))
        self.calls.append({"samples": sum(len(b[-1]) for b in batches), "logits": tuple(logits.shape),
                           "modalities": modalities, "n_classes": n_classes})
        return dict(self.result)


class CancelAtEpochEnd(pl.Callback):
    """A cancel arriving while ``epoch``'s training ends (placed before the armscope callback, which then sees it)."""

    def __init__(self, tracked: ArmscopeCallback, epoch: int) -> None:
        self.tracked, self.epoch = tracked, epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 == self.epoch:
            self.tracked.run._stop.set()


def trainer(callbacks: list[pl.Callback], epochs: int, **options: Any) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks, **options)


def offline_run(home, name: str = "lit") -> armscope.Run:
    return armscope.init(name=name, modalities=MODALITIES, mode="offline", spool_dir=home / "spool" / name)


def per_epoch(run: armscope.Run) -> dict[int, dict[str, Any]]:
    """What the run holds after its records are merged key by key per epoch, as the server merges them."""
    records, bad = Spool(run.spool.folder).records()
    assert bad == []
    merged: dict[int, dict[str, Any]] = {}
    for record in records:
        merged.setdefault(record["epoch"], {}).update(record)
    return merged


# -- the Lightning callback -----------------------------------------------------------------------------------

def test_each_epoch_logs_what_the_module_logged_under_its_own_names_numbered_from_one(home):
    with offline_run(home) as run:
        trainer([ArmscopeCallback(run, measure_every=0)], epochs=2).fit(TwoModalities(), loader(0), loader(1))
    logged = per_epoch(run)
    assert sorted(logged) == [1, 2]
    assert all({"train_loss", "val_loss", "val_acc"} <= set(record) for record in logged.values())
    assert all(isinstance(record["val_loss"], float) for record in logged.values())


def test_every_train_loss_logged_for_an_epoch_is_that_epochs_mean_of_its_steps(home):
    module = TwoModalities()
    with offline_run(home) as run:
        trainer([ArmscopeCallback(run, measure_every=0)], epochs=3).fit(module, loader(0), loader(1))
    means = {epoch: sum(losses) / len(losses) for epoch, losses in module.step_losses.items()}
    records, _ = Spool(run.spool.folder).records()
    logged = [(r["epoch"], r["train_loss"]) for r in records if "train_loss" in r]  # every line, none stale
    assert sorted({epoch for epoch, _ in logged}) == [1, 2, 3]
    assert logged == [(epoch, pytest.approx(means[epoch], rel=1e-6)) for epoch, _ in logged]


def test_an_epoch_without_validation_logs_no_validation_value(home):
    with offline_run(home) as run:
        trainer([ArmscopeCallback(run, measure_every=0)], epochs=3, check_val_every_n_epoch=2).fit(
            TwoModalities(), loader(0), loader(1))
    logged = per_epoch(run)
    assert [epoch for epoch in (1, 2, 3) if "val_loss" in logged[epoch]] == [2]
    assert all("train_loss" in logged[epoch] for epoch in (1, 2, 3))


class LogsAtItsEpochEnd(TwoModalities):
    def on_train_epoch_end(self) -> None:
        self.log("epoch_mark", float(self.current_epoch + 1))


def test_what_the_module_logs_at_its_own_epoch_end_is_logged_for_that_epoch(home):
    with offline_run(home) as run:
        trainer([ArmscopeCallback(run, measure_every=0)], epochs=2).fit(LogsAtItsEpochEnd(), loader(0), loader(1))
    assert {epoch: record.get("epoch_mark") for epoch, record in per_epoch(run).items()} == {1: 1.0, 2: 2.0}


def test_the_measures_are_taken_every_n_epochs_on_the_trainers_validation_loader(home):
    measure = StandInMeasure({"shapley.audio": 0.25, "dominant": "audio"})
    callback = ArmscopeCallback(n_classes=N_CLASSES, measure_every=2, measure=measure, name="measured",
                                modalities=MODALITIES, mode="offline")
    trainer([callback], epochs=4).fit(TwoModalities(), loader(0), loader(1))
    logged = per_epoch(callback.run)
    assert [epoch for epoch, record in sorted(logged.items()) if "shapley.audio" in record] == [2, 4]
    assert logged[4]["dominant"] == "audio"
    assert measure.calls == 2 * [{"samples": SAMPLES, "logits": (BATCH, N_CLASSES), "modalities": MODALITIES,
                                  "n_classes": N_CLASSES}]


def test_a_value_both_the_module_and_the_measures_name_keeps_the_modules(home):
    measure = StandInMeasure({"val_acc": -1.0, "val_acc.audio": 0.5})
    with offline_run(home) as run:
        trainer([ArmscopeCallback(run, n_classes=N_CLASSES, measure=measure)], epochs=1).fit(
            TwoModalities(), loader(0), loader(1))
    record = per_epoch(run)[1]
    assert record["val_acc.audio"] == 0.5 and 0 <= record["val_acc"] <= 1


def test_the_real_lens_measure_adds_each_modalitys_accuracy_and_shapley_share(home):
    with offline_run(home) as run:
        trainer([ArmscopeCallback(run, n_classes=N_CLASSES)], epochs=1).fit(TwoModalities(), loader(0), loader(1))
    record = per_epoch(run)[1]
    assert {"val_acc.audio", "val_acc.visual", "shapley.audio", "shapley.visual", "imbalance"} <= set(record)
    assert record["dominant"] in MODALITIES


def test_a_module_without_a_prediction_by_modality_fails_before_any_run_is_started(home):
    callback = ArmscopeCallback(n_classes=N_CLASSES, name="no-predict", modalities=MODALITIES, mode="offline")
    with pytest.raises(AttributeError, match="predict_modalities"):
        trainer([callback], epochs=1).fit(Unmeasurable(), loader(0), loader(1))
    assert callback.run is None and not spool_root().exists()


def test_a_cancel_seen_at_an_epochs_end_stops_the_trainer_and_ends_the_run_cancelled(home):
    callback = ArmscopeCallback(measure_every=0, name="cancelled", mode="offline")
    fit = trainer([CancelAtEpochEnd(callback, epoch=1), callback], epochs=3)
    fit.fit(TwoModalities(), loader(0), loader(1))
    assert fit.current_epoch == 1 and sorted(per_epoch(callback.run)) == [1]
    assert Spool(callback.run.spool.folder).end()["status"] == "cancelled"


def test_a_cancel_seen_during_an_epoch_stops_the_trainer_at_the_next_batch(home):
    with offline_run(home) as run:
        run._stop.set()
        fit = trainer([ArmscopeCallback(run, measure_every=0)], epochs=3)
        fit.fit(TwoModalities(), loader(0), loader(1))
    assert fit.global_step == 1


def test_an_exception_in_training_ends_the_callbacks_run_failed_with_the_error(home):
    callback = ArmscopeCallback(measure_every=0, name="breaks", mode="offline")
    with pytest.raises(RuntimeError, match="the data went bad"):
        trainer([callback], epochs=3).fit(TwoModalities(fail_at_epoch=2), loader(0), loader(1))
    end = Spool(callback.run.spool.folder).end()
    assert end["status"] == "failed" and "the data went bad" in end["error"]
    assert sorted(per_epoch(callback.run)) == [1]


def test_a_run_given_to_the_callback_is_left_for_its_owner_to_end(home):
    with offline_run(home) as run:
        trainer([ArmscopeCallback(run, measure_every=0)], epochs=1).fit(TwoModalities(), loader(0), loader(1))
        assert run.finished is None
    assert run.finished == "succeeded"


def test_the_callback_takes_a_run_or_inits_arguments_but_not_both(home):
    with offline_run(home) as run:
        with pytest.raises(TypeError, match="not both"):
            ArmscopeCallback(run, name="twice", measure_every=0)


def test_a_misspelt_init_argument_is_refused_when_the_callback_is_made(home):
    with pytest.raises(TypeError, match="nmae"):
        ArmscopeCallback(nmae="typo", measure_every=0)


def test_measuring_without_the_number_of_classes_is_refused_before_training(home):
    with pytest.raises(ValueError, match="n_classes.*measure_every=0"):
        ArmscopeCallback(name="no-classes", modalities=MODALITIES, mode="offline")


def test_importing_the_callback_without_lightning_says_how_to_install_it(monkeypatch):
    for name in ("lightning", "lightning.pytorch"):
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "armscope.integrations.lightning")
    with pytest.raises(ImportError, match=r'pip install "armscope\[lightning\]"'):
        importlib.import_module("armscope.integrations.lightning")


# -- the plain loop hook --------------------------------------------------------------------------------------

def test_the_hook_logs_each_epochs_metrics_and_the_measures_every_n_epochs(home):
    measure = StandInMeasure({"shapley.audio": 0.25})
    with offline_run(home) as run:
        hook = EpochHook(run, predict=Encoders(), val_loader=loader(1), n_classes=N_CLASSES,
                         measure_every=2, measure=measure)
        for epoch in (1, 2, 3):
            assert hook.end_epoch(epoch, {"train_loss": 1.0 / epoch}) is False
    logged = per_epoch(run)
    assert {epoch: record["train_loss"] for epoch, record in logged.items()} == {1: 1.0, 2: 0.5, 3: 1 / 3}
    assert [epoch for epoch, record in sorted(logged.items()) if "shapley.audio" in record] == [2]
    assert measure.calls[0]["modalities"] == MODALITIES  # the run's, when none are given


def test_the_hook_says_to_stop_once_the_run_is_cancelled(home):
    with offline_run(home) as run:
        hook = EpochHook(run, measure_every=0)
        assert hook.end_epoch(1, {"train_loss": 1.0}) is False
        run._stop.set()
        assert hook.end_epoch(2, {"train_loss": 0.5}) is True


def test_the_hook_measures_with_the_real_lens_and_leaves_the_model_in_training_mode(home):
    model = Encoders().train()
    with offline_run(home) as run:
        EpochHook(run, predict=model, val_loader=loader(1), n_classes=N_CLASSES,
                  model=model).end_epoch(1, {"train_loss": 1.0})
    assert {"val_acc", "shapley.audio", "shapley.visual", "train_loss"} <= set(per_epoch(run)[1])
    assert model.training


def test_a_loop_that_raises_inside_the_run_ends_it_failed_keeping_the_epochs_logged(home):
    with pytest.raises(RuntimeError):
        with offline_run(home) as run:
            hook = EpochHook(run, measure_every=0)
            hook.end_epoch(1, {"train_loss": 1.0})
            raise RuntimeError("the data went bad")
    assert Spool(run.spool.folder).end()["status"] == "failed" and sorted(per_epoch(run)) == [1]


def test_a_hook_that_measures_without_a_prediction_or_loader_is_refused_naming_them(home):
    with offline_run(home) as run:
        with pytest.raises(ValueError, match="predict, val_loader"):
            EpochHook(run, n_classes=N_CLASSES)


# -- against a real server ----------------------------------------------------------------------------------

@pytest.mark.service
def test_a_lightning_fit_appears_on_the_server_as_a_run_with_its_epochs(tmp_path):
    (tmp_path / "server-home").mkdir()
    served = BareServer(tmp_path / "server-home").start()
    try:
        callback = ArmscopeCallback(name="lit-online", url=served.url, modalities=MODALITIES, n_classes=N_CLASSES,
                                    heartbeat_seconds=0.2, flush_seconds=0.05, flush_timeout=20)
        trainer([callback], epochs=2).fit(TwoModalities(), loader(0), loader(1))
        stored = served.run(callback.run.id)
        assert (stored["status"], stored["name"], stored["external"]) == ("succeeded", "lit-online", True)
        metrics = served.metrics(callback.run.id)
        assert [m["epoch"] for m in metrics] == [1, 2]
        assert all({"train_loss", "val_loss", "shapley.audio"} <= set(m) for m in metrics)
    finally:
        served.stop()
