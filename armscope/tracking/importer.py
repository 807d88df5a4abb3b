"""``armscope import``: turn metric files written by other tools into spooled external runs, ready to sync.

A ``*.jsonl`` file holds one JSON object per line, a ``*.csv`` file one row per epoch under a header of
keys; either is one run. The epoch is the ``epoch`` column, else the row's position (from 1). A row that
cannot be read is reported by file and line and skipped; the rest of the file is kept. The run's key
comes from the file's absolute path, so importing the same file again updates the same run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from armscope.tracking.run import LogError, json_config, metric_value
from armscope.tracking.spool import BadLine, Spool, spool_root

SUFFIXES = (".jsonl", ".csv")
# In a folder: what is not one run's metrics (an armscope run folder's event log).
NOT_METRICS = frozenset({"events.jsonl"})
CONFIG_FILES = ("config.json", "config.yaml", "config.yml")


@dataclass
class Imported:
    """One file made into a spooled run."""

    source: Path
    spool: Spool
    rows: int = 0
    bad: list[BadLine] = field(default_factory=list)


def metric_files(path: Path) -> list[Path]:
    """The metric files at ``path``: the file itself, or every ``*.jsonl`` and ``*.csv`` below the folder but
    an armscope run folder's ``events.jsonl``."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and p.suffix.lower() in SUFFIXES and p.name.lower() not in NOT_METRICS)


def import_file(source: Path, root: Path | None = None) -> Imported:
    """Spool ``source`` as one external run (replacing what an earlier import of it spooled)."""
    source = source.resolve()
    if source.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{source}: not a metrics file (expected one of {', '.join(SUFFIXES)})")
    key = "import-" + hashlib.sha256(str(source).encode()).hexdigest()[:20]
    folder = (root or spool_root()) / key
    shutil.rmtree(folder, ignore_errors=True)
    rows = list(_rows(source))
    bad: list[BadLine] = []
    records: list[dict[str, Any]] = []
    for position, (line, row) in enumerate(rows, start=1):
        try:
            records.append(_record(row, position))
        except LogError as exc:
            bad.append(BadLine(source, line, str(exc)))
    spec = {
        "key": key, "name": _name(source), "config": _config(source), "modalities": _modalities(records),
        "dataset": "external", "seed": 0, "epochs": max((r["epoch"] for r in records), default=0), "tags": ["imported"],
        "notes": f"imported from {source}",
    }
    spool = Spool.create(folder, spec)
    for record in records:
        spool.append(record)
    spool.close()
    spool.mark_end("succeeded", None)
    return Imported(source, spool, rows=len(records), bad=bad)


def _rows(source: Path) -> list[tuple[int, Any]]:
    """(line number, parsed row) for each row; a row that does not parse is passed on as a LogError-to-be."""
    text = source.read_text(encoding="utf-8", errors="replace")
    if source.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        return [(reader.line_num, row) for row in reader]
    rows: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except ValueError as exc:
            rows.append((number, _Unreadable(f"not JSON: {exc}")))
    return rows


@dataclass(frozen=True)
class _Unreadable:
    reason: str


def _record(row: Any, position: int) -> dict[str, Any]:
    if isinstance(row, _Unreadable):
        raise LogError(row.reason)
    if not isinstance(row, dict):
        raise LogError(f"a row is a JSON object of key: value, got {type(row).__name__}")
    if None in row:
        raise LogError("more cells than the header has columns")
    epoch = _epoch(row.get("epoch"), position)
    record: dict[str, Any] = {"epoch": epoch}
    for key, value in row.items():
        if key == "epoch":
            continue
        value = _cell(value) if isinstance(value, str) else value
        checked = metric_value(str(key), value)
        if checked is not None:
            record[str(key)] = checked
    return record


def _epoch(value: Any, position: int) -> int:
    if value is None or value == "":
        return position
    number = _cell(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)) or number != int(number) or number < 0:
        raise LogError(f"epoch must be an integer >= 0, got {value!r}")
    return int(number)


def _cell(text: str) -> Any:
    """A CSV cell as a number when it reads as one (empty and nan: not measured), else as text."""
    text = text.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    if number != number:
        return None
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def _name(source: Path) -> str:
    return source.parent.name if source.stem.lower() == "metrics" and source.parent.name else source.stem


def _config(source: Path) -> dict[str, Any]:
    """The config file beside the metrics, when there is one (a run folder of ours, of many trainers)."""
    for name in CONFIG_FILES:
        path = source.parent / name
        if path.exists():
            try:
                loaded = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
            except (ValueError, yaml.YAMLError):
                return {}
            return json_config(loaded) if isinstance(loaded, dict) else {}
    return {}


def _modalities(records: list[dict[str, Any]]) -> list[str]:
    """The modalities the standard per-modality keys name (val_acc.<m>, shapley.<m>)."""
    found: dict[str, None] = {}
    for record in records:
        for key in record:
            family, _, modality = key.partition(".")
            if modality and family in ("val_acc", "shapley", "confidence"):
                found.setdefault(modality)
    return list(found)[:8]
