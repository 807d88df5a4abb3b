"""A RunConfig from the command line: a stored or file config, flags and --set assignments, merged and validated once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from armscope.config import RunConfig, load_config_file, set_dotted


def validation_message(exc: ValidationError) -> str:
    """Every fault of a config, one line each, named by its dotted field."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        lines.append(f"  {where}: {err['msg']}")
    return "invalid run config:\n" + "\n".join(lines)


def build_config(
    config_file: Path | None, flags: dict[str, Any], assignments: list[str], base: dict[str, Any] | None = None
) -> RunConfig:
    """Merge, in increasing priority: a stored or file config, flags, then --set assignments."""
    raw: dict[str, Any] = dict(base or {})
    if config_file is not None:
        raw.update(load_config_file(config_file))
    raw.update({k: v for k, v in flags.items() if v is not None})
    for assignment in assignments:
        set_dotted(raw, assignment)
    return RunConfig.model_validate(raw)
