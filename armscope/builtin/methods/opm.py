"""``opm``: OPM, on-the-fly prediction modulation (Wei, Hu, Du, Wen, T-PAMI 2024): its options and what it logs.

The training code is ``armscope.methods.opm``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from armscope.metrics import Metric
from armscope.specs import MethodSpec, ModulationWindow

CHART = "OPM dropping"


class OPMOptions(ModulationWindow):
    model_config = ConfigDict(extra="forbid")

    q_base: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Base drop probability of a dominant modality's features: q_m = q_base * (1 + lam * r_m), "
        "clipped to [0, 1], for a modality whose discrepancy r_m is positive (0 for the others). The authors' "
        "code runs 0.5 (its script and argument default); BalanceBenchmark uses 0.4, from the authors' unused "
        "config file. Raise it to weaken the dominant modality's hold on the fused prediction more often.",
    )
    lam: float = Field(
        0.5,
        ge=0,
        description="lambda: how much a larger lead raises the drop probability. r_m = tanh(max(rho_m - 1, 0)) "
        "lies in [0, 1), so a dominant modality's q_m runs from q_base (a slight lead) towards "
        "q_base * (1 + lam) (a large one). 0.5 in the authors' code and in BalanceBenchmark; 0 drops every "
        "dominant modality with probability q_base whatever its lead.",
    )
    p_exe: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Probability that a step drops features at all (one draw per batch); the other steps train "
        "on every feature unchanged. 0.7 in the authors' code and in BalanceBenchmark; 1 drops on every step.",
    )
    modulation_start: int = Field(
        7,
        ge=1,
        description="First epoch (1-based, inclusive) that drops features. The authors warm up with plain joint "
        "training for their epochs 0-5, so dropping starts at epoch 7 here; 1 drops from the first step, as "
        "BalanceBenchmark does. Before it the ratios are still measured and logged.",
    )
    modulation_end: int | None = Field(
        None,
        ge=1,
        description="Last epoch (inclusive) that drops features; empty means until the last epoch, as the "
        "authors drop until training ends. After it training is plain joint training.",
    )


    def check_modalities(self, modalities: list[str]) -> tuple[tuple[str, ...], str] | None:
        """The ratio compares a modality with the others: one modality has none to be dominant over."""
        if len(modalities) < 2:
            return (), f"opm needs at least 2 modalities; this data set has {len(modalities)}"
        return None


def _training(key: str, label: str, short: str, description: str, **details: Any) -> Metric:
    return Metric(key, label, CHART, basis="applied", sample="training", short=short, description=description, **details)


METRICS = (
    _training(
        "opm_ratio.{m}", "OPM ratio per modality", "opm_rho",
        "The epoch's mean over all its steps of rho_m, the batch's summed true-class probability of modality m's "
        "slice logits over the mean of the other modalities' (the other's itself with two); above 1 the modality "
        "is dominant and its features may be dropped. Measured on every step, inside the modulation window or not.",
    ),
    _training(
        "opm_drop_prob.{m}", "OPM drop probability per modality", "opm_q",
        "The epoch's mean over all its steps of q_m, the probability with which the step would drop modality m's "
        "features of each sample, as computed whether or not the step's draw ran the dropping (0 on steps "
        "outside the modulation window).",
        unit="fraction",
    ),
    _training(
        "opm_dropped.{m}", "OPM dropped features per modality", "opm_drop",
        "The fraction of the epoch's training samples whose modality-m features were actually zeroed (on steps "
        "that ran the dropping: about p_exe * q_m inside the modulation window, 0 outside it).",
        unit="fraction",
    ),
    _training(
        "opm_drop_steps", "OPM steps that dropped", "opm_exe",
        "The fraction of the epoch's steps whose draw (probability p_exe) ran the dropping; 0 outside the "
        "modulation window.",
        unit="fraction",
    ),
    _training(
        "opm_removed", "OPM samples removed from the loss", "opm_rm",
        "The fraction of the epoch's training samples left out of the loss because every one of their modalities "
        "was dropped. With the ratio rule at most all but one modality can lead, so this stays 0 except on "
        "near-ties of the scores.",
        unit="fraction",
    ),
)

SPECS = [
    MethodSpec(
        "opm",
        "armscope.methods.opm:OPM",
        OPMOptions,
        "On-the-fly prediction modulation: drop the dominant modality's features with a probability set by its lead.",
        metrics=METRICS,
    )
]
