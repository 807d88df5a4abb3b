"""Training methods: the interface (``base.py``) and the in-tree methods' training code, one module each.

Each method is described by a spec in ``armscope.builtin.methods`` that names
its class here; importing this package loads no torch until a name below is used.
"""

from armscope.lazy import exports

__all__ = ["METHODS", "EpochSummary", "Method", "build_method"]
__getattr__ = exports(
    __name__,
    {
        "METHODS": "armscope.plugins",
        "EpochSummary": "armscope.methods.base",
        "Method": "armscope.methods.base",
        "build_method": "armscope.methods.base",
    },
)
