"""Every in-tree method logs, bit for bit on the CPU, what it logged before the step interface was redesigned.

Measures added since (ARM's per-step score statistics) are keys the fixture does not hold, and events of
kinds added since are left out; every key it holds keeps its value exactly, but the validation lens's
terms, redefined since to be the same for every method (``armscope.lens``; ``tests/test_lens.py``
specifies them). The bf16 case is the exception:
CPU bf16 kernels round by the instruction set the processor has (one value moved by an ulp on another
machine), so it is held to 1e-12 of each value.
"""

import json

import pytest

from tests.golden_runs import CASES, FIXTURE, logged

GOLDEN = json.loads(FIXTURE.read_text())
NEW_EVENT_KINDS = {"negative_scores"}
REDEFINED = ("nmi.", "ncmi.", "arm_score.", "arm_weight.")


def still_defined(record):
    return {key: value for key, value in record.items() if not key.startswith(REDEFINED)}


def test_the_fixture_holds_every_case():
    assert sorted(GOLDEN) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_run_logs_the_golden_metrics_and_events(name, tmp_path):
    run, golden = logged(name, tmp_path), GOLDEN[name]
    assert [e for e in run["events"] if e["kind"] not in NEW_EVENT_KINDS] == golden["events"]
    golden_metrics = [still_defined(record) for record in golden["metrics"]]
    kept = [{key: record.get(key) for key in before} for record, before in zip(run["metrics"], golden_metrics)]
    assert len(run["metrics"]) == len(golden["metrics"])
    if "bf16" in name:
        for record, before in zip(kept, golden_metrics):
            for key, value in before.items():
                assert record[key] == (value if isinstance(value, str) else pytest.approx(value, rel=1e-12)), key
    else:
        assert kept == golden_metrics
