"""``arm``: ARM, Asymmetric Reinforcing against Multi-modal Representation Bias (AAAI 2025): options and what it logs.

The training code is ``armscope.methods.arm``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from armscope.metrics import LENS, Metric
from armscope.models.sizes import ARM_HEAD
from armscope.specs import Control, MethodSpec


class ARMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    estimator: Literal["plugin", "debiased", "reference"] = Field(
        "debiased",
        description="debiased: the plug-in MI less its finite-sample bias, so scores do not grow as batch x "
        "feature size shrinks; plugin: true plug-in conditional MI, mostly bias at small batches; reference: "
        "the published numerics, bit for bit.",
    )
    reweight: bool = Field(
        True,
        description="false: ARM's head and loss with every weight pinned to 1 (scores still measured and "
        "logged), the control that tells the re-weighting's effect from the head's.",
    )
    weighting: Literal["step", "running"] = Field(
        "step",
        description="step: each step's weights from that step's scores (the published rule); running: from the "
        "moving average of the per-step scores (decay score_decay, bias-corrected), so the weights no longer "
        "swing with each batch's noise nor depend on the batch size.",
    )
    score_decay: float = Field(
        0.9, ge=0, lt=1, description="Decay of the moving average of the scores that running weighting weighs with."
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
    cuda_graph: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Replay the per-step work (compiled or not) from a CUDA graph: one host call instead of "
        "dozens, which pays where the host is slower to queue a step than the GPU is to run it. auto: on "
        "CUDA, without it if capturing fails; on: CUDA only, failing the run if capturing fails; off.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "ARMOptions":
        if self.w_min >= self.w_max:
            raise ValueError("w_min must be smaller than w_max")
        return self


METRICS = (
    Metric(
        "arm_train_weight.{m}", "ARM training weight per modality", LENS, basis="applied", sample="training",
        short="w (training)", over="arm_weight", elements="arm_step_elements",
        description="The epoch's mean of the weight w_m each step scaled the modality's features by in the fusion "
        "(1 with reweight false).",
    ),
    Metric(
        "arm_train_weight_std.{m}", "ARM training weight, spread over steps", None, basis="applied",
        sample="training", short="w sd (training)",
        description="The standard deviation over the epoch's steps of the weight each step applied.",
    ),
    Metric(
        "arm_train_score.{m}", "ARM training score Φ per modality", LENS, basis="applied", sample="training",
        short="Φ (training)", over="arm_score", elements="arm_step_elements",
        description="The epoch's mean of the per-step contribution score Φ_m, over the steps whose scores were "
        "finite; each step's score is estimated on its batch's B x d elements. The weights were computed from "
        "these (weighting step) or from their moving average (weighting running).",
    ),
    Metric(
        "arm_train_score_std.{m}", "ARM training score, spread over steps", None, basis="applied",
        sample="training", short="Φ sd (training)",
        description="The standard deviation over the epoch's steps (with finite scores) of the per-step score.",
    ),
    Metric(
        "arm_step_elements", "ARM elements per step estimate", None, basis="applied", sample="training",
        unit="elements", short="step n",
        description="How many element pairs each step's NMI and NCMI were estimated on, the epoch's mean: the "
        "batch size times the feature width.",
    ),
    Metric(
        "arm_negative_steps", "ARM steps with every score negative", "ARM guards", basis="applied",
        sample="training", unit="steps", short="neg",
        description="Steps whose weights came from scores that were all negative (each step's own, or with "
        "weighting running their moving average): the ratio rule then scales the stronger modality up, the "
        "published behaviour. An event says so when most steps of an epoch were.",
    ),
    Metric(
        "arm_guard_steps", "ARM guard steps", "ARM guards", basis="applied", sample="training", better="lower",
        unit="steps", short="guards",
        description="Steps of the epoch whose weights a guard reset or clamped (non-finite or mixed-sign scores, "
        "weights outside [w_min, w_max]).",
    ),
)

SPECS = [
    MethodSpec(
        "arm",
        "armscope.methods.arm:ARM",
        ARMOptions,
        "Asymmetric reinforcing: re-weight modalities every step by NMI/NCMI contribution scores.",
        metrics=METRICS,
        head=ARM_HEAD,
        compare=True,
        controls=(
            Control(
                "no-reweight", {"reweight": False},
                "ARM's head and loss with every weight pinned to 1: what the re-weighting adds over them.",
            ),
        ),
    )
]
