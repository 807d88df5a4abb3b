"""ARM: Asymmetric Reinforcing against Multi-modal Representation Bias (AAAI 2025).

Every step scores each modality's contribution with the ARM terms and
re-weights the features entering the reinforced fusion: the modality with
the larger score is scaled down and the others up (ARM.md sections 1 and 3).
The probe P stays untrained in both estimator modes. Evaluation uses the
exponential moving average of the training weights, never the labels.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor
from torch.nn import functional as F

from armscope.arm_terms import GUARD_REASONS, ARMTerms, arm_terms
from armscope.methods.base import METHODS, EpochSummary, LensSettings, Method
from armscope.models.heads import ARMHead, FusionHead, Lens, MultimodalModel

MAX_GUARD_EVENTS_PER_EPOCH = 10


def compiles_on(choice: str, device: torch.device) -> bool:
    """Whether ``compile: auto|on|off`` compiles the step's ARM terms on this device.

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


class ARMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    estimator: Literal["plugin", "reference"] = Field(
        "plugin",
        description="plugin: true plug-in conditional MI; reference: the published numerics, bit for bit.",
    )
    nmi_bins: int = Field(30, ge=2, le=1024, description="Bins per axis for NMI.")
    ncmi_bins: int = Field(2, ge=2, le=64, description="Bins per axis for NCMI.")
    w_min: float = Field(0.1, gt=0, description="Smallest allowed weight (guard).")
    w_max: float = Field(10.0, gt=0, description="Largest allowed weight (guard).")
    ema_decay: float = Field(
        0.99, ge=0, lt=1, description="Decay of the moving average of weights used at evaluation."
    )
    compile: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Run the per-step scores and weights as one torch.compile graph (fused kernels, "
        "same scores). auto: on CUDA with Triton on a Volta or newer card, eager if compiling fails; "
        "on: anywhere (the CPU needs a C++ compiler), failing the run if compiling fails; off: eager.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "ARMOptions":
        if self.w_min >= self.w_max:
            raise ValueError("w_min must be smaller than w_max")
        return self


@METHODS.register(
    "arm",
    options=ARMOptions,
    summary="Asymmetric reinforcing: re-weight modalities every step by NMI/NCMI contribution scores.",
)
class ARM(Method):
    options: ARMOptions
    # Why compiling the terms failed, once it has: the run goes on eagerly (compile: auto).
    compile_failure: str | None = None

    @property
    def lens_settings(self) -> LensSettings:
        o = self.options
        return LensSettings(o.estimator, o.nmi_bins, o.ncmi_bins, o.w_min, o.w_max)

    def build_head(self) -> FusionHead:
        return ARMHead(self.modalities, self.feature_dim, self.n_classes)

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.first_step = first_step
        self.guards = torch.zeros(steps, dtype=torch.int32, device=device)
        self.weight_sum = torch.zeros(len(self.modalities), device=device, dtype=torch.float64)
        self.steps = 0
        self.compiled = self.compile_failure is None and compiles_on(self.options.compile, device)
        self.fell_back_at: int | None = None

    def loss(self, model: MultimodalModel, feats: dict[str, Tensor], labels: Tensor, step: int) -> Tensor:
        head = model.head
        assert isinstance(head, ARMHead)
        detached = {m: h.detach() for m, h in feats.items()}
        with torch.no_grad():
            terms = self._terms(detached, head.lens(detached), labels, step)
            weight = terms.weight.to(feats[self.modalities[0]].dtype)
            decay = self.options.ema_decay
            head.eval_weights.mul_(decay).add_(weight.to(head.eval_weights.dtype), alpha=1 - decay)
        self.guards[self.steps] = terms.guard
        self.weight_sum += terms.weight
        self.steps += 1
        return F.cross_entropy(head.fuse(feats, weight), labels)

    def _terms(self, feats: dict[str, Tensor], lens: Lens, labels: Tensor, step: int) -> ARMTerms:
        """The step's terms, compiled where asked; an automatic choice that fails to compile runs eagerly."""
        if self.compiled:
            try:
                return arm_terms(feats, lens, labels, compiled=True, **self._estimator_args())
            except Exception as exc:
                lines = str(exc).strip().splitlines()
                reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
                if self.options.compile == "on":
                    raise RuntimeError(
                        f"ARM could not compile its per-step terms ({reason}); set method_options.compile to "
                        "'off' (or 'auto')"
                    ) from exc
                self.compiled, self.compile_failure, self.fell_back_at = False, reason, step
        return arm_terms(feats, lens, labels, compiled=False, **self._estimator_args())

    def _estimator_args(self) -> dict[str, object]:
        s = self.lens_settings
        return dict(
            estimator=s.estimator, nmi_bins=s.nmi_bins, ncmi_bins=s.ncmi_bins, w_min=s.w_min, w_max=s.w_max
        )

    def end_epoch(self) -> EpochSummary:
        count = max(self.steps, 1)
        metrics = {
            f"arm_train_weight.{m}": self.weight_sum[i] / count for i, m in enumerate(self.modalities)
        }
        guards = self.guards[: self.steps].tolist()
        fallback = []
        if self.fell_back_at is not None:
            fallback.append(
                {
                    "step": self.fell_back_at,
                    "kind": "compile_fallback",
                    "level": "warning",
                    "message": f"ARM's compiled per-step terms failed to build ({self.compile_failure}); they run "
                    "eagerly from here (the same numbers, slower on a GPU)",
                    "data": {},
                }
            )
        flagged = [(i, g) for i, g in enumerate(guards) if g]
        metrics["arm_guard_steps"] = torch.tensor(float(len(flagged)))
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
        return EpochSummary(metrics=metrics, events=fallback + events)
