"""armscope: train multimodal models and measure how much each modality contributes."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``armscope.init`` and ``armscope.Run`` load the tracking SDK (and its HTTP client) on first use only,
    so importing the engine stays light."""
    if name in ("init", "Run"):
        from armscope.tracking import run

        return getattr(run, name)
    raise AttributeError(f"module 'armscope' has no attribute {name!r}")
