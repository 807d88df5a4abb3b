"""Comparisons come a run (or a seed set) at a time, so a server never holds every compared run's curves."""

import pytest

from armscope.config import RunConfig
from service import compare
from service.db.store import RunNotFound


def stored_runs(store, seeds, methods=("arm",), epochs=4):
    ids = []
    for method in methods:
        for seed in seeds:
            config = RunConfig(method=method, seed=seed, epochs=epochs).model_dump(mode="json")
            run_id = store.create_run(config, queue="cpu")["id"]
            for e in range(1, epochs + 1):
                store.add_epoch(run_id, {"epoch": e, "val_acc": (e + seed) / 10, "train_loss": 1 / e})
            ids.append(run_id)
    return ids


def spy_on_curves(store, monkeypatch):
    asked = []
    real = store.curves

    def curves(run_id, *rest):
        asked.append(run_id)
        return real(run_id, *rest)

    monkeypatch.setattr(store, "curves", curves)
    return asked


def test_a_comparison_reads_each_run_s_curves_only_when_that_run_is_produced(store, monkeypatch):
    ids = stored_runs(store, seeds=range(3))
    asked = spy_on_curves(store, monkeypatch)
    runs = compare.curves(store, ids, None, None)
    assert asked == []
    first = next(runs)
    assert asked == [ids[0]] and first["id"] == ids[0] and len(first["records"]) == 4
    assert [run["id"] for run in runs] == ids[1:] and asked == ids


def test_a_comparison_with_an_unknown_run_fails_when_asked_before_any_curve_is_read(store, monkeypatch):
    ids = stored_runs(store, seeds=[0])
    asked = spy_on_curves(store, monkeypatch)
    with pytest.raises(RunNotFound):
        compare.curves(store, [ids[0], 99_999], None, None)
    with pytest.raises(RunNotFound):
        compare.seed_set_summaries(store, [ids[0], 99_999], None)
    assert asked == []


def test_seed_set_summaries_load_one_set_at_a_time(store, monkeypatch):
    arm = stored_runs(store, seeds=range(2), methods=("arm",))
    baseline = stored_runs(store, seeds=range(2), methods=("baseline",))
    asked = spy_on_curves(store, monkeypatch)
    sets = compare.seed_set_summaries(store, arm + baseline, None)
    assert next(sets)["runs"] == arm and asked == arm
    assert next(sets)["runs"] == baseline and asked == arm + baseline


def test_a_seed_set_summary_is_the_mean_and_std_over_its_seeds(store):
    ids = stored_runs(store, seeds=range(2))
    (summary,) = compare.seed_set_summaries(store, ids, ["val_acc"])
    last = summary["metrics"]["val_acc"]["last"]
    assert summary["seeds"] == [0, 1] and last["mean"] == pytest.approx(0.45) and last["n"] == 2
