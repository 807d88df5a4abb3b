"""What a run records of where and with what it trained, so that a number can be traced back and repeated.

Two runs of one config can still differ by the machine: the device ``auto`` chose, the GPU, the torch,
CUDA or armscope version, the number of threads or loader processes, or a change to the code not yet
committed. A trained run records these when it starts (``environment.json`` in its folder, and through
its sink the store), completes them with its peak memory when it ends, and says so in an event when a
resume lands on another machine or software. A script logging through the SDK records its own.

Torch-free at import: the SDK (``armscope.init``) records a script's environment without loading
torch; torch's part is read only where a run holds a device, or where the script already loaded it.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import armscope

FILE = "environment.json"
GIT_TIMEOUT = 5.0  # seconds; a repository on slow shared storage must not hold a run's start for long
CODE_DIR = Path(armscope.__file__).resolve().parent
# What makes two attempts of one run differ in their numbers or speed: a resume elsewhere is reported.
COMPARED = ("host", "device", "gpu.name", "torch", "cuda", "armscope", "code.commit", "code.dirty")


def git_state(path: Path | str) -> dict[str, Any] | None:
    """The commit checked out in the git repository holding ``path``, and whether tracked files differ
    from it (``dirty``); None outside a repository or without a git command.

    ``--no-optional-locks`` keeps ``git status`` from refreshing the index: reading the state writes
    nothing to a repository that someone may be using."""
    folder = Path(path)
    folder = folder if folder.is_dir() else folder.parent
    root = _git(folder, "rev-parse", "--show-toplevel")
    commit = _git(folder, "rev-parse", "HEAD")
    if root is None or commit is None:
        return None
    changes = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return {"repository": root, "commit": commit, "dirty": None if changes is None else bool(changes)}


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(folder), *args],
            capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.SubprocessError):  # no git on this machine, or it hung
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def process_environment(source: Path | str | None = None) -> dict[str, Any]:
    """What any process records: Python, platform, host, armscope's version and the checkout its code runs
    from (``code``: None when installed from a wheel), and ``source``'s repository when given (the config
    file of ``armscope train --config``, the script logging through the SDK)."""
    return {
        "armscope": armscope.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "code": git_state(CODE_DIR),
        "source": None if source is None else _source(Path(source)),
    }


def _source(path: Path) -> dict[str, Any]:
    """Where a config or script came from, and the state of its repository (None outside one)."""
    return {"path": str(path.resolve()), "git": git_state(path.resolve())}


def torch_environment(device: Any) -> dict[str, Any]:
    """torch's side for a run on ``device`` (a ``torch.device``, the one actually used, never ``auto``):
    versions, CPU threads, and the GPU's name, memory and compute capability on CUDA. Holding a device, the
    caller has loaded torch: this module never loads it (the SDK imports it in scripts that may not use torch)."""
    torch = sys.modules["torch"]
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "device": f"cuda:{index}" if cuda else str(device),
        "gpu": _gpu(torch, index) if cuda else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "threads": torch.get_num_threads(),
    }


def _gpu(torch: Any, index: int) -> dict[str, Any]:
    props = torch.cuda.get_device_properties(index)
    return {"name": props.name, "memory_mb": round(props.total_memory / 2**20),
            "capability": f"{props.major}.{props.minor}", "count": torch.cuda.device_count()}


def run_environment(
    device: Any, requested: str, dataloader_workers: int, source: Path | str | None = None
) -> dict[str, Any]:
    """A trained run's record: the process, torch on ``device`` (what ``requested``, say ``auto``, became)
    and the DataLoader worker processes its data set reads with (0: in the training process)."""
    return {
        **process_environment(source),
        **torch_environment(device),
        "device_requested": requested,
        "dataloader_workers": dataloader_workers,
        "peak_memory_mb": None,
    }


def script_environment(script: Path | str | None = None) -> dict[str, Any]:
    """A script's record, for the SDK: the process and its script's repository (``script``, else the
    ``__main__`` file, else the working directory); torch's side only when the script loaded torch,
    and the GPU only when it already started CUDA (reading it would start CUDA in the script)."""
    if script is None:
        main = getattr(sys.modules.get("__main__"), "__file__", None)
        script = Path(main) if main else Path.cwd()
    record = process_environment(script)
    torch = sys.modules.get("torch")
    if torch is not None:
        started = torch.cuda.is_initialized()
        record.update(
            torch=torch.__version__, cuda=torch.version.cuda, threads=torch.get_num_threads(),
            device=f"cuda:{torch.cuda.current_device()}" if started else None,
            gpu=_gpu(torch, torch.cuda.current_device()) if started else None,
        )
    return record


def with_peak(record: Mapping[str, Any], peak_mb: float | None) -> dict[str, Any]:
    """``record`` with the run's peak memory in MiB: the largest of its epochs' (a resumed run's earlier
    attempts included)."""
    peaks = [p for p in (record.get("peak_memory_mb"), peak_mb) if isinstance(p, (int, float))]
    return {**record, "peak_memory_mb": round(max(peaks), 1) if peaks else None}


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """The reproducibility fields that differ between two attempts of a run, as ``field: old -> new``."""
    if not before:
        return []
    return [
        f"{field}: {_at(before, field)} -> {_at(after, field)}"
        for field in COMPARED
        if _at(before, field) != _at(after, field)
    ]


def _at(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def read(folder: Path | str) -> dict[str, Any] | None:
    """The record a run folder holds, if any (a run started before this was recorded holds none)."""
    try:
        loaded = json.loads((Path(folder) / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def write(folder: Path | str, record: Mapping[str, Any]) -> None:
    """Replace the folder's record atomically: a crash leaves the old one or the new one, never half."""
    path = Path(folder) / FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
