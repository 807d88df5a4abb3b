"""Encoders (their training code, one module each), fusion heads, and the light model options and sizes.

Each encoder is described by a spec in ``armscope.builtin.encoders`` that
names its builder here; importing this package loads no torch until a
training name below is used.
"""

from armscope.lazy import exports

__all__ = [
    "ENCODERS",
    "ARMHead",
    "ConcatHead",
    "FusionHead",
    "ModelOptions",
    "MultimodalModel",
    "UnimodalHeadsHead",
    "build_encoder",
]
__getattr__ = exports(
    __name__,
    {
        "ENCODERS": "armscope.plugins",
        "ModelOptions": "armscope.models.base",
        "build_encoder": "armscope.models.base",
        "ARMHead": "armscope.models.heads",
        "ConcatHead": "armscope.models.heads",
        "FusionHead": "armscope.models.heads",
        "MultimodalModel": "armscope.models.heads",
        "UnimodalHeadsHead": "armscope.models.heads",
    },
)
