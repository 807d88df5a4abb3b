"""``baseline``: plain joint training, the reference point every balancing method is compared with."""

from pydantic import BaseModel, ConfigDict

from armscope.specs import MethodSpec


class BaselineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


SPECS = [
    MethodSpec(
        "baseline",
        "armscope.methods.base:Method",
        BaselineOptions,
        "Joint training with concat fusion and cross-entropy on the fused logits.",
        compare=True,
    )
]
