"""Every in-tree method logs, bit for bit on the CPU, what it logged before the step interface was redesigned."""

import json

import pytest

from tests.golden_runs import CASES, FIXTURE, logged

GOLDEN = json.loads(FIXTURE.read_text())


def test_the_fixture_holds_every_case():
    assert sorted(GOLDEN) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_run_logs_the_golden_metrics_and_events(name, tmp_path):
    assert logged(name, tmp_path) == GOLDEN[name]
