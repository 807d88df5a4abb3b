"""The run folder: the durable record a crashed run is resumed from.

Lines are appended and fsynced one record at a time, and checkpoints are
replaced atomically, so a SIGKILL at any instant leaves at worst one torn
last line, which readers skip and a resume rewrites.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "last.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read back safely: the run fails instead of running its code."""


class RunDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.metrics_path = self.path / "metrics.jsonl"
        self.events_path = self.path / "events.jsonl"
        self.config_path = self.path / "config.json"
        self.checkpoint_dir = self.path / "checkpoints"

    def holds_run(self) -> bool:
        return self.config_path.exists()

    def create(self, config: dict[str, Any]) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.config_path, (json.dumps(config, indent=2) + "\n").encode())
        for path in (self.metrics_path, self.events_path):
            path.touch()

    def read_config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text())

    def append_metrics(self, record: dict[str, Any]) -> None:
        _append_line(self.metrics_path, record)

    def append_event(self, event: dict[str, Any]) -> None:
        _append_line(self.events_path, event)

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def events(self) -> list[dict[str, Any]]:
        return read_jsonl(self.events_path)

    def keep_through_epoch(self, epoch: int) -> None:
        """Drop records after ``epoch`` (and any torn line) before a resume appends again."""
        for path in (self.metrics_path, self.events_path):
            kept = [r for r in read_jsonl(path) if r.get("epoch", 0) <= epoch]
            _atomic_write(path, "".join(json.dumps(r) + "\n" for r in kept).encode())

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_dir / CHECKPOINT

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint, read with torch's weights-only unpickler.

        Run folders sit on shared storage in a lab, so a checkpoint is untrusted input: it may
        hold tensors and plain values only (all a checkpoint written here contains), never a
        reference to code that unpickling would call.
        """
        if not self.checkpoint_path.exists():
            return None
        name = f"checkpoints/{CHECKPOINT} of run folder {self.path.name}"
        try:
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(
                f"{name} was not loaded: {_refusal(exc)}; a checkpoint may hold only tensors and plain "
                "values. Delete the file to restart the run from epoch 0"
            ) from None
        except (RuntimeError, EOFError, OSError) as exc:
            raise CheckpointError(f"{name} is not a readable checkpoint ({type(exc).__name__})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{name} is not a checkpoint written by armscope (not a dictionary)")
        return state


def _refusal(exc: pickle.UnpicklingError) -> str:
    """The line of torch's refusal that names what was refused, without its advice to unpickle
    anyway with ``weights_only=False``, which is exactly what must not happen here."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or line.startswith("Unsupported")]
    return named[0].rstrip(".") if named else "it is not a torch checkpoint"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete JSON lines of ``path``; reading stops at the first torn or garbled line."""
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def _append_line(path: Path, record: dict[str, Any]) -> None:
    with open(path, "ab") as fh:
        fh.write((json.dumps(record) + "\n").encode())
        fh.flush()
        os.fsync(fh.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
