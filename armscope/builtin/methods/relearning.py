"""``relearning``: Diagnosing and Re-learning (Wei, Li, Feng, Hu, ECCV 2024): its options and what it logs.

The training code is ``armscope.methods.relearning``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from armscope.metrics import Metric
from armscope.specs import MethodSpec

CHART = "Re-learning diagnosis"


class RelearningOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strength: float = Field(
        3.0,
        ge=0,
        le=100,
        description="lambda in alpha_m = tanh(lambda x g_m), how hard a purity gap g_m pulls encoder m back to "
        "its initial weights (the authors' move_lambda, 3). With 3 a gap of 0.1 re-initialises 29% of the way, "
        "0.5 91%; 0 diagnoses and logs without ever re-initialising.",
    )
    reinit_every: int = Field(
        20,
        ge=1,
        description="R: diagnose and re-initialise after every R-th epoch (1-based: after epochs R, 2R, ...). "
        "The paper uses 20 of 90 epochs, BalanceMM 15 of 30; a short run needs a smaller R, or it never "
        "re-initialises.",
    )
    reinit_limit: int = Field(
        3,
        ge=0,
        description="N: at most this many diagnoses and re-initialisations per run (the paper 3, BalanceMM 2); "
        "0 turns the method into plain joint training with a held-out split.",
    )
    holdout_fraction: float = Field(
        0.1,
        gt=0,
        le=0.5,
        description="Share of the TRAINING split held out once, at random from the run's seed, as the set V "
        "whose feature purity is compared with the training part's; it is never trained on (the authors hold "
        "out 744 of 6698 CREMA-D samples, 11%). Larger gives a steadier purity of V and less training data.",
    )
    kmeans_iterations: int = Field(
        300,
        ge=1,
        le=10_000,
        description="Lloyd iterations of each k-means (sklearn's max_iter, 300). The count is fixed, with no "
        "convergence test, so the diagnosis never waits on the device; a converged clustering stays put.",
    )
    kmeans_restarts: int = Field(
        10,
        ge=1,
        le=100,
        description="k-means++ starts per clustering, the one with the least inertia kept (sklearn's n_init: "
        "10 before sklearn 1.4, which the authors' unpinned call got then, 1 since). More starts give a "
        "steadier purity at a proportional cost.",
    )
    kmeans_seed: int = Field(
        0,
        ge=0,
        description="Seed of the k-means++ starts, fixed like the authors' random_state=0, so a clustering "
        "depends on the features alone and never draws on the run's generators.",
    )


def _diagnosis(key: str, label: str, short: str, what: str, unit: str = "") -> Metric:
    return Metric(
        key, label, CHART, basis="applied", sample="training", unit=unit, short=short,
        description=f"{what}, from the run's last diagnosis (at the start of the first epoch after every "
        "reinit_every-th, at most reinit_limit times), logged every epoch until the next one; 0 before the "
        "first diagnosis (no re-initialisation yet: alpha 0 is what was applied, and a measured purity is "
        "never 0).",
    )


METRICS = (
    _diagnosis(
        "relearn_purity_train.{m}", "Re-learning purity, training part", "P_D",
        "P_D: the purity of a k-means clustering (k = classes) of the modality's min-max scaled encoder features "
        "over the trained part of the training split, the share of samples in their cluster's majority class",
        unit="fraction",
    ),
    _diagnosis(
        "relearn_purity_holdout.{m}", "Re-learning purity, held-out part", "P_V",
        "P_V: the same purity over the held-out part of the training split, never trained on",
        unit="fraction",
    ),
    _diagnosis(
        "relearn_gap.{m}", "Re-learning purity gap", "g", "g_m = |P_D - P_V|, how much better the modality's "
        "features separate the classes on data it trained on than on data it did not", unit="fraction",
    ),
    _diagnosis(
        "relearn_alpha.{m}", "Re-learning re-init strength", "alpha",
        "alpha_m = tanh(strength x g_m), the share of the way each encoder parameter was moved back to its "
        "initial value",
    ),
    Metric(
        "relearn_reinits", "Re-learning re-initialisations so far", CHART, basis="applied", short="reinits",
        description="How many diagnoses and soft re-initialisations the run has made up to this epoch; it "
        "steps up by one in the epoch whose start re-initialised.",
    ),
    Metric(
        "relearn_drift.{m}", "Re-learning distance from initial weights", CHART, basis="applied", short="drift",
        description="||theta_m - theta_init,m||, the L2 norm over every parameter of the modality's encoder of "
        "its distance from the snapshot taken before training, at the end of the epoch's steps.",
    ),
)

SPECS = [
    MethodSpec(
        "relearning",
        "armscope.methods.relearning:Relearning",
        RelearningOptions,
        "Diagnosing and re-learning: softly re-initialise each encoder by its train/held-out feature purity gap.",
        metrics=METRICS,
    )
]
