"""The local spool of an external run: everything a script logs is written here before anything is sent.

One folder per run, ``ARMSCOPE_HOME/spool/<key>/``:

- ``run.json``: what the run is (its key, name, config, modalities...) and the process writing it;
- ``records.jsonl``: one line per ``log`` call, ``{"epoch": e, key: value...}``, in call order;
- ``end.json``: how the script ended (``status``, ``error``), once it did;
- ``server.json``: where it was uploaded (``url``, ``run_id``) and how many lines of ``records.jsonl``
  and whether its end reached the server; what ``armscope sync`` reads to skip a run already there.

Lines are appended and flushed to the operating system at each ``log`` call, so a process killed
between calls loses nothing; a line cut short by a machine crash is reported and skipped on reading.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

RUN_FILE, RECORDS_FILE, END_FILE, SERVER_FILE = "run.json", "records.jsonl", "end.json", "server.json"


def armscope_home() -> Path:
    """``ARMSCOPE_HOME``, else ``~/.armscope``: where the server keeps runs and the SDK its spool."""
    return Path(os.environ.get("ARMSCOPE_HOME") or Path.home() / ".armscope")


def spool_root() -> Path:
    return armscope_home() / "spool"


@dataclass(frozen=True)
class BadLine:
    """A line of ``records.jsonl`` that could not be read back, and why."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class Spool:
    """One run's folder. Writing is for the process that logs; reading is for ``armscope sync``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._records: IO[str] | None = None

    @classmethod
    def create(cls, folder: Path, run: Mapping[str, Any]) -> Spool:
        folder.mkdir(parents=True, exist_ok=False)
        spool = cls(folder)
        identity = {"pid": os.getpid(), "host": socket.gethostname(), "created": time.time()}
        _write_json(folder / RUN_FILE, {**run, **identity})
        return spool

    @property
    def key(self) -> str:
        return str(self.run()["key"])

    def run(self) -> dict[str, Any]:
        return _read_json(self.folder / RUN_FILE)

    def append(self, record: Mapping[str, Any]) -> str:
        """One line, flushed to the operating system before returning (a process killed later keeps it); the
        record as written, JSON, for the uploader to send as it is."""
        if self._records is None:
            self._records = open(self.folder / RECORDS_FILE, "a", encoding="utf-8")
        line = json.dumps(record, separators=(",", ":"), allow_nan=False)
        self._records.write(line + "\n")
        self._records.flush()
        return line

    def sync_to_disk(self) -> None:
        """Ask the disk to keep what was appended (done off the logging thread: it may take milliseconds)."""
        records = self._records
        if records is not None and not records.closed:
            try:
                os.fsync(records.fileno())
            except (OSError, ValueError):  # closed meanwhile by the logging thread
                pass

    def close(self) -> None:
        if self._records is not None:
            self._records.close()

    def records(self) -> tuple[list[dict[str, Any]], list[BadLine]]:
        """Every readable line in order, and the lines that are not (a torn last line after a machine crash)."""
        good: list[dict[str, Any]] = []
        bad: list[BadLine] = []
        for number, line in self._lines():
            try:
                record = json.loads(line)
            except ValueError as exc:
                bad.append(BadLine(self.folder / RECORDS_FILE, number, f"not JSON ({exc})"))
                continue
            if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
                bad.append(BadLine(self.folder / RECORDS_FILE, number, "not a record with an integer epoch"))
                continue
            good.append(record)
        return good, bad

    def _lines(self) -> Iterator[tuple[int, str]]:
        path = self.folder / RECORDS_FILE
        if not path.exists():
            return
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield number, line

    def end(self) -> dict[str, Any] | None:
        path = self.folder / END_FILE
        return _read_json(path) if path.exists() else None

    def mark_end(self, status: str, error: str | None) -> None:
        _write_json(self.folder / END_FILE, {"status": status, "error": error, "time": time.time()})

    def uploaded(self) -> dict[str, Any]:
        path = self.folder / SERVER_FILE
        return _read_json(path) if path.exists() else {}

    def mark_uploaded(self, url: str, run_id: int, lines: int, ended: bool) -> None:
        _write_json(self.folder / SERVER_FILE, {"url": url, "run_id": run_id, "lines": lines, "ended": ended})

    def writer_alive(self) -> bool:
        """Whether the process that made this spool still runs (on this host): its run may not be over."""
        run = self.run()
        if run.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(run["pid"]), 0)
        except (OSError, KeyError, ValueError):
            return False
        return int(run["pid"]) != os.getpid()


def find_spools(path: Path) -> list[Spool]:
    """The run folders at ``path``: the folder itself when it is one, else its sub-folders that are, oldest first."""
    if (path / RUN_FILE).exists():
        return [Spool(path)]
    if not path.is_dir():
        return []
    found = [Spool(p) for p in path.iterdir() if (p / RUN_FILE).exists()]
    return sorted(found, key=lambda s: (s.run().get("created", 0), s.folder.name))


def _write_json(path: Path, value: Mapping[str, Any]) -> None:
    """Whole or not at all: a reader never sees half a file."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(value, indent=1, allow_nan=False), encoding="utf-8")
    partial.replace(path)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
