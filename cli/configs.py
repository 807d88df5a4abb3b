"""A RunConfig from the command line: a stored or file config, flags and --set assignments, merged and validated once.

The flags that set single RunConfig fields are declared here once, so that `armscope train` and `armscope
submit` take the same ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import ValidationError

from armscope.config import ConfigError, RunConfig, load_config_file, set_dotted

ConfigFile = Annotated[Optional[Path], typer.Option("--config", "-c", help="RunConfig as JSON or YAML.")]
Dataset = Annotated[Optional[str], typer.Option(help="Data set name (see `armscope datasets`).")]
Method = Annotated[Optional[str], typer.Option(help="Method name (see `armscope methods`).")]
Epochs = Annotated[Optional[int], typer.Option()]
Seed = Annotated[Optional[int], typer.Option()]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size")]
Lr = Annotated[Optional[float], typer.Option()]
Device = Annotated[Optional[str], typer.Option(help="auto | cpu | cuda")]
Project = Annotated[Optional[str], typer.Option(help="The project the run belongs to (a name to filter by).")]
Assignments = Annotated[
    list[str], typer.Option("--set", help="dotted.key=value (value parsed as JSON when it parses).")
]


def field_flags(**flags: Any) -> dict[str, Any]:
    """The single-field flags given (a flag left out is None and leaves the field alone)."""
    return {key: value for key, value in flags.items() if value is not None}


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
    """Merge, in increasing priority: a stored or file config, flags (``field_flags``), then --set assignments.

    Every fault, from an unreadable file to a field the schema refuses, is a ConfigError whose message
    names it, so that each command turns config problems into one kind of error.
    """
    raw: dict[str, Any] = dict(base or {})
    if config_file is not None:
        raw.update(load_config_file(config_file))
    raw.update(flags)
    for assignment in assignments:
        set_dotted(raw, assignment)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc)) from exc
