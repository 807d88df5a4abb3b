"""``reconboost``: ReconBoost, alternating boosting with reconcilement (Hua, Xu, Bao, Yang, Huang, ICML 2024).

Each modality's learner is the shared head on that modality's features; the
prediction is beta times their sum. After a warm start, stages take the
modalities in turn: one learner is boosted against the others' ensemble while
the rest stay fixed, then every learner and beta are rectified together. Its
options, its head's size and what it logs; the training code is
``armscope.methods.reconboost``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from armscope.metrics import Metric
from armscope.models.sizes import HeadSize, ModuleSize, linear_size
from armscope.specs import MethodSpec

CHART = "ReconBoost stages"


class ReconBoostOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    w1: float = Field(
        5.0,
        gt=0,
        le=100,
        description="weight1: the boosting weight of a sample the other modalities give no chance, w1 - w2 * q_y "
        "with q_y = 0 (the authors' 5 on CREMA-D, 4 on AVE and ModelNet40, 1 on MOSI, MOSEI and SIMS). Larger "
        "makes the boosted learner's loss larger overall; w2 / w1 sets how much it focuses on the others' mistakes.",
    )
    w2: float = Field(
        1.0,
        ge=0,
        le=100,
        description="weight2: how much the others' true-class probability q_y lowers a sample's boosting weight "
        "(the authors' 1; 0.25 on the sentiment data sets). 0 turns boosting into plain cross-entropy on the "
        "boosted modality; at w2 = w1 a sample the others already get fully right gets no weight.",
    )
    alpha: float = Field(
        0.5,
        ge=0,
        le=100,
        description="Weight of the reconcilement term, the mean squared difference between the boosted learner's "
        "class probabilities and those of the previous stage's learner (the authors' 0.5). Larger keeps the new "
        "learner closer to what the last one predicted; 0 leaves it out.",
    )
    boost_epochs: int = Field(
        1,
        ge=1,
        le=100,
        description="Epochs a stage boosts its modality, updating only that encoder and the shared head (the "
        "authors' 4). 1 lets a short run visit every modality several times; raise it for long runs.",
    )
    rectify_epochs: int = Field(
        1,
        ge=0,
        le=100,
        description="Epochs of global rectification after each boosting stage: cross-entropy of the ensemble, "
        "updating every encoder, the head and beta (the authors' 4). 0 alternates boosting stages only.",
    )
    warmup_epochs: int = Field(
        1,
        ge=0,
        le=100,
        description="Epochs at the start that train every learner on its own cross-entropy, all encoders at once, "
        "standing in for the pretrained unimodal learners every published run starts from (--use_pretrain). "
        "0 starts boosting the first modality at once, against the others' untrained learners.",
    )
    beta_init: float = Field(
        1.0,
        gt=0,
        le=100,
        description="Starting value of beta, the learnable scale of the ensemble (the authors' 1.0). BalanceMM "
        "starts it at 0.01, which makes the early ensemble nearly uniform, q_y about 1/C, and so every sample's "
        "boosting weight almost the same.",
    )

    @model_validator(mode="after")
    def _weights_stay_non_negative(self) -> "ReconBoostOptions":
        if self.w2 > self.w1:
            raise ValueError(
                "w2 must not exceed w1: w1 - w2 * q_y would turn negative and push learners away from the label"
            )
        return self


def reconboost_head_size(n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize:
    """``ReconBoostHead``: one learner MLP shared by every modality (feature_dim -> feature_dim // 2 -> classes) and beta.

    The same size whatever the number of modalities: the learners differ only by their encoders.
    """
    hidden = learner_hidden(feature_dim)
    return linear_size(feature_dim, hidden) + linear_size(hidden, n_classes) + ModuleSize(parameters=1)


def learner_hidden(feature_dim: int) -> int:
    """The shared learner's hidden width: the authors' 512 -> 256, half the features, scaled to feature_dim."""
    return max(1, feature_dim // 2)


RECONBOOST_HEAD = HeadSize("reconboost", reconboost_head_size)

METRICS = (
    Metric(
        "reconboost_boosted.{m}", "ReconBoost modality boosted", CHART, basis="applied", sample="training",
        short="rb_boost",
        description="1 in an epoch of a boosting stage whose learner is this modality's (only its encoder and the "
        "shared head were updated), else 0.",
    ),
    Metric(
        "reconboost_rectifying", "ReconBoost rectification epoch", CHART, basis="applied", sample="training",
        short="rb_rect",
        description="1 in a global-rectification epoch (cross-entropy of beta times the sum of the learners, every "
        "encoder, the head and beta updated), else 0.",
    ),
    Metric(
        "reconboost_warmup", "ReconBoost warm-up epoch", CHART, basis="applied", sample="training", short="rb_warm",
        description="1 in a warm-up epoch (every learner trained on its own cross-entropy), else 0.",
    ),
    Metric(
        "reconboost_boost_loss", "ReconBoost boosting loss", CHART, basis="applied", sample="training",
        short="rb_loss",
        description="The mean over the epoch's training samples of (1/C) * (w1 - w2 * q_y) * CE(f_m), the boosted "
        "learner's weighted cross-entropy as each step computed it before its update; 0 outside boosting epochs.",
    ),
    Metric(
        "reconboost_reconcile", "ReconBoost reconcilement term", CHART, basis="applied", sample="training",
        short="rb_rec",
        description="The mean over the epoch's training samples of the squared difference, averaged over classes, "
        "between the boosted learner's class probabilities and the previous stage's learner's (before alpha); 0 "
        "outside boosting epochs and in the first stage, which has no previous learner.",
    ),
    Metric(
        "reconboost_q_true", "ReconBoost others' true-class probability", CHART, basis="applied", sample="training",
        unit="fraction", short="rb_q",
        description="The mean over the epoch's training samples of q_y, the true-class probability of beta times "
        "the sum of the other modalities' learners, which sets each sample's boosting weight; 0 outside boosting "
        "epochs.",
    ),
    Metric(
        "reconboost_weight", "ReconBoost boosting weight", CHART, basis="applied", sample="training",
        short="rb_w",
        description="The mean over the epoch's training samples of w1 - w2 * q_y, the weight on each sample's "
        "cross-entropy (before the 1/C); 0 outside boosting epochs.",
    ),
    Metric(
        "reconboost_beta", "ReconBoost ensemble scale beta", CHART, basis="applied", sample="training",
        short="rb_beta",
        description="beta, the learnable factor on the sum of the learners in the prediction, at the end of the "
        "epoch's steps (only rectification epochs change it).",
    ),
    Metric(
        "reconboost_acc.{m}", "ReconBoost learner accuracy per modality", CHART, basis="applied", sample="training",
        unit="fraction", short="rb_acc",
        description="The fraction of the epoch's training samples whose argmax of this modality's learner alone, "
        "the shared head on its features, is the true class, as each step's forward pass computed it before that "
        "step's update (in train mode).",
    ),
)

SPECS = [
    MethodSpec(
        "reconboost",
        "armscope.methods.reconboost:ReconBoost",
        ReconBoostOptions,
        "Alternating boosting: one modality's learner at a time corrects the others' ensemble, then all are rectified.",
        metrics=METRICS,
        head=RECONBOOST_HEAD,
    )
]
