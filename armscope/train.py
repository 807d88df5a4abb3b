"""The training loop: data, model, method, measures, checkpoints and resume.

Knows nothing of HTTP, SQL or Celery: it reports to a ``Sink`` and checks a
cancel callable between batches. Deterministic on the CPU for a seed, and a
resumed run ends with exactly the numbers of an uninterrupted one, because
the checkpoint holds every RNG state alongside model, optimiser and the
method's own state. The method shapes each epoch (see ``Method``): its pass
over the training data, the epoch's samples, every step, and the prediction
the measures judge.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from armscope import environment
from armscope.complexity import flops_per_sample, parameter_count, peak_memory_mb, start_peak_memory
from armscope.config import RunConfig
from armscope.data.base import DataError, DatasetBundle, build_dataset
from armscope.dominance import evaluate
from armscope.epoch_pass import TrainingData
from armscope.indexed import check_order, indexed_batches
from armscope.methods.base import Method, build_method
from armscope.methods.state import checked_state
from armscope.models.base import ModelOptions, build_encoder
from armscope.models.heads import MultimodalModel
from armscope.rundir import RunDir
from armscope.sinks import Sink
from armscope.step import TrainingStep

# Measures of the machine rather than of the run: two runs of one config differ in them.
TIMING_KEYS = frozenset({"epoch_seconds", "train_seconds", "samples_per_second", "elapsed_seconds", "peak_memory_mb"})
CHECKPOINT_VERSION = 1
# Fields a resumed run may change: only how long it trains and how it is labelled.
RESUMABLE_CHANGES = frozenset({"epochs", "name", "tags", "device"})


class RunCancelled(Exception):
    pass


class RunInterrupted(Exception):
    """Asked to stop to be resumed elsewhere (its worker shuts down): no end of the run, so no 'cancelled' event."""


class TrainingFailed(Exception):
    """The run cannot go on (non-finite loss); the message says why and where."""


class ResumeError(ValueError):
    """The run folder cannot be resumed with the given config."""


@dataclass
class RunResult:
    status: str
    epochs_completed: int
    out_dir: Path
    final: dict[str, Any] | None
    error: str | None = None


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device: 'cuda' was requested but torch sees no CUDA device "
            "(is this the CPU build of torch?); use 'auto' or 'cpu'"
        )
    return torch.device(requested)


def build_model(
    bundle: DatasetBundle, method: Method, model_options: ModelOptions | Mapping[str, Any]
) -> MultimodalModel:
    options = model_options if isinstance(model_options, ModelOptions) else ModelOptions.model_validate(model_options)
    unknown = sorted(set(options.encoders) - set(bundle.modalities))
    if unknown:
        raise ValueError(
            f"model_options.encoders: {', '.join(map(repr, unknown))} is not a modality of this data set "
            f"(its modalities: {', '.join(bundle.modalities)})"
        )
    encoders = {
        m: build_encoder(options.choice_for(m), bundle.input_shapes[m], options.feature_dim)
        for m in bundle.modalities
    }
    return MultimodalModel(encoders, method.build_head())


# Buffers earlier versions kept in the model that are no longer part of it.
RETIRED_BUFFERS = ("head.lens_probe",)  # the concat head's lens projection, now ``armscope.lens``'s


def _current_model_state(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's model state without retired buffers, so runs started before can resume."""
    return {key: value for key, value in state.items() if key not in RETIRED_BUFFERS}


def build_optimizer(config: RunConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def check_resumable(stored: dict[str, Any], config: RunConfig) -> None:
    requested = config.model_dump(mode="json")
    changed = sorted(k for k in requested if k not in RESUMABLE_CHANGES and requested[k] != stored.get(k))
    if changed:
        details = "; ".join(f"{k}: stored {stored.get(k)!r}, given {requested[k]!r}" for k in changed)
        raise ResumeError(f"the config differs from the run being resumed ({details})")


class Trainer:
    """One run in one folder; ``run`` trains until done, cancelled or failed."""

    def __init__(
        self,
        config: RunConfig,
        out_dir: Path | str,
        sink: Sink | None = None,
        *,
        resume: bool = False,
        should_cancel: Callable[[], bool] | None = None,
        should_interrupt: Callable[[], bool] | None = None,
        run_folder: Callable[[int], Path] | None = None,
        source: Path | str | None = None,
    ) -> None:
        self.config = config
        self.run_dir = RunDir(out_dir)
        self.sink = sink or Sink()
        self.resume = resume
        self.should_cancel = should_cancel or (lambda: False)
        self.should_interrupt = should_interrupt or (lambda: False)
        self.run_folder = run_folder
        self.source = source
        self.environment: dict[str, Any] = {}

    def run(self) -> RunResult:
        checkpoint = self._prepare_folder()
        config = self.config
        device = resolve_device(config.device)
        moved = self._record_environment(device)
        torch.manual_seed(config.seed)
        bundle = build_dataset(config.dataset, config.parsed_dataset_options, config.seed)
        model_options = config.parsed_model_options
        method = build_method(
            config.method, config.parsed_method_options, bundle.modalities, bundle.n_classes, model_options.feature_dim
        )
        model = build_model(bundle, method, model_options).to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(config, trainable)
        shuffle = torch.Generator().manual_seed(config.seed)
        state = {"epoch": 0, "step": 0, "dominant": None, "elapsed": 0.0, "samples_seen": 0}
        if checkpoint is not None:
            model.load_state_dict(_current_model_state(checkpoint["model"]))
            optimizer.load_state_dict(checkpoint["optimizer"])
            method.load_state_dict(checkpoint.get("method", {}))
            shuffle.set_state(checkpoint["shuffle_rng"])
            torch.set_rng_state(checkpoint["torch_rng"])
            if device.type == "cuda" and checkpoint.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(checkpoint["cuda_rng"], device)
            state = checkpoint["state"]
            # Checkpoints written before methods chose their samples: every epoch saw the whole split.
            state.setdefault("samples_seen", state["epoch"] * len(bundle.train))
        loop = _Loop(self, bundle, method, model, optimizer, shuffle, device, state)
        self.sink.start(
            config.model_dump(mode="json"),
            {
                "device": str(device),
                "modalities": bundle.modalities,
                "n_classes": bundle.n_classes,
                "train_size": len(bundle.train),
                "val_size": len(bundle.val),
                "resumed_from_epoch": state["epoch"] if checkpoint is not None else None,
                "out_dir": str(self.run_dir.path),
            },
        )
        if checkpoint is not None:
            loop.emit_event("resumed", "info", f"resumed after epoch {state['epoch']}")
            if moved:
                loop.emit_event("environment_changed", "warning",
                                "resumed on another machine or software: " + "; ".join(moved),
                                data={"changes": moved})
        else:
            for message in bundle.info.get("warnings", []):
                loop.emit_event("warning", "warning", str(message))
        try:
            return loop.run()
        finally:
            for split in (bundle.train, bundle.val, bundle.test):
                close = getattr(split, "close", None)
                if close is not None:
                    close()

    def _record_environment(self, device: torch.device) -> list[str]:
        """Record where and with what this attempt trains (the folder's ``environment.json`` and the sink),
        before anything can fail; returns what changed since the attempt it resumes, if any."""
        config = self.config
        previous = environment.read(self.run_dir.path) if self.resume else None
        workers = getattr(config.parsed_dataset_options, "num_workers", 0)
        record = environment.run_environment(device, config.device, workers, self.source)
        self.environment = environment.with_peak(record, (previous or {}).get("peak_memory_mb"))
        self._write_environment()
        return environment.changes(previous, self.environment)

    def note_peak_memory(self, peak_mb: float | None, final: bool = False) -> None:
        """Keep the run's peak memory (the largest of its epochs'); written out when the run ends."""
        self.environment = environment.with_peak(self.environment, peak_mb)
        if final:
            self._write_environment()

    def _write_environment(self) -> None:
        environment.write(self.run_dir.path, self.environment)
        self.sink.environment(dict(self.environment))

    def _prepare_folder(self) -> dict[str, Any] | None:
        run_dir = self.run_dir
        if not self.resume:
            if run_dir.holds_run():
                raise ResumeError(
                    f"{run_dir.path} already holds a run; pass --resume to continue it or choose another --out"
                )
            run_dir.create(self.config.model_dump(mode="json"))
            return None
        if not run_dir.holds_run():
            raise ResumeError(f"{run_dir.path} holds no run to resume (no config.json)")
        check_resumable(run_dir.read_config(), self.config)
        run_dir.create(self.config.model_dump(mode="json"))
        checkpoint = run_dir.load_checkpoint()
        if checkpoint is not None and checkpoint.get("version") != CHECKPOINT_VERSION:
            raise ResumeError(f"{run_dir.checkpoint_path} was written by another armscope version")
        run_dir.keep_through_epoch(checkpoint["state"]["epoch"] if checkpoint else 0)
        return checkpoint


class _Loop:
    def __init__(
        self,
        trainer: Trainer,
        bundle: DatasetBundle,
        method: Method,
        model: MultimodalModel,
        optimizer: torch.optim.Optimizer,
        shuffle: torch.Generator,
        device: torch.device,
        state: dict[str, Any],
    ) -> None:
        self.trainer, self.config, self.sink = trainer, trainer.config, trainer.sink
        self.run_dir = trainer.run_dir
        self.bundle, self.method, self.model = bundle, method, model
        self.optimizer, self.shuffle, self.device = optimizer, shuffle, device
        self.state = state
        # On the CPU reading a value back costs nothing; on a GPU it stalls the
        # pipeline, so the loss is checked and reported every few batches.
        self.sync_every = 1 if device.type == "cpu" else 25
        self.step = TrainingStep(
            model, method, optimizer, device, self.config.precision, self.config.channels_last
        )

    def run(self) -> RunResult:
        final = None
        out_of_memory = None
        try:
            self.cost = self._model_cost()
            for epoch in range(self.state["epoch"] + 1, self.config.epochs + 1):
                final = self._epoch(epoch)
        except RunCancelled:
            self.emit_event("cancelled", "info", "cancelled on request")
            return self._finish("cancelled", final, None)
        except RunInterrupted:
            return self._finish("interrupted", final, None)
        except torch.cuda.OutOfMemoryError as exc:
            out_of_memory = self._out_of_memory(exc)
        except (TrainingFailed, DataError) as exc:
            self.emit_event("failed", "error", str(exc))
            return self._finish("failed", final, str(exc))
        except BaseException as exc:
            self.sink.finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        if out_of_memory is None:
            return self._finish("succeeded", final, None)
        # The traceback, and the activations its frames held, are gone by now: hand the memory back
        # to the card for the worker's next run (and anything else on the GPU).
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.emit_event("failed", "error", out_of_memory)
        return self._finish("failed", final, out_of_memory)

    def _out_of_memory(self, exc: torch.cuda.OutOfMemoryError) -> str:
        """What ran out, where, and the settings that decide how much a step needs."""
        config, lines = self.config, str(exc).strip().splitlines()
        remedy = "lower batch_size (or the data set's image_size or frames)"
        if config.precision == "fp32":
            remedy += ", or use precision bf16"
        return (
            f"out of GPU memory in epoch {self.state['epoch'] + 1} (batch_size {config.batch_size}, precision "
            f"{config.precision}); {remedy}. torch: {lines[0] if lines else 'out of memory'}"
        )

    def _finish(self, status: str, final: dict[str, Any] | None, error: str | None) -> RunResult:
        self.trainer.note_peak_memory(None, final=True)
        self.sink.finish(status, error)
        return RunResult(status, self.state["epoch"], self.run_dir.path, final, error)

    def emit_event(self, kind: str, level: str, message: str, **extra: Any) -> None:
        event = {
            "epoch": extra.pop("epoch", self.state["epoch"]),
            "step": extra.pop("step", self.state["step"]),
            "kind": kind,
            "level": level,
            "message": message,
            "data": extra.pop("data", {}),
            "time": time.time(),
        }
        self.run_dir.append_event(event)
        self.sink.event(event)

    def _model_cost(self) -> dict[str, float]:
        """The model's size and a prediction's FLOPs, once a run: they do not change while it trains."""
        method, model = self.method, self.model
        flops = flops_per_sample(
            model, self.bundle.val, lambda feats: method.predict(model, feats), self.device, self.config.precision,
            encode=lambda inputs, names: method.encode(model, inputs, names),
        )
        return {"parameters": float(parameter_count(model)), "flops_per_sample": flops}

    def _epoch(self, epoch: int) -> dict[str, Any]:
        config, method, model, device = self.config, self.method, self.model, self.device
        start_peak_memory(device)
        started = time.perf_counter()
        order, planned, steps = self._start_epoch(epoch)
        model.train()
        encoders = list(model.encoders)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        grad_sum = torch.zeros(len(encoders), dtype=torch.float64, device=device)
        nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        seen = 0
        for index, (inputs, labels, sample_index) in enumerate(self._batches(order)):
            if self.trainer.should_cancel():
                raise RunCancelled()
            if self.trainer.should_interrupt():
                raise RunInterrupted()
            loss, norms = self.step(inputs, labels, self.state["step"], sample_index)
            nonfinite |= ~torch.isfinite(loss)
            grad_sum += norms
            loss_sum += loss.double() * labels.shape[0]
            seen += labels.shape[0]
            self.state["step"] += 1
            if (index + 1) % self.sync_every == 0 or index + 1 == steps:
                self._check_finite(nonfinite, epoch, index + 1, steps)
                self.sink.progress(epoch, index + 1, steps, config.epochs, float(loss_sum) / seen)
        self._check_finite(nonfinite, epoch, steps, steps)
        train_seconds = time.perf_counter() - started
        measures = evaluate(
            model, self.bundle.val, batch_size=2 * config.batch_size, device=device,
            precision=config.precision,
            predict=lambda feats: method.predict(model, feats),
            encode=lambda inputs, names: method.encode(model, inputs, names),
        )
        summary = method.end_epoch()
        extra = {k: float(v) for k, v in summary.metrics.items()}
        grad_means = (grad_sum / max(steps, 1)).tolist()
        epoch_seconds = time.perf_counter() - started
        self.state["elapsed"] += epoch_seconds
        self.state["samples_seen"] += planned
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": self.state["step"],
            "samples_seen": self.state["samples_seen"],
            "train_loss": float(loss_sum) / max(seen, 1),
            **measures,
            **{f"grad_norm.{m}": g for m, g in zip(encoders, grad_means)},
            **extra,
            "epoch_seconds": epoch_seconds,
            "train_seconds": train_seconds,
            "samples_per_second": seen / train_seconds if train_seconds > 0 else 0.0,
            "elapsed_seconds": self.state["elapsed"],
            **self.cost,
            "peak_memory_mb": peak_memory_mb(device),
        }
        self.trainer.note_peak_memory(record["peak_memory_mb"])
        self.state["epoch"] = epoch
        for event in summary.events:
            self.emit_event(event.pop("kind"), event.pop("level"), event.pop("message"), epoch=epoch, **event)
        self._report_skipped(epoch)
        previous = self.state["dominant"]
        if previous is not None and previous != record["dominant"]:
            self.emit_event(
                "dominance_switch",
                "info",
                f"dominance switched from {previous} to {record['dominant']} at epoch {epoch}",
                data={"from": previous, "to": record["dominant"]},
            )
        self.state["dominant"] = record["dominant"]
        self.run_dir.append_metrics(record)
        self._save_checkpoint()
        self.sink.epoch(record)
        return record

    def _start_epoch(self, epoch: int) -> tuple[Tensor | None, int, int]:
        """The method's pass over the training data, its order and ``begin_epoch``: (order, samples, steps)."""
        config, method, split = self.config, self.method, self.bundle.train
        method.epoch_pass(
            TrainingData(
                split, self.model, epoch=epoch, step=self.state["step"], batch_size=config.batch_size,
                device=self.device, precision=config.precision, channels_last=config.channels_last,
                report=lambda what, done, total: self.sink.phase(epoch, what, done, total),
                run_folder=self.trainer.run_folder, run_config=config.model_dump(mode="json"),
            )
        )
        order = method.sample_order(epoch, len(split), self.shuffle)
        if order is not None:
            check_order(order, len(split), config.method)
        planned = len(split) if order is None else len(order)
        steps = math.ceil(planned / config.batch_size)
        method.begin_epoch(epoch, self.state["step"], steps, self.device)
        return order, planned, steps

    def _batches(self, order: Tensor | None) -> Iterator[tuple[dict[str, Tensor], Tensor, Tensor | None]]:
        """The epoch's training batches: shuffled by the split, or in the method's order with their indices."""
        split, size = self.bundle.train, self.config.batch_size
        if order is None:
            return ((x, y, None) for x, y in split.batches(size, shuffle=True, generator=self.shuffle))
        return indexed_batches(split, size, order, shuffle=True, generator=self.shuffle)

    def _check_finite(self, nonfinite: torch.Tensor, epoch: int, batch: int, steps: int) -> None:
        """The one place the loop reads the loss's health back from the device."""
        if bool(nonfinite):
            raise TrainingFailed(
                f"the training loss is not finite (epoch {epoch}, by batch {batch} of "
                f"{steps}, step {self.state['step'] - 1}); the run was stopped. "
                "Try a lower learning rate."
            )

    def _report_skipped(self, epoch: int) -> None:
        """One warning per split for the unreadable files its loader skipped this epoch."""
        for name, split in (("training", self.bundle.train), ("validation", self.bundle.val)):
            drain = getattr(split, "drain_skipped", None)
            skipped = drain() if drain is not None else []
            if skipped:
                self.emit_event(
                    "skipped_files", "warning",
                    f"skipped {len(skipped)} unreadable {name} file(s) in epoch {epoch}: {skipped[0]}",
                    epoch=epoch, data={"count": len(skipped), "messages": skipped[:20]},
                )

    def _save_checkpoint(self) -> None:
        self.run_dir.save_checkpoint(
            {
                "version": CHECKPOINT_VERSION,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "shuffle_rng": self.shuffle.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "state": dict(self.state),
                "method": checked_state(self.method.state_dict(), self.config.method),
            }
        )


def train(
    config: RunConfig,
    out_dir: Path | str,
    sink: Sink | None = None,
    *,
    resume: bool = False,
    should_cancel: Callable[[], bool] | None = None,
    should_interrupt: Callable[[], bool] | None = None,
    run_folder: Callable[[int], Path] | None = None,
    source: Path | str | None = None,
) -> RunResult:
    """Train ``config`` into ``out_dir`` (or continue it with ``resume``).

    ``run_folder`` maps a stored run's id to its folder, for a method that builds on earlier runs
    (UMT's teachers from ``unimodal`` runs); the worker and the CLI pass the service's. ``source`` is the
    file the config came from (``--config``): its git commit is recorded with the run's environment.
    Between batches, ``should_cancel`` true ends the run as cancelled; ``should_interrupt`` true (its worker
    shuts down) stops it as ``interrupted``, its last checkpoint kept for a resume, and says nothing in
    its events: whoever interrupted it says where it goes.
    """
    return Trainer(
        config, out_dir, sink, resume=resume, should_cancel=should_cancel, should_interrupt=should_interrupt,
        run_folder=run_folder, source=source,
    ).run()
