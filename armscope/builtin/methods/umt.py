"""``umt``: UMT, uni-modal teachers distilled into the multimodal model (Du et al., ICML 2023): options, metrics.

The training code is ``armscope.methods.umt``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictInt

from armscope.metrics import Metric
from armscope.specs import MethodSpec, ModulationWindow

CHART = "UMT distillation"
TRAIN = "train"
TeacherRun = Annotated[StrictInt, Field(ge=1)]
TeacherSource = Literal["train"] | TeacherRun


class UMTOptions(ModulationWindow):
    model_config = ConfigDict(extra="forbid")

    teachers: Literal["train"] | dict[str, TeacherSource] = Field(
        TRAIN,
        description='Where each modality\'s frozen teacher encoder comes from. "train" (the default): every '
        "modality's teacher is trained in this run before epoch 1's steps, as a copy of its encoder plus a linear "
        'classifier with unimodal cross-entropy. A mapping such as {"audio": 12, "visual": "train"} chooses per '
        "modality: a number is the id of a finished `unimodal` run on that modality (same data set, encoder and "
        "feature_dim) whose encoder is loaded, \"train\" trains it here. A modality left out of the mapping has "
        "no teacher and gets no distillation term.",
    )
    distill_weight: float = Field(
        10.0,
        ge=0,
        le=1000,
        description="lambda in L = CE + lambda * sum_m MSE(h_m, t_m): BalanceMM's `scaling` 10; the paper's value "
        "could not be verified. Larger pulls each encoder's features harder towards its teacher's; 0 trains "
        "as plain joint training with the distances still logged.",
    )
    teacher_epochs: int = Field(
        10,
        ge=1,
        le=1000,
        description="Epochs each in-run teacher trains for, once, before epoch 1: as long as a default run, so the "
        "teacher is what a default `unimodal` run would give (the paper and BalanceMM distil from whole unimodal "
        "runs, BalanceMM's default being 30 epochs; raise it to match a longer run). Fewer makes weaker teachers "
        "but a shorter first epoch; loaded teachers ignore it.",
    )
    teacher_lr: float = Field(
        0.01,
        gt=0,
        le=10,
        description="Learning rate of each in-run teacher's own SGD optimiser (momentum 0.9, weight decay 1e-4: "
        "a default `unimodal` run's settings). Set it to the lr a unimodal run of this model trains well with.",
    )
    modulation_start: int = Field(1, ge=1, description="First epoch (1-based, inclusive) that adds the distillation term.")
    modulation_end: int | None = Field(
        None,
        ge=1,
        description="Last epoch (1-based, inclusive) that adds the distillation term; empty means the whole run "
        "(BalanceMM distils through its default window, 0-80, i.e. all of its 30 epochs).",
    )


    def teacher_sources(self, modalities: list[str]) -> dict[str, TeacherSource]:
        """Each modality that has a teacher, with its source ("train" or a run id), in the data set's order."""
        if self.teachers == TRAIN:
            return {m: TRAIN for m in modalities}
        assert isinstance(self.teachers, dict)
        return {m: self.teachers[m] for m in modalities if m in self.teachers}

    def check_modalities(self, modalities: list[str]) -> tuple[tuple[str, ...], str] | None:
        if isinstance(self.teachers, dict):
            unknown = [m for m in self.teachers if m not in modalities]
            if unknown:
                return ("teachers",), (
                    f"{', '.join(map(repr, unknown))} is not a modality of this data set; "
                    f"choose from: {', '.join(modalities)}"
                )
        return None


METRICS = (
    Metric(
        "umt_mse.{m}", "UMT feature distance to the teacher", CHART, basis="applied", sample="training",
        better="lower", short="umt_mse",
        description="The epoch mean over its steps of MSE(h_m, t_m), the squared difference between the encoder's "
        "and its frozen teacher's features averaged over batch and features; each step inside the modulation "
        "window adds distill_weight times it to the loss (measured outside the window too). NaN for a modality "
        "without a teacher.",
    ),
    Metric(
        "umt_cosine.{m}", "UMT cosine similarity to the teacher", CHART, basis="applied", sample="training",
        short="umt_cos",
        description="The epoch mean over its steps of the batch mean of cosine(h_m, t_m) between each sample's "
        "encoder and teacher features: 1 when the directions agree whatever the scale the MSE also pulls on. "
        "NaN for a modality without a teacher.",
    ),
    Metric(
        "umt_teacher_acc.{m}", "UMT teacher accuracy (training split)", CHART, basis="estimate", sample="training",
        unit="fraction", better="higher", short="umt_t_acc",
        description="The accuracy on the whole training split of the modality's teacher (its encoder and linear "
        "classifier, in eval mode), measured once when the teacher was trained or loaded and logged every "
        "epoch: how good a unimodal feature the student is pulled towards. NaN for a modality without a teacher.",
    ),
    Metric(
        "umt_ce", "UMT fused cross-entropy", CHART, basis="applied", sample="training", better="lower",
        short="umt_ce",
        description="The epoch mean over its steps of L_ce, the cross-entropy of the fused logits alone (train_loss "
        "adds the distillation term to it).",
    ),
)

SPECS = [
    MethodSpec(
        "umt",
        "armscope.methods.umt:UMT",
        UMTOptions,
        "Uni-modal teachers: each encoder's features are pulled (MSE) towards a frozen unimodally trained teacher's.",
        metrics=METRICS,
    )
]
