"""What a data set will hand the model and hold in memory, known from its options alone.

A run is sized at validation, before any file is read or any sample generated, so that a
config that cannot fit is refused with a 422 instead of failing or hogging a worker later.
Where a size is only known from the data files, the footprint says so in ``notes`` and uses
a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLOAT_BYTES = 4  # every input reaches the model as float32
LABEL_BYTES = 8  # labels (and synthetic-shift's environment ids) are int64


@dataclass(frozen=True)
class DataFootprint:
    """The modalities, input shapes and class count a model is built for, and the data's memory.

    ``memory_bytes`` is what the data set holds in memory at once: the whole set for
    data generated or read into memory, the batches in flight for data streamed from
    disk. ``memory_field`` is the config field named when that is over budget, and
    ``memory_formula`` says how it was counted.
    """

    modalities: list[str]
    input_shapes: dict[str, tuple[int, ...]]
    n_classes: int
    memory_bytes: int
    memory_formula: str
    memory_field: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())


def furthest_above_default(factors: dict[tuple[str, ...], float]) -> tuple[str, ...]:
    """The field whose value is the largest multiple of its default: the one to name first.

    ``factors`` maps each field to that multiple (value / default, or default / value for
    a field whose growth shrinks the size); ties go to the first field given.
    """
    return max(factors, key=lambda name: factors[name])
