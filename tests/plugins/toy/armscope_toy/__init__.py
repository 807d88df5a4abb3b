"""A toy method as a third party would ship it: this spec, torch-free, and its training code in ``method.py``."""

from pydantic import BaseModel, ConfigDict, Field

from armscope.metrics import Metric
from armscope.specs import MethodSpec


class DampedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    damping: float = Field(0.5, gt=0, le=1, description="Factor every encoder gradient is scaled by.")


SPEC = MethodSpec(
    "toy-damped",
    "armscope_toy.method:Damped",
    DampedOptions,
    "Joint training with every encoder's gradient scaled by a fixed factor (a test plugin).",
    metrics=(
        Metric(
            "toy_grad_scale.{m}", "Toy gradient scale per modality", "Toy: gradient scale",
            basis="applied", sample="training", short="toy_scale",
            description="The factor the encoder's gradients were scaled by.",
        ),
    ),
)
