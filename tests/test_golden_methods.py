"""Every in-tree method logs, on the CPU, what it logged before the step interface was redesigned.

Measures added since (ARM's per-step score statistics) are keys the fixture does not hold, and events of
kinds added since are left out; every key it holds keeps its value, but the validation lens's
terms, redefined since to be the same for every method (``armscope.lens``; ``tests/test_lens.py``
specifies them). Labels, counts and events are held exactly; numbers to 1e-6 of each value. The fixture
was recorded on an AVX-512 processor: on an AVX2 one torch's float32 kernels add in another order and round
the last bit differently, which a few epochs of training carry to 2e-7 of a value (measured on every case).
Bit for bit holds on one machine only; what this test guards is the same computation, which any change to
a formula, a seed or a step's order breaks by far more than that. Exact resume and same-seed repeatability
are held bit for bit by ``tests/test_method_contract.py``, on whatever machine runs it.
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
    for record, before in zip(kept, golden_metrics):
        for key, value in before.items():
            expected = value if isinstance(value, (str, int)) else pytest.approx(value, rel=1e-6)
            assert record[key] == expected, (key, record["epoch"])
