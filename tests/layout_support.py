"""Reading a Dash layout tree in a test: as the JSON the browser gets, and its components by id or all of them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from plotly.utils import PlotlyJSONEncoder


def dump(component: Any) -> str:
    """A component tree as the JSON Dash sends to the browser."""
    return json.dumps(component, cls=PlotlyJSONEncoder)


def walk(component: Any) -> Iterator[Any]:
    """Every component of a layout tree, the root first."""
    yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            yield from walk(child)


def find(component: Any, component_id: Any) -> Any:
    """The component with this id in a layout tree, or None."""
    return next((c for c in walk(component) if getattr(c, "id", None) == component_id), None)
