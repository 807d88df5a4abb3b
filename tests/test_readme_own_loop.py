"""The README's complete example of a loop of the reader's own runs, as written there, against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tracking_support import BareServer

pytestmark = pytest.mark.service
README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- own-loop example -->"


def example() -> str:
    text = README.read_text()
    found = re.search(re.escape(MARKER) + r"\n```python\n(.*?)\n```", text, re.S)
    assert found, f"README.md has no python block after {MARKER}"
    return found.group(1)


def test_the_example_is_about_forty_lines():
    assert len([line for line in example().splitlines() if line.strip()]) <= 40


def test_the_example_logs_every_epoch_with_the_contribution_measures_to_a_real_server(tmp_path):
    (tmp_path / "server").mkdir()
    server = BareServer(tmp_path / "server").start()
    try:
        script = tmp_path / "own_loop.py"
        script.write_text(example())
        env = {**server.env, "ARMSCOPE_URL": server.url, "ARMSCOPE_HOME": str(tmp_path / "script-home")}
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        (run,) = server.api.get("/runs", params={"method": "external"}).json()["items"]
        assert (run["name"], run["status"]) == ("gated-net", "succeeded")
        records = server.metrics(run["id"])
        assert [r["epoch"] for r in records] == list(range(1, 9))
        last = records[-1]
        assert {"val_acc", "val_acc.mor", "val_acc.fou", "shapley.mor", "shapley.fou", "train_loss"} <= set(last)
        assert last["val_acc"] > 0.5  # it learns: ten classes, chance is 0.1
        assert last["dominant"] in ("mor", "fou")
    finally:
        server.stop()
