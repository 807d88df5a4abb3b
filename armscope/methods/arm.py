"""ARM: Asymmetric Reinforcing against Multi-modal Representation Bias (AAAI 2025).

Every step scores each modality's contribution with the ARM terms and
re-weights the features entering the reinforced fusion: the modality with
the larger score is scaled down and the others up (ARM.md sections 1 and 3).
The probe P stays untrained in both estimator modes. Evaluation uses the
exponential moving average of the training weights, never the labels. Its
options and metric declarations: ``armscope.builtin.methods.arm``.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import torch
from pydantic import BaseModel
from torch import Tensor
from torch.nn import functional as F

from armscope.arm_terms import (
    FINITE,
    GUARD_REASONS,
    NEGATIVE,
    SCORE,
    SCORE_SQ,
    STEP_STATS,
    WEIGHT,
    WEIGHT_SQ,
    arm_step,
    running_scores,
)
from armscope.builtin.methods.arm import ARMOptions
from armscope.graphed import GraphedCall
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import ARMHead, MultimodalModel

MAX_GUARD_EVENTS_PER_EPOCH = 10


def compiles_on(choice: str, device: torch.device) -> bool:
    """Whether ``compile: auto|on|off`` compiles ARM's per-step work on this device.

    auto only where it pays and cannot fail for want of a toolchain: CUDA
    with Triton, which torch.compile generates its GPU kernels with, on a
    card Triton supports (compute capability 7.0, Volta, or newer).
    """
    if choice == "auto":
        return (
            device.type == "cuda"
            and importlib.util.find_spec("triton") is not None
            and torch.cuda.get_device_capability(device) >= (7, 0)
        )
    return choice == "on"


def capturing() -> bool:
    """Whether this thread is capturing a CUDA graph now."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def graphs_on(choice: str, device: torch.device) -> bool:
    """Whether ``cuda_graph: auto|on|off`` replays the step's ARM work from a CUDA graph on this device."""
    if choice == "on" and device.type != "cuda":
        raise ValueError(f"method_options.cuda_graph 'on' needs a CUDA device; this run is on {device.type}")
    return choice != "off" and device.type == "cuda"


class AccelerationFailed(RuntimeError):
    """A speed-up asked for with 'on' failed: the run stops, saying how to turn it off."""


# What each speed-up option does, for its fallback event and its failure.
ACCELERATIONS = {
    "compile": (
        "compile_fallback",
        "compiled per-step terms failed to build",
        "they run eagerly from here (the same numbers, slower on a GPU)",
    ),
    "cuda_graph": (
        "cuda_graph_fallback",
        "per-step CUDA graph could not be captured",
        "the step runs without it from here (the same numbers, slower where the host is the bottleneck)",
    ),
}


class ARM(Method):
    options: ARMOptions
    head_type = ARMHead

    def __init__(self, options: BaseModel, modalities: list[str], n_classes: int, feature_dim: int) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        # Per speed-up option, why it failed, once it has: the run goes on without it (auto), for good.
        self.failures: dict[str, str] = {}
        # Kept across epochs: a captured CUDA graph adds into this very tensor.
        self.step_stats: Tensor | None = None
        # With running weighting, the scores' moving average (``running_scores``), carried across epochs
        # and checkpoints; None weighs each step by its own scores.
        self.running: Tensor | None = None
        if self.options.weighting == "running":
            self.running = running_scores(len(modalities))
        self.graphed: GraphedCall[tuple[Tensor, Tensor]] | None = None

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.first_step = first_step
        self.guards = torch.zeros(steps, dtype=torch.int32, device=device)
        # By type: a tensor made on "cuda" says "cuda:0", and a new tensor would leave a captured graph behind.
        if self.step_stats is None or self.step_stats.device.type != device.type:
            self.step_stats = torch.zeros(STEP_STATS, len(self.modalities), device=device, dtype=torch.float64)
        else:
            self.step_stats.zero_()
        if self.running is not None and self.running.device.type != device.type:
            self.running = self.running.to(device)
        self.steps = 0
        self.elements = 0
        self.compiled = "compile" not in self.failures and compiles_on(self.options.compile, device)
        self.graphing = "cuda_graph" not in self.failures and graphs_on(self.options.cuda_graph, device)
        self.fallbacks: list[dict[str, object]] = []

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        head = model.head
        assert isinstance(head, ARMHead)
        # arm_step runs under no_grad: the features need no detaching (one host call fewer each).
        weight, guard = self._step_weights(feats, head, labels, step)
        self.guards[self.steps] = guard
        self.steps += 1
        self.elements += feats[self.modalities[0]].numel()
        return F.cross_entropy(head.fuse(feats, weight), labels)

    def _step_weights(self, feats: dict[str, Tensor], head: ARMHead, labels: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """arm_step, from a CUDA graph where asked; an automatic choice that fails goes on without it."""
        if self.graphing:
            try:
                return self._graph(head)(*[feats[m] for m in self.modalities], labels)
            except (AccelerationFailed, torch.cuda.OutOfMemoryError):
                raise
            except Exception as exc:
                self.graphing = False
                self._failed("cuda_graph", exc, step)
        return self._direct(feats, head, labels, step)

    def _graph(self, head: ARMHead) -> GraphedCall[tuple[Tensor, Tensor]]:
        if self.graphed is None:
            assert self.step_stats is not None
            names = self.modalities

            def step_weights(*tensors: Tensor) -> tuple[Tensor, Tensor]:
                feats = dict(zip(names, tensors))
                return self._direct(feats, head, tensors[-1], self.first_step + self.steps)

            state = [head.eval_weights, self.step_stats] + ([] if self.running is None else [self.running])
            self.graphed = GraphedCall(step_weights, state=state)
        return self.graphed

    def _direct(self, feats: dict[str, Tensor], head: ARMHead, labels: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """arm_step, compiled where asked; an automatic choice that fails to compile runs eagerly."""
        assert self.step_stats is not None
        if self.compiled:
            try:
                return arm_step(feats, head, labels, self.step_stats, compiled=True, **self._estimator_args())
            except torch.cuda.OutOfMemoryError:
                raise  # the run's failure, not the compiler's
            except Exception as exc:
                if capturing():  # the CUDA graph failed, not the compiler: that fallback is the graph's
                    raise
                self.compiled = False
                self._failed("compile", exc, step)
        return arm_step(feats, head, labels, self.step_stats, compiled=False, **self._estimator_args())

    def _failed(self, option: str, exc: Exception, step: int) -> None:
        """Stop the run if ``option`` was 'on'; else note the fallback, to be logged as an event once."""
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        kind, failure, instead = ACCELERATIONS[option]
        if getattr(self.options, option) == "on":
            raise AccelerationFailed(
                f"ARM's {failure} ({reason}); set method_options.{option} to 'off' (or 'auto')"
            ) from exc
        self.failures[option] = reason
        self.fallbacks.append(
            {
                "step": step,
                "kind": kind,
                "level": "warning",
                "message": f"ARM's {failure} ({reason}); {instead}",
                "data": {},
            }
        )

    def _estimator_args(self) -> dict[str, object]:
        o = self.options
        return dict(
            ema_decay=o.ema_decay,
            estimator=o.estimator,
            reweight=o.reweight,
            running=self.running,
            score_decay=o.score_decay,
            nmi_bins=o.nmi_bins,
            ncmi_bins=o.ncmi_bins,
            w_min=o.w_min,
            w_max=o.w_max,
        )

    def end_epoch(self) -> EpochSummary:
        assert self.step_stats is not None
        stats = self.step_stats.cpu()
        steps, finite = max(self.steps, 1), stats[FINITE].clamp_min(1)
        weight, score = stats[WEIGHT] / steps, stats[SCORE] / finite
        weight_sd = _spread(stats[WEIGHT_SQ] / steps, weight, stats.new_full(weight.shape, float(steps)))
        score_sd = _spread(stats[SCORE_SQ] / finite, score, stats[FINITE])
        metrics: dict[str, Tensor] = {}
        for i, m in enumerate(self.modalities):
            # Element by element: a vector divided by a number may be multiplied by its reciprocal instead.
            metrics[f"arm_train_weight.{m}"] = stats[WEIGHT, i] / steps
            metrics[f"arm_train_weight_std.{m}"] = weight_sd[i]
            metrics[f"arm_train_score.{m}"] = torch.where(stats[FINITE, i] > 0, score[i], math.nan)
            metrics[f"arm_train_score_std.{m}"] = score_sd[i]
        negative = int(stats[NEGATIVE, 0].item())
        metrics["arm_negative_steps"] = torch.tensor(float(negative))
        metrics["arm_step_elements"] = torch.tensor(self.elements / max(self.steps, 1), dtype=torch.float64)
        guards = self.guards[: self.steps].tolist()
        flagged = [(i, g) for i, g in enumerate(guards) if g]
        metrics["arm_guard_steps"] = torch.tensor(float(len(flagged)))
        negatives = []
        if self.steps and 2 * negative > self.steps:
            negatives.append(
                {
                    "step": self.first_step + self.steps - 1,
                    "kind": "negative_scores",
                    "level": "warning",
                    "message": f"every modality's ARM score{' average' if self.running is not None else ''} was "
                    f"negative in {negative} of {self.steps} steps this epoch: the ratio rule then scales the "
                    "stronger modality up (the published behaviour)",
                    "data": {"steps": negative},
                }
            )
        events = [
            {
                "step": self.first_step + i,
                "kind": "guard_clamp",
                "level": "warning",
                "message": "ARM weights clamped: "
                + "; ".join(text for bit, text in GUARD_REASONS.items() if g & bit),
                "data": {"guard": g},
            }
            for i, g in flagged[:MAX_GUARD_EVENTS_PER_EPOCH]
        ]
        if len(flagged) > MAX_GUARD_EVENTS_PER_EPOCH:
            events.append(
                {
                    "step": self.first_step + flagged[-1][0],
                    "kind": "guard_clamp",
                    "level": "warning",
                    "message": f"ARM weights clamped in {len(flagged)} of {self.steps} steps this epoch "
                    f"(first {MAX_GUARD_EVENTS_PER_EPOCH} listed)",
                    "data": {"steps": len(flagged)},
                }
            )
        return EpochSummary(metrics=metrics, events=self.fallbacks + negatives + events)

    def state_dict(self) -> dict[str, Any]:
        """With running weighting, the scores' moving average: a resumed run weighs as it would have."""
        return {} if self.running is None else {"running_scores": self.running.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.running is None:
            super().load_state_dict(state)
            return
        saved = state.get("running_scores")
        if not isinstance(saved, Tensor) or saved.shape != self.running.shape or set(state) != {"running_scores"}:
            raise ValueError(
                f"ARM with running weighting needs its running_scores ({self.running.numel()} values) and nothing "
                f"else from the checkpoint, which holds {', '.join(sorted(state)) or 'nothing'}"
            )
        self.running = saved.to(torch.float64)


def _spread(mean_square: Tensor, mean: Tensor, count: Tensor) -> Tensor:
    """Sample standard deviation from the mean of squares and the mean over ``count`` values (NaN below 2)."""
    variance = (mean_square - mean * mean).clamp_min(0) * count / (count - 1).clamp_min(1)
    return torch.where(count > 1, variance.sqrt(), math.nan)
