import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from armscope.rundir import RunDir
from cli.main import app
from tests.support import without_timing

runner = CliRunner()
SMALL = ["--set", "dataset_options.n_samples=600", "--set", "dataset_options.dims=8",
         "--set", "model_options.feature_dim=16", "--device", "cpu"]


def test_train_prints_a_table_per_epoch_and_writes_metrics(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--dataset", "synthetic-shift", "--method", "arm", "--epochs", "2",
                                 "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    assert "epoch 2" in result.output and "shapley" in result.output and "audio" in result.output
    assert len(RunDir(out).metrics()) == 2


def test_config_file_flags_and_set_combine_in_that_order(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("method: baseline\nepochs: 5\nseed: 3\ndataset_options: {n_samples: 300}\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(config), "--epochs", "1", "--out", str(out),
                                 "--set", "seed=4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    stored = RunDir(out).read_config()
    assert (stored["method"], stored["epochs"], stored["seed"]) == ("baseline", 1, 4)
    assert stored["dataset_options"]["n_samples"] == 300


def test_an_invalid_config_is_an_error_naming_the_field(tmp_path):
    result = runner.invoke(app, ["train", "--method", "arm", "--set", "method_options.nmi_bins=1",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "method_options.nmi_bins" in result.output
    assert not (tmp_path / "run").exists()


def test_an_unknown_method_lists_the_choices(tmp_path):
    result = runner.invoke(app, ["train", "--method", "nope", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "baseline" in result.output


def test_methods_and_datasets_are_listed_with_their_options_and_metrics():
    methods = json.loads(runner.invoke(app, ["methods", "--json"]).output)
    datasets = json.loads(runner.invoke(app, ["datasets", "--json"]).output)
    assert {"arm", "baseline", "unimodal", "ogm", "ogm-ge"} <= set(methods["methods"])
    assert {"synthetic-shift", "uci-mfeat", "features"} <= set(datasets["datasets"])
    assert "estimator" in methods["methods"]["arm"]["options"]["properties"]
    assert [m["key"] for m in methods["methods"]["ogm"]["metrics"]] == ["ogm_coeff.{m}", "ogm_ratio.{m}"]
    assert "shapley.{m}" in [m["key"] for m in methods["metrics"]]
    assert methods["broken_plugins"] == datasets["broken_plugins"] == []
    table = runner.invoke(app, ["methods"]).output
    assert "estimator" in table and "ogm_coeff.{m}" in table


@pytest.mark.service
def test_resume_after_sigkill_mid_epoch_matches_an_uninterrupted_run(tmp_path):
    args = ["--method", "ogm-ge", "--epochs", "4", "--device", "cpu",
            "--set", "dataset_options.n_samples=6000", "--set", "dataset_options.dims=8",
            "--set", "model_options.feature_dim=16", "--batch-size", "16"]
    whole = tmp_path / "whole"
    assert runner.invoke(app, ["train", *args, "--out", str(whole)]).exit_code == 0
    crashed = tmp_path / "crashed"
    proc = subprocess.Popen([sys.executable, "-m", "armscope", "train", *args, "--out", str(crashed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(RunDir(crashed).metrics()) < 1 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # well inside epoch 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(RunDir(crashed).metrics())
    assert 1 <= done < 4, "the kill must land before the run ends"
    with open(crashed / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 9, "val_')
    result = runner.invoke(app, ["train", "--resume", "--out", str(crashed)])
    assert result.exit_code == 0, result.output
    assert "resuming after epoch" in " ".join(result.output.split())
    assert without_timing(RunDir(crashed).metrics()) == without_timing(RunDir(whole).metrics())


def test_db_upgrade_creates_the_schema_where_the_environment_points(tmp_path, monkeypatch):
    from sqlalchemy import create_engine, inspect

    monkeypatch.setenv("ARMSCOPE_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("ARMSCOPE_HOME", str(tmp_path))
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    tables = set(inspect(create_engine(f"sqlite:///{tmp_path / 'x.db'}")).get_table_names())
    assert {"runs", "sweeps", "epoch_metrics", "events", "run_tags", "alembic_version"} <= tables
