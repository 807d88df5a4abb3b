"""``ogm`` and ``ogm-ge``: on-the-fly gradient modulation (Peng et al., CVPR 2022), its options and what it logs.

``form`` selects the rule: the CVPR 2022 paper's (the default) or the extended one of its T-PAMI 2024
version (Wei, Hu, Du, Wen, "On-the-fly Modulation for Balanced Multimodal Learning"). The training code
is ``armscope.methods.ogm``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from armscope.metrics import Metric
from armscope.specs import MethodSpec, ModulationWindow

CHART = "OGM-GE modulation"
Form = Literal["cvpr2022", "tpami2024"]
# Epochs of plain joint training each form starts with: the T-PAMI code trains its epochs 0-5 unmodulated
# (OPM and OGM alike) before its modulation window applies; the CVPR code has no warm-up.
FORM_WARMUP: dict[str, int] = {"cvpr2022": 0, "tpami2024": 6}


class OGMOptions(ModulationWindow):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(
        0.5,
        gt=0,
        le=10,
        description="Modulation strength (0.1-1.0 typical; the CVPR code requires it, the T-PAMI code defaults "
        "to 1.0 and its script runs 0.8).",
    )
    form: Form = Field(
        "cvpr2022",
        description="cvpr2022: rho_m = s_m over the mean of the other modalities' scores (for two, the published "
        "s_m / s_other), an exact tie slowing the first modality as the CVPR code does. tpami2024: the T-PAMI "
        "version's rule, rho_m = the mean over the others j of s_m / s_j (the same for two modalities), no "
        "modality slowed on an exact tie, and six epochs of plain joint training first (warmup_epochs). "
        "Both slow every modality with rho_m > 1 by k_m = 1 - tanh(alpha * rho_m).",
    )
    warmup_epochs: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="Epochs of plain joint training at the start, before the modulation window applies; empty "
        "means the form's own: 0 for cvpr2022, 6 for tpami2024 (the T-PAMI code's epochs 0-5). The ratios "
        "and coefficients are still measured and logged during it.",
    )
    modulation_start: int = Field(1, ge=1, description="First epoch (1-based, inclusive) to modulate.")
    modulation_end: int | None = Field(
        None, ge=1, description="Last epoch (inclusive) to modulate; empty means the last epoch."
    )

    @property
    def warmup(self) -> int:
        """The warm-up in epochs: ``warmup_epochs``, or the form's own where it is left empty."""
        return FORM_WARMUP[self.form] if self.warmup_epochs is None else self.warmup_epochs

    def modulates(self, epoch: int) -> bool:
        """Whether the 1-based ``epoch`` is past the warm-up and in the window: both gate the T-PAMI code."""
        return epoch > self.warmup and super().modulates(epoch)


METRICS = (
    Metric(
        "ogm_coeff.{m}", "OGM coefficient per modality", CHART, basis="applied", sample="training", short="ogm_k",
        description="The epoch's mean of k_m, the factor each step scaled the encoder's gradients by (1: untouched).",
    ),
    Metric(
        "ogm_ratio.{m}", "OGM ratio per modality", CHART, basis="applied", sample="training", short="ogm_rho",
        description="The epoch's mean of rho_m, the modality's true-class score against the others' (over their "
        "mean in form cvpr2022, the mean of the ratios to each in tpami2024); above 1 it is slowed.",
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
