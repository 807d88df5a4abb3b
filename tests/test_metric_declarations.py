"""Every key a run logs is declared once, by the engine or by its method, and the console and catalog read the declarations."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from armscope.catalog import build_catalog, declared_metrics
from armscope.console import epoch_table
from armscope.metrics import COMMON, Metric, check_declarations, declared_order, find
from armscope.plugins import METHODS
from armscope.rundir import RunDir
from armscope.train import train
from dashboard import figures as fx
from service import seed_sets as ss

TOY_METRIC = Metric("toy_scale.{m}", "Toy scale", "Toy", basis="applied", sample="training", short="toy_k")


@pytest.mark.parametrize("method", METHODS.names())
def test_a_run_logs_exactly_the_keys_its_declarations_name(method, tiny_config, tmp_path):
    config = tiny_config(method=method, epochs=1)
    train(config, tmp_path / "run")
    (record,) = RunDir(tmp_path / "run").metrics()
    declared = declared_metrics(method)
    assert [key for key in record if find(key, declared) is None] == []
    modalities = config.dataset_options["modalities"]
    expected = {key for metric in declared for key in metric.keys(modalities)}
    assert set(record) == expected


def test_the_common_measures_are_declared_once_and_a_method_adds_only_its_own():
    keys = [m.key for m in COMMON]
    assert len(keys) == len(set(keys))
    assert [m.key for m in declared_metrics("ogm-ge")] == [*keys, "ogm_coeff.{m}", "ogm_ratio.{m}"]
    assert [m.key for m in declared_metrics("baseline")] == keys


def test_every_registered_method_is_in_the_declarations_of_all_methods_each_key_once():
    everything = [m.key for m in declared_metrics()]
    assert len(everything) == len(set(everything))
    assert {"ogm_coeff.{m}", "arm_train_weight.{m}", "arm_guard_steps"} <= set(everything)


def test_a_method_no_longer_registered_declares_only_the_common_measures():
    assert declared_metrics("a-plugin-since-removed") == list(COMMON)


def test_a_per_modality_declaration_stands_for_one_key_per_modality():
    metric = next(m for m in COMMON if m.key == "shapley.{m}")
    assert metric.per_modality and metric.family == "shapley" and metric.selector == "shapley.*"
    assert metric.keys(["audio", "visual"]) == ["shapley.audio", "shapley.visual"]
    assert metric.matches("shapley.audio") and not metric.matches("shapley") and not metric.matches("shapley_x.a")
    assert find("val_acc", COMMON).key == "val_acc"
    assert find("val_acc.visual", COMMON).key == "val_acc.{m}"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Metric("bad key", "x", None, basis="applied"), "must be a name"),
        (lambda: Metric("x.{m}.y", "x", None, basis="applied"), "must be a name"),
        (lambda: Metric("x", "x", None, basis="estimate"), "say what it is estimated on"),
        (lambda: check_declarations([Metric("nmi.{m}", "again", None, basis="applied")], "m"), "already declared"),
        (lambda: check_declarations([TOY_METRIC, TOY_METRIC], "method 'toy'"), "method 'toy' declares"),
    ],
)
def test_a_declaration_that_cannot_be_read_is_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_console_shows_a_column_for_each_declared_per_modality_metric_the_record_holds():
    record = {
        "epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_acc": 0.5, "val_f1": 0.4, "dominant": "a",
        "imbalance": 0.2, "epoch_seconds": 0.1, "shapley.a": 0.3, "shapley.b": 0.1, "toy_scale.a": 0.25,
        "toy_scale.b": 0.5, "toy_steps": 7.0,
    }
    toy_steps = Metric("toy_steps", "Toy steps", None, basis="applied", sample="training")
    console = Console(record=True, width=200)
    console.print(epoch_table(record, ["a", "b"], [*COMMON, TOY_METRIC, toy_steps]))
    text = console.export_text()
    headers = [line.split() for line in text.splitlines() if line.startswith("modality")]
    assert headers == [["modality", "shapley"], ["modality", "toy_k"]]
    assert "toy_steps 7" in text
    assert "0.2500" in text and "0.5000" in text


def test_the_catalog_publishes_the_common_measures_and_each_methods_declarations_as_json():
    catalog = json.loads(json.dumps(build_catalog()))
    assert [m["key"] for m in catalog["metrics"]] == [m.key for m in COMMON]
    shapley = next(m for m in catalog["metrics"] if m["key"] == "shapley.{m}")
    assert shapley | {"description": ""} == {
        "key": "shapley.{m}",
        "label": "Contribution (Shapley) per modality",
        "chart": "Contributions: Shapley share of the fused accuracy",
        "basis": "estimate",
        "sample": "validation",
        "unit": "fraction",
        "better": None,
        "short": "shapley",
        "description": "",
        "numeric": True,
        "over": "",
        "elements": "",
        "per_modality": True,
        "selector": "shapley.*",
    }
    arm = catalog["methods"]["arm"]
    assert arm["head"] == "arm"
    assert [m["key"] for m in arm["metrics"]] == [
        "arm_train_weight.{m}", "arm_train_weight_std.{m}", "arm_train_score.{m}", "arm_train_score_std.{m}",
        "arm_step_elements", "arm_negative_steps", "arm_guard_steps",
    ]
    assert catalog["methods"]["baseline"]["metrics"] == []
    assert catalog["broken_plugins"] == []


def test_csv_columns_follow_the_declarations_and_undeclared_keys_come_last():
    keys = ["toy_x", "ogm_coeff.audio", "val_acc.audio", "epoch", "val_acc", "ogm_coeff.visual", "val_acc.visual"]
    assert declared_order(keys, declared_metrics("ogm")) == [
        "epoch", "val_acc", "val_acc.audio", "val_acc.visual", "ogm_coeff.audio", "ogm_coeff.visual", "toy_x",
    ]


def test_the_compare_list_labels_and_seed_summaries_read_the_declarations():
    records = [{"epoch": 1, "val_acc": 0.5, "ogm_coeff.audio": 0.9, "arm_guard_steps": 2.0, "toy_x": 1.0}]
    options = {o["value"]: o["label"] for o in fx.metric_options(records)}
    assert options == {
        "val_acc": "Fused accuracy (val)",
        "arm_guard_steps": "ARM guard steps (steps)",
        "ogm_coeff.*": "OGM coefficient per modality",
    }
    assert fx.metric_label("samples_per_second") == "Throughput (samples/s)"
    assert fx.is_percent("shapley.*") and fx.is_percent("val_acc") and not fx.is_percent("ogm_coeff.*")
    assert [ss.lower_is_better(k) for k in ("val_loss", "arm_guard_steps", "val_acc", "ogm_coeff.audio", "toy_x")] == [
        True, True, False, False, False,
    ]
