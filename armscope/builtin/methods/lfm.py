"""``lfm``: LFM, learning the modality gap dynamically (Yang, Wan, Jiang, Xu, NeurIPS 2024): options and what it logs.

The training code is ``armscope.methods.lfm``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from armscope.metrics import Metric
from armscope.models.sizes import UNIMODAL_HEADS
from armscope.specs import MethodSpec

WEIGHTS_CHART = "LFM weights"
UPDATE_CHART = "LFM alpha update"
OBJECTIVE_CHART = "LFM objective"
# The authors clip alpha_align (and so alpha_cls) to this range after every update.
ALPHA_LOW, ALPHA_HIGH = 0.05, 0.95


class LFMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule: Literal["learned", "fitted"] = Field(
        "learned",
        description="learned: before each epoch's steps, alpha_align moves against s, a Hessian-vector product "
        "of the loss on a small held-out batch of training samples (the authors' default). fitted: alpha_cls "
        "follows the authors' degree-5 polynomial in the epoch, fitted to learned trajectories of 200 CREMA-D "
        "epochs (0.20 at the start, 0.35 at epoch 31, 0.54 at epoch 101); no samples are held out.",
    )
    alpha_cls_init: float = Field(
        0.05,
        ge=ALPHA_LOW,
        le=ALPHA_HIGH,
        description="Starting weight of the classification loss under the learned schedule; the alignment loss "
        "gets 1 minus it. The authors start at 0.05 (alignment 0.95); BalanceBenchmark reverses this to 0.95. "
        "As eta_alpha * s is tiny, the weights stay near their start, so this choice decides most of the run.",
    )
    eta_alpha: float = Field(
        1e-4,
        gt=0,
        description="Step size of the alpha update: alpha_align <- clip(alpha_align - eta_alpha * s, 0.05, 0.95). "
        "The authors' 1e-4 moves alpha by about 1e-4 x |s| per epoch; raise it for alphas that move visibly.",
    )
    eta_halving_every: int = Field(
        20,
        ge=1,
        description="eta_alpha is halved before the updates of epochs 21, 41, ... for 20 (the authors' every "
        "20 epochs, counted from 0 there).",
    )
    holdout_size: int = Field(
        8,
        ge=1,
        description="Training samples drawn once (from the run's seed) and never trained on, whose one batch "
        "gives s each epoch. The authors hold out 16 and use the first 8; the 8 unused ones are not held out "
        "here. At most half the training split.",
    )
    divergence: Literal["reversed", "js"] = Field(
        "reversed",
        description="The alignment term between two modalities' predictions p and q, with m = (p + q) / 2. "
        "reversed: 1/2 [KL(m||p) + KL(m||q)], what the authors' code and BalanceBenchmark compute; js: the "
        "true Jensen-Shannon divergence 1/2 [KL(p||m) + KL(q||m)].",
    )


METRICS = (
    Metric(
        "lfm_alpha_cls", "LFM classification weight alpha_cls", WEIGHTS_CHART, basis="applied", sample="training",
        unit="fraction", short="a_cls",
        description="The weight alpha_cls of the fused cross-entropy in every step of the epoch (set before "
        "the epoch's steps, by the learned update or the fitted schedule).",
    ),
    Metric(
        "lfm_alpha_align", "LFM alignment weight alpha_align", WEIGHTS_CHART, basis="applied", sample="training",
        unit="fraction", short="a_align",
        description="The weight alpha_align = 1 - alpha_cls of the alignment loss in every step of the epoch.",
    ),
    Metric(
        "lfm_s", "LFM alpha gradient s", UPDATE_CHART, basis="applied", sample="training", short="s",
        description="The mean over the first encoder's first parameter tensor of H g_cls, the Hessian of the "
        "weighted loss times the classification gradient, on the held-out training batch before the epoch's "
        "steps; alpha_align moved by -eta_alpha * s (before clipping). 0 under the fitted schedule.",
    ),
    Metric(
        "lfm_eta", "LFM alpha step size eta_alpha", UPDATE_CHART, basis="applied", sample="training",
        short="eta",
        description="The step size eta_alpha of the epoch's alpha update, after any halving. 0 under the "
        "fitted schedule, which makes no update.",
    ),
    Metric(
        "lfm_loss_cls", "LFM classification loss", OBJECTIVE_CHART, basis="applied", sample="training",
        better="lower", short="L_cls",
        description="The epoch's mean over its steps of L_cls, the cross-entropy of the fused logits (the mean "
        "of the modalities' own classifiers' logits).",
    ),
    Metric(
        "lfm_loss_align", "LFM alignment loss", OBJECTIVE_CHART, basis="applied", sample="training",
        short="L_align",
        description="The epoch's mean over its steps of L_align, the divergence between two modalities' "
        "predictions, averaged over every modality pair.",
    ),
    Metric(
        "lfm_acc.{m}", "LFM unimodal training accuracy per modality", OBJECTIVE_CHART, basis="applied",
        sample="training", unit="fraction", better="higher", short="acc_own",
        description="The fraction of the epoch's training samples that the modality's own classifier "
        "predicted right, during the steps (before each step's update).",
    ),
)

SPECS = [
    MethodSpec(
        "lfm",
        "armscope.methods.lfm:LFM",
        LFMOptions,
        "Learning the modality gap: fused cross-entropy plus a divergence between the modalities' predictions, "
        "weighted by alphas updated every epoch.",
        metrics=METRICS,
        head=UNIMODAL_HEADS,
    )
]
