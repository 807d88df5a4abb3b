"""``ogm`` and ``ogm-ge``: on-the-fly gradient modulation (Peng et al., CVPR 2022), its options and what it logs.

The training code is ``armscope.methods.ogm``.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from armscope.metrics import Metric
from armscope.specs import MethodSpec, ModulationWindow

CHART = "OGM-GE modulation"


class OGMOptions(ModulationWindow):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(
        0.5, gt=0, le=10, description="Modulation strength (0.1-1.0 typical; the original requires it)."
    )
    modulation_start: int = Field(1, ge=1, description="First epoch (1-based, inclusive) to modulate.")
    modulation_end: int | None = Field(
        None, ge=1, description="Last epoch (inclusive) to modulate; empty means the last epoch."
    )



METRICS = (
    Metric(
        "ogm_coeff.{m}", "OGM coefficient per modality", CHART, basis="applied", sample="training", short="ogm_k",
        description="The epoch's mean of k_m, the factor each step scaled the encoder's gradients by (1: untouched).",
    ),
    Metric(
        "ogm_ratio.{m}", "OGM ratio per modality", CHART, basis="applied", sample="training", short="ogm_rho",
        description="The epoch's mean of rho_m, the modality's true-class score over the others' mean; above 1 it is slowed.",
    ),
)

SPECS = [
    MethodSpec(
        "ogm",
        "armscope.methods.ogm:OGM",
        OGMOptions,
        "On-the-fly gradient modulation (no noise).",
        metrics=METRICS,
    ),
    MethodSpec(
        "ogm-ge",
        "armscope.methods.ogm:OGMGE",
        OGMOptions,
        "On-the-fly gradient modulation with generalisation enhancement (Gaussian noise).",
        metrics=METRICS,
        compare=True,
    ),
]
