"""Every test is exactly one of unit, service, browser and gpu (tests/conftest.py), so `-m unit` is the quick run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import CATEGORIES, CATEGORIES_OF

ROOT = Path(__file__).resolve().parents[1]


def test_the_categories_are_the_registered_markers_and_no_other_marker_is_allowed(request):
    registered = {line.split(":", 1)[0].strip() for line in request.config.getini("markers")}
    assert set(CATEGORIES) <= registered
    assert request.config.getoption("strict_markers")


def test_every_collected_test_is_exactly_one_category(request):
    collected = request.config.stash[CATEGORIES_OF]  # every test collected, before `-m` deselected any
    assert request.node.nodeid in collected
    wrong = {test: categories for test, categories in collected.items() if len(categories) != 1}
    assert wrong == {}


@pytest.mark.service
def test_selecting_by_the_categories_leaves_no_test_out():
    everything_else = "not unit and not service and not browser and not gpu"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", everything_else],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    last = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 5 and last.startswith("no tests collected ("), done.stdout[-3000:] + done.stderr[-3000:]
