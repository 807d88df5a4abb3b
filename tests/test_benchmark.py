"""The live benchmark: every method on a data set as a row of final numbers, mean ± std over seeds."""

import pytest

from armscope.config import RunConfig
from service.benchmark import benchmark
from service.errors import InvalidInput


def finished_run(store, method, seed, *, acc, shapley, dataset="synthetic-shift", status="succeeded", **options):
    config = RunConfig(method=method, seed=seed, epochs=2, dataset=dataset, **options).model_dump(mode="json")
    run_id = store.create_run(config, queue="cpu")["id"]
    audio, visual = shapley
    for epoch in (1, 2):
        store.add_epoch(run_id, {
            "epoch": epoch, "val_acc": acc - 0.1 * (2 - epoch), "val_acc.audio": acc - 0.2, "val_acc.visual": acc - 0.4,
            "shapley.audio": audio, "shapley.visual": visual, "imbalance": 0.5, "bb_imbalance": abs(audio - visual),
            "elapsed_seconds": 3.0 * epoch, "parameters": 100.0, "flops_per_sample": 40.0, "peak_memory_mb": 50.0,
        })
    store.claim_run(run_id, "w")
    store.finish_run(run_id, "w", status)
    return run_id


def test_a_row_is_a_method_s_seeds_with_the_mean_and_spread_of_their_last_epoch(store):
    finished_run(store, "baseline", 0, acc=0.80, shapley=(0.3, 0.1))
    finished_run(store, "baseline", 1, acc=0.90, shapley=(0.3, 0.3))
    (row,) = benchmark(store, "synthetic-shift")["rows"]
    assert row["method"] == "baseline" and row["seeds"] == [0, 1]
    assert row["val_acc"]["mean"] == pytest.approx(0.85) and row["val_acc"]["std"] == pytest.approx(0.0707107)
    assert row["masked"]["visual"]["mean"] == pytest.approx(0.45)
    assert row["share"]["audio"]["mean"] == pytest.approx((0.75 + 0.5) / 2)
    assert row["bb_imbalance"]["mean"] == pytest.approx(0.1) and row["epoch_seconds"]["mean"] == pytest.approx(3.0)
    assert row["parameters"] == {"mean": 100.0, "std": 0.0, "n": 2}


def test_methods_and_option_sets_are_rows_of_their_own_and_the_rest_are_listed_without_runs(store):
    finished_run(store, "arm", 0, acc=0.8, shapley=(0.4, 0.2))
    finished_run(store, "arm", 0, acc=0.7, shapley=(0.3, 0.2), method_options={"reweight": False})
    finished_run(store, "ogm-ge", 0, acc=0.75, shapley=(0.3, 0.3))
    table = benchmark(store, "synthetic-shift")
    assert [row["method"] for row in table["rows"]] == ["arm", "arm", "ogm-ge"]
    assert table["rows"][1]["label"] == "arm · method_options.reweight=false (n=1)"
    assert "baseline" in table["without_runs"] and "arm" not in table["without_runs"]
    assert table["modalities"] == ["audio", "visual"]


def test_only_succeeded_runs_on_the_data_set_and_with_the_encoder_asked_count(store):
    finished_run(store, "baseline", 0, acc=0.8, shapley=(0.3, 0.1))
    finished_run(store, "baseline", 1, acc=0.1, shapley=(0.0, 0.0), status="failed")
    finished_run(store, "baseline", 2, acc=0.1, shapley=(0.0, 0.0), dataset="uci-mfeat")
    (row,) = benchmark(store, "synthetic-shift")["rows"]
    assert row["seeds"] == [0]
    assert benchmark(store, "synthetic-shift", encoder="resnet18")["rows"] == []
    assert len(benchmark(store, "synthetic-shift", encoder="mlp")["rows"]) == 1


def test_an_unknown_data_set_or_encoder_is_refused_naming_the_choices(store):
    with pytest.raises(InvalidInput, match="unknown data set 'nope'; choose from: .*synthetic-shift"):
        benchmark(store, "nope")
    with pytest.raises(InvalidInput, match="unknown encoder 'vit'"):
        benchmark(store, "synthetic-shift", encoder="vit")
