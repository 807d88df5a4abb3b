"""``mmpareto``: MMPareto, Pareto integration of multimodal and unimodal gradients (Wei & Hu, ICML 2024).

Its options and what it logs; the training code is ``armscope.methods.mmpareto``.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from armscope.metrics import Metric
from armscope.models.sizes import UNIMODAL_HEADS
from armscope.specs import MethodSpec, ModulationWindow

CHART = "MMPareto gradients"


class MMParetoOptions(ModulationWindow):
    model_config = ConfigDict(extra="forbid")

    gamma_s: float = Field(
        1.5,
        gt=0,
        description="Factor every encoder's integrated gradient is multiplied by, on top of the rescaling to the "
        "summed gradient's norm: the authors' code hard-codes 1.5 (BalanceMM's alpha), a larger step for the "
        "encoders than plain joint training takes. 1 keeps only the norm rescaling.",
    )
    modulation_start: int = Field(
        1, ge=1, description="First epoch (1-based, inclusive) whose steps integrate the gradients the Pareto way."
    )
    modulation_end: int | None = Field(
        None,
        ge=1,
        description="Last epoch (inclusive) of the Pareto integration; empty means the last epoch. Outside the "
        "window the encoders get the plain gradient of L_mm + sum of L_m (conflicts are still measured).",
    )



METRICS = (
    Metric(
        "mmpareto_conflict.{m}", "MMPareto conflicting steps per encoder", CHART, basis="applied",
        sample="training", unit="fraction", short="conflict",
        description="The fraction of the epoch's steps whose multimodal and unimodal gradients of the encoder "
        "pointed apart (cosine < 0), every step counted, inside the modulation window or not.",
    ),
    Metric(
        "mmpareto_cos.{m}", "MMPareto gradient cosine per encoder", CHART, basis="applied", sample="training",
        short="cos",
        description="The epoch's mean over its steps of the cosine between the encoder's gradient of the "
        "multimodal loss and that of its own unimodal loss, over all its parameters flattened.",
    ),
    Metric(
        "mmpareto_w_mm.{m}", "MMPareto multimodal weight per encoder", CHART, basis="applied", sample="training",
        short="w_mm",
        description="The epoch's mean over its steps of w1, the weight the rule gives the encoder's multimodal "
        "gradient (0.5 when the gradients agree, the min-norm weight in [0.001, 0.999] when they conflict); "
        "outside the modulation window it is computed but the plain sum is applied.",
    ),
    Metric(
        "mmpareto_rho.{m}", "MMPareto norm ratio per encoder", CHART, basis="applied", sample="training",
        short="rho",
        description="The epoch's mean over its steps and the encoder's parameter tensors of rho, the summed "
        "gradient's norm over the integrated gradient's (1 where the gradients agree); the step scales a tensor "
        "by max(rho, 1) * gamma_s inside the modulation window.",
    ),
)

SPECS = [
    MethodSpec(
        "mmpareto",
        "armscope.methods.mmpareto:MMPareto",
        MMParetoOptions,
        "Pareto integration: each encoder steps along a direction that lowers both the multimodal and its unimodal loss.",
        metrics=METRICS,
        head=UNIMODAL_HEADS,
    )
]
