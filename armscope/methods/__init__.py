"""Training methods, each registered by name in its own module."""

from armscope.methods import arm, baseline, ogm, unimodal  # noqa: F401  (registration)
from armscope.methods.base import METHODS, EpochSummary, LensSettings, Method

__all__ = ["METHODS", "EpochSummary", "LensSettings", "Method", "build_method"]


def build_method(name: str, options: dict, modalities: list[str], n_classes: int, feature_dim: int) -> Method:
    entry = METHODS.get(name)
    parsed = METHODS.parse_options(name, options, "method_options")
    return entry.factory(parsed, modalities, n_classes, feature_dim)
