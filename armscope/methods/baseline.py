"""Plain joint training: the reference point every balancing method is compared with."""

from pydantic import BaseModel, ConfigDict

from armscope.methods.base import METHODS, Method


class BaselineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


METHODS.register(
    "baseline",
    options=BaselineOptions,
    summary="Joint training with concat fusion and cross-entropy on the fused logits.",
)(Method)
