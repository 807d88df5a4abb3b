"""The layers stay layers: import-linter's contracts (pyproject.toml) hold, and importing the product touches no disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["armscope", "service", "backend", "dashboard", "workers", "cli", "server"]
# Running it is running the command line; every other module may be imported for its own sake.
NOT_IMPORTED = {"armscope.__main__"}

IMPORT_ALL = """
import importlib, json, pkgutil, sys
names = []
for top in sys.argv[1].split(","):
    package = importlib.import_module(top)
    names.append(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        if info.name not in sys.argv[2].split(","):
            importlib.import_module(info.name)
            names.append(info.name)
print(json.dumps(names))
"""


def test_the_import_contracts_hold():
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.service  # a fresh interpreter imports every module
def test_importing_every_module_creates_no_file_or_folder(tmp_path):
    home, cwd, user = tmp_path / "armscope-home", tmp_path / "cwd", tmp_path / "user"
    cwd.mkdir()
    user.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARMSCOPE_")}
    env.update(ARMSCOPE_HOME=str(home), HOME=str(user), PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, ",".join(PACKAGES), ",".join(NOT_IMPORTED)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout.splitlines()[-1])
    assert {"service.db.store", "server.app", "workers.tasks", "dashboard.app", "cli.main"} <= set(imported)
    assert not home.exists()
    assert list(cwd.iterdir()) == [] and list(user.iterdir()) == []
