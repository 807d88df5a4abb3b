"""``agm``: AGM, Adaptive Gradient Modulation (Li et al., ICCV 2023): its options and what it logs.

The training code is ``armscope.methods.agm``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from armscope.metrics import Metric
from armscope.specs import MethodSpec, ModulationWindow

MODULATION = "AGM modulation"
RANGE = "AGM coefficient range"
RESPONSES = "AGM mono-modal responses"


class AGMOptions(ModulationWindow):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(
        1.0,
        gt=0,
        le=10,
        description="Modulation strength: c_m = exp(alpha * min(r*_m - r_m, clamp)). The authors' code default is "
        "1.0 (their AV-MNIST example uses 2.5; BalanceBenchmark uses 0.1). Larger values push the modalities' "
        "gradients further apart when one runs ahead of its usual share.",
    )
    clamp: float = Field(
        10.0,
        gt=0,
        description="Upper bound K on r*_m - r_m inside the exponent, so a modality far behind is sped up by at "
        "most exp(alpha * K). The authors use 10 in their two-modality code and 7 in their three-modality code.",
    )
    modulation_start: int = Field(1, ge=1, description="First epoch (1-based, inclusive) whose gradients are scaled.")
    modulation_end: int | None = Field(
        20,
        ge=1,
        description="Last epoch (inclusive) whose gradients are scaled; empty means the last epoch. The authors "
        "modulate epochs 1-20 (their window 0-20 over 1-based epochs); outside it training is plain "
        "joint training, while the responses and running scores are still measured and logged.",
    )
    grad_clip: float | None = Field(
        1.0,
        gt=0,
        description="When any gradient entry of the fusion head lies outside +/- this value, the whole model's "
        "gradient norm is clipped to it (the authors' safeguard, 1.0; BalanceBenchmark 5). Empty: never clipped.",
    )


    def check_modalities(self, modalities: list[str]) -> tuple[tuple[str, ...], str] | None:
        """The responses compare each modality with the others (the factor M/(M-1)): one modality has none."""
        if len(modalities) < 2:
            return (), f"agm needs at least 2 modalities; this data set has {len(modalities)}"
        return None


def _training(key: str, label: str, chart: str, short: str, description: str, **details: Any) -> Metric:
    return Metric(key, label, chart, basis="applied", sample="training", short=short, description=description, **details)


METRICS = (
    _training(
        "agm_coeff.{m}", "AGM coefficient per modality", MODULATION, "agm_c",
        "The epoch's mean over its steps of c_m, the factor each step scaled the gradient of modality m's "
        "Shapley response by (1 outside the modulation window).",
    ),
    _training(
        "agm_ratio.{m}", "AGM response ratio per modality", MODULATION, "agm_r",
        "The epoch's mean over its steps of r_m = exp(M/(M-1) * (mean_k s_k - s_m)), the batch's relative "
        "strength of modality m (above 1: stronger than the mean).",
    ),
    _training(
        "agm_target_ratio.{m}", "AGM target ratio per modality", MODULATION, "agm_r*",
        "The epoch's mean over its steps of r*_m, the same ratio from the running scores S_m before each "
        "step's update: the modality's usual strength, which r_m is pulled back to.",
    ),
    Metric(
        "agm_clipped_steps", "AGM clipped steps", MODULATION, basis="applied", sample="training", unit="steps",
        short="agm_clip",
        description="Steps of the epoch whose gradient norm was clipped because a fusion-head gradient entry "
        "exceeded grad_clip.",
    ),
    _training(
        "agm_coeff_min.{m}", "AGM coefficient, smallest of the epoch", RANGE, "agm_c min",
        "The smallest c_m any step of the epoch applied (1 outside the modulation window).",
    ),
    _training(
        "agm_coeff_max.{m}", "AGM coefficient, largest of the epoch", RANGE, "agm_c max",
        "The largest c_m any step of the epoch applied (1 outside the modulation window).",
    ),
    _training(
        "agm_score.{m}", "AGM response loss per modality", RESPONSES, "agm_s",
        "The epoch's mean over its steps of s_m, the batch's mean cross-entropy of modality m's Shapley "
        "response phi_m (true-class probabilities floored at 1e-8); lower is stronger.",
        better="lower",
    ),
    _training(
        "agm_running_score.{m}", "AGM running response loss per modality", RESPONSES, "agm_S",
        "S_m at the epoch's end: the mean of s_m over every step of the run so far, the baseline r*_m is "
        "computed from.",
    ),
    _training(
        "agm_response_acc.{m}", "AGM response accuracy per modality", RESPONSES, "agm_acc",
        "Accuracy of argmax(phi_m), modality m's Shapley response, on the epoch's training batches.",
        unit="fraction", better="higher",
    ),
)

SPECS = [
    MethodSpec(
        "agm",
        "armscope.methods.agm:AGM",
        AGMOptions,
        "Adaptive gradient modulation: scale each modality's Shapley response gradient toward its usual strength.",
        metrics=METRICS,
    )
]
