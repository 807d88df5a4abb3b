"""How many numbers a module would hold, from its options alone: the model side of a run budget.

Torch-free, so that a config is sized (``armscope.budget``) where it is
validated, in the API process, before anything is allocated. The fusion
heads' modules say the same numbers (``FusionHead.size``) and the budget
tests check them against built models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ModuleSize:
    """The numbers a module holds: its parameters and its buffers (running statistics, moving averages)."""

    parameters: int = 0
    buffers: int = 0

    @property
    def total(self) -> int:
        return self.parameters + self.buffers

    def __add__(self, other: ModuleSize) -> ModuleSize:
        return ModuleSize(self.parameters + other.parameters, self.buffers + other.buffers)


def linear_size(inputs: int, outputs: int) -> ModuleSize:
    """An ``nn.Linear`` with bias."""
    return ModuleSize(parameters=inputs * outputs + outputs)


def concat_head_size(n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize:
    """``ConcatHead``: a linear classifier on the concatenated features."""
    return linear_size(n_modalities * feature_dim, n_classes)


def unimodal_heads_size(n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize:
    """``UnimodalHeadsHead``: the concat classifier and one linear classifier per modality."""
    return concat_head_size(n_modalities, feature_dim, n_classes) + ModuleSize(
        parameters=n_modalities * linear_size(feature_dim, n_classes).parameters
    )


def arm_head_size(n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize:
    """``ARMHead``: probe P and reinforced fusion Q, classifier C, and the evaluation weights."""
    width = n_modalities * feature_dim
    fusion = linear_size(width, feature_dim) + linear_size(width, feature_dim)
    return fusion + linear_size(feature_dim, n_classes) + ModuleSize(buffers=n_modalities)


@dataclass(frozen=True)
class HeadSize:
    """The fusion head a method builds, named and sized, so its spec can size a run without torch."""

    name: str
    count: Callable[[int, int, int], ModuleSize]

    def size(self, n_modalities: int, feature_dim: int, n_classes: int) -> ModuleSize:
        return self.count(n_modalities, feature_dim, n_classes)


CONCAT_HEAD = HeadSize("concat", concat_head_size)
ARM_HEAD = HeadSize("arm", arm_head_size)
UNIMODAL_HEADS = HeadSize("concat+unimodal", unimodal_heads_size)
