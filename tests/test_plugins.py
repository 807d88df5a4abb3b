"""Plugins are found, not listed: in-tree spec modules by discovery, installed ones by entry point; a broken one is reported."""

from __future__ import annotations

import json

import pytest

from armscope import plugins
from armscope.methods import build_method
from armscope.plugins import DATASETS, ENCODERS, METHODS, broken_plugins
from armscope.specs import DatasetSpec, EncoderSpec, MethodSpec
from tests.plugin_support import BROKEN, TOY, home_with_store, run_python


def test_the_in_tree_plugins_are_found_by_discovery():
    assert METHODS.names() == [
        "agm", "amco", "arm", "baseline", "cml", "gblending", "greedy", "lfm", "mbsd", "mla", "mmcosine", "mmpareto", "ogm",
        "ogm-ge", "opm", "pmr", "reconboost", "relearning", "sample-valuation", "umt", "unimodal",
    ]
    assert DATASETS.names() == ["av-folder", "cremad", "features", "kinetics-sounds", "synthetic-shift", "uci-mfeat"]
    assert ENCODERS.names() == ["mlp", "resnet18"]
    assert broken_plugins() == []
    assert METHODS.origin("ogm-ge") == "armscope.builtin.methods.ogm"


def test_a_new_spec_module_in_the_in_tree_package_is_registered_without_editing_a_list(tmp_path, monkeypatch):
    package = tmp_path / "extra_builtin" / "methods"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "_shared.py").write_text("raise RuntimeError('helpers are not searched')\n")
    (package / "plain.py").write_text(
        "from pydantic import BaseModel\n"
        "from armscope.specs import MethodSpec\n"
        "SPECS = [MethodSpec('plain', 'armscope.methods.base:Method', BaseModel, 'Joint training, again.')]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "BUILTIN", "extra_builtin")
    sources = list(plugins.in_tree("methods"))
    assert [(s.name, s.origin) for s in sources] == [("plain", "extra_builtin.methods.plain")]
    assert [spec.name for spec in sources[0].load()] == ["plain"]


@pytest.mark.parametrize("registry", [METHODS, DATASETS, ENCODERS], ids=lambda r: r.kind)
def test_every_in_tree_spec_names_training_code_that_exists(registry):
    for spec in registry.entries():
        assert callable(spec.factory), spec.name


def test_every_in_tree_method_spec_sizes_the_head_its_method_builds():
    for spec in METHODS.entries():
        built = spec.factory.head_type
        assert built.size(3, 16, 7) == spec.head.size(3, 16, 7), spec.name


def test_every_in_tree_method_spec_counts_the_numbers_its_head_holds():
    for spec in METHODS.entries():
        head = build_method(spec.name, {}, ["a", "b", "c"], 7, 16).build_head()
        size = spec.head.size(3, 16, 7)
        assert sum(p.numel() for p in head.parameters()) == size.parameters, spec.name
        assert sum(b.numel() for b in head.buffers()) == size.buffers, spec.name


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MethodSpec("Has Space", "m:a", MethodSpec, "x"), "plugin name"),
        (lambda: MethodSpec("fine", "not a reference", MethodSpec, "x"), "not a 'module:attribute' reference"),
        (lambda: DatasetSpec("fine", "m:a", MethodSpec, "x"), "pydantic model class"),
        (lambda: EncoderSpec("fine", "m:a", DatasetSpec, "x", count=len), "pydantic model class"),
    ],
)
def test_a_spec_that_does_not_hold_together_is_refused_naming_what(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.service  # a fresh interpreter
def test_an_installed_plugin_folder_adds_a_method_to_the_registry_and_the_catalog_without_torch():
    found = run_python(
        """
        import json, sys
        from armscope.catalog import build_catalog
        from armscope.config import RunConfig
        from armscope.plugins import METHODS
        catalog = build_catalog()
        RunConfig.model_validate({"method": "toy-damped", "method_options": {"damping": 0.25}})
        print(json.dumps({
            "names": METHODS.names(),
            "entry": catalog["methods"]["toy-damped"],
            "torch": "torch" in sys.modules,
        }))
        """,
        TOY,
    )
    assert "toy-damped" in found["names"]
    entry = found["entry"]
    assert entry["origin"] == "entry point toy-damped = armscope_toy:SPEC (armscope-toy 0.1)"
    assert entry["build"] == "armscope_toy.method:Damped"
    assert [m["key"] for m in entry["metrics"]] == ["toy_grad_scale.{m}"]
    assert entry["metrics"][0]["chart"] == "Toy: gradient scale"
    assert entry["options"]["properties"]["damping"]["default"] == 0.5
    assert found["torch"] is False


@pytest.mark.service  # a fresh interpreter
def test_an_installed_plugin_method_trains_two_epochs_and_logs_its_declared_metric(tmp_path):
    status = run_python(
        f"""
        import json
        from armscope.config import RunConfig
        from armscope.train import train
        config = RunConfig.model_validate({{
            "method": "toy-damped", "method_options": {{"damping": 0.25}}, "epochs": 2, "device": "cpu",
            "dataset_options": {{"n_samples": 300, "dims": 8}},
            "model_options": {{"feature_dim": 8, "encoder": {{"name": "mlp", "hidden": [16]}}}},
        }})
        result = train(config, {str(tmp_path / "run")!r})
        print(json.dumps([result.status, result.error]))
        """,
        TOY,
    )
    assert status == ["succeeded", None]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert record["toy_grad_scale.audio"] == record["toy_grad_scale.visual"] == 0.25


@pytest.mark.service  # a fresh interpreter
def test_a_plugin_that_cannot_register_is_reported_by_name_with_its_error_and_the_others_still_work():
    found = run_python(
        """
        import json
        from armscope.config import RunConfig
        from armscope.plugins import METHODS, broken_plugins
        RunConfig.model_validate({"method": "arm"})
        RunConfig.model_validate({"method": "toy-damped"})
        print(json.dumps({"names": METHODS.names(), "broken": [b.as_json() for b in broken_plugins()]}))
        """,
        BROKEN,
        TOY,
    )
    assert "toy-damped" in found["names"] and set(found["names"]) - {"toy-damped"} == set(METHODS.names())
    broken = {b["name"]: b for b in found["broken"]}
    assert sorted(broken) == ["arm-again", "broken-data", "broken-import", "broken-spec"]
    assert broken["broken-data"]["group"] == "armscope.datasets"
    assert broken["broken-import"]["group"] == "armscope.methods"
    assert broken["broken-import"]["error"] == "ModuleNotFoundError: No module named 'a_library_that_is_not_installed'"
    assert broken["broken-import"]["origin"] == (
        "entry point broken-import = armscope_broken_import:SPEC (armscope-broken 0.1)"
    )
    assert "declares metric 'val_acc', already declared by the measures every run logs" in broken["broken-spec"]["error"]
    assert "'arm' is already registered by armscope.builtin.methods.arm" in broken["arm-again"]["error"]


@pytest.mark.service  # a fresh interpreter
def test_armscope_methods_lists_an_installed_plugin_with_its_origin_and_the_ones_that_failed():
    listed = run_python(
        """
        import json, os
        os.environ["COLUMNS"] = "300"  # wide enough that no cell wraps
        from typer.testing import CliRunner
        from cli.main import app
        runner = CliRunner()
        table = runner.invoke(app, ["methods"])
        listing = json.loads(runner.invoke(app, ["methods", "--json"]).output)
        print(json.dumps({"code": table.exit_code, "table": table.output, "json": listing}))
        """,
        BROKEN,
        TOY,
    )
    assert listed["code"] == 0
    assert "toy-damped" in listed["table"] and "armscope-toy 0.1" in listed["table"]
    assert "toy_grad_scale.{m}" in listed["table"]
    assert "could not be loaded" in listed["table"] and "a_library_that_is_not_installed" in listed["table"]
    assert listed["json"]["methods"]["toy-damped"]["metrics"][0]["key"] == "toy_grad_scale.{m}"
    assert sorted(b["name"] for b in listed["json"]["broken_plugins"]) == ["arm-again", "broken-import", "broken-spec"]


@pytest.mark.service  # a fresh interpreter
def test_health_lists_the_plugins_that_failed_and_stays_ok(tmp_path):
    answer = run_python(
        """
        import json
        from fastapi.testclient import TestClient
        from server.app import create_app
        with TestClient(create_app(settings, store, RecordingQueue())) as client:
            response = client.get("/api/v1/health")
        print(json.dumps([response.status_code, response.json()]))
        """,
        BROKEN,
        prelude=home_with_store(tmp_path / "home"),
    )
    status, body = answer
    assert status == 200 and body["status"] == "ok"
    broken = {b["name"]: b for b in body["broken_plugins"]}
    assert sorted(broken) == ["arm-again", "broken-data", "broken-import", "broken-spec"]
    assert broken["broken-data"] == {
        "group": "armscope.datasets",
        "name": "broken-data",
        "origin": "entry point broken-data = armscope_broken_import:SPEC (armscope-broken 0.1)",
        "error": "ModuleNotFoundError: No module named 'a_library_that_is_not_installed'",
    }
