"""The test-only plugin folders, and a fresh interpreter to load them in (registries are filled once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"
TOY, BROKEN = PLUGINS / "toy", PLUGINS / "broken"


def plugin_path(*folders: Path) -> str:
    """A PYTHONPATH holding ``folders`` and the repository (so ``tests`` imports too)."""
    return os.pathsep.join([*map(str, folders), str(ROOT)])


def run_python(code: str, *folders: Path, prelude: str = "") -> Any:
    """Run ``prelude`` then ``code`` in a fresh interpreter with ``folders`` on ``sys.path``; it prints one
    JSON value last."""
    env = {**os.environ, "PYTHONPATH": plugin_path(*folders)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(prelude) + textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def home_with_store(home: Path) -> str:
    """A ``prelude`` for :func:`run_python` that makes ``settings`` on ``home`` and an upgraded ``store`` in it
    (and imports what it names: ``Settings``, ``Store``, and the fake queue ``RecordingQueue``)."""
    return textwrap.dedent(
        f"""
        from service.db.store import Store
        from service.settings import Settings
        from tests.fakes import RecordingQueue
        settings = Settings(home={str(home)!r})
        settings.ensure_home()
        store = Store(settings.resolved_database_url)
        store.upgrade()
        """
    )
