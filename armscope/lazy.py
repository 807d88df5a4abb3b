"""Package names loaded from their module on first use (PEP 562), so importing a package stays light.

``armscope.methods``, ``armscope.data`` and ``armscope.models`` hold both
light modules (options, sizes, paths), which the API imports, and training
code, which needs torch. Their package names (``from armscope.models import
MultimodalModel``) resolve through here, so importing a light module of the
package does not import the training code with it.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` giving each of ``names`` (name -> module) from its module."""

    def __getattr__(name: str) -> Any:
        try:
            module = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        return getattr(importlib.import_module(module), name)

    return __getattr__
