"""What a method may checkpoint: tensors and plain values, all a weights-only checkpoint holds.

Checkpoints are read back with torch's weights-only unpickler (see
``armscope.rundir``), which refuses any other object. A method's state is
checked when it is saved, so a method that keeps something else fails in its
first epoch, naming the value, instead of leaving a run that cannot resume.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

PLAIN = (bool, int, float, str, type(None))


class MethodStateError(TypeError):
    """A method's ``state_dict`` holds a value that a checkpoint may not hold."""


def checked_state(state: dict[str, Any], method: str) -> dict[str, Any]:
    """``state`` itself, once every value in it is known to be a tensor or a plain value."""
    _check(state, f"{method}'s state_dict()", method)
    return state


def _check(value: Any, where: str, method: str) -> None:
    if isinstance(value, (Tensor, *PLAIN)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]", method)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise MethodStateError(f"{where} has a key of type {type(key).__name__}; keys must be str or int")
            _check(item, f"{where}[{key!r}]", method)
        return
    raise MethodStateError(
        f"{where} is a {type(value).__name__}; a checkpoint may hold only tensors and plain values "
        "(numbers, strings, booleans, None, and lists, tuples and dicts of them)"
    )
