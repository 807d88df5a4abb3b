"""A plugin whose spec does not validate: it declares a metric every run already logs."""

from pydantic import BaseModel

from armscope.metrics import Metric
from armscope.specs import MethodSpec

SPEC = MethodSpec(
    "broken-spec",
    "armscope.methods.base:Method",
    BaseModel,
    "Declares val_acc, which the engine declares.",
    metrics=(Metric("val_acc", "Accuracy again", None, basis="estimate", sample="validation"),),
)
