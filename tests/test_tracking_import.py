"""`armscope import`: metric files written elsewhere become external runs; bad rows are named and skipped."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from armscope.tracking.importer import import_file, metric_files
from armscope.tracking.spool import Spool
from cli.main import app
from tests.tracking_support import BareServer


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ARMSCOPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_jsonl_file_becomes_one_run_with_a_record_per_line(tmp_path):
    source = write(tmp_path / "avnet-1" / "metrics.jsonl",
                   '{"epoch": 1, "val_acc": 0.5, "val_acc.audio": 0.25}\n{"epoch": 2, "val_acc": 0.75}\n')
    imported = import_file(source)
    records, bad = imported.spool.records()
    assert records == [{"epoch": 1, "val_acc": 0.5, "val_acc.audio": 0.25}, {"epoch": 2, "val_acc": 0.75}]
    assert bad == [] and imported.bad == []
    run = imported.spool.run()
    assert (run["name"], run["modalities"], run["epochs"]) == ("avnet-1", ["audio"], 2)


def test_a_csv_file_is_a_row_per_epoch_with_numbers_read_as_numbers_and_empty_cells_left_out(tmp_path):
    source = write(tmp_path / "late-fusion.csv", "epoch,val_acc,dominant,train_loss\n1,0.5,audio,\n2,0.625,visual,1e-3\n")
    records, _ = import_file(source).spool.records()
    assert records == [{"epoch": 1, "val_acc": 0.5, "dominant": "audio"},
                       {"epoch": 2, "val_acc": 0.625, "dominant": "visual", "train_loss": 0.001}]


def test_without_an_epoch_column_the_row_position_is_the_epoch(tmp_path):
    source = write(tmp_path / "plain.csv", "val_acc\n0.5\n0.6\n")
    assert [r["epoch"] for r in import_file(source).spool.records()[0]] == [1, 2]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('{"epoch": 1, "val_acc": 0.5}\n{"epoch": 2, "val_acc": \n', 2, "not JSON"),
        ('{"epoch": 1, "val_acc": 0.5}\n[1, 2]\n', 2, "JSON object"),
        ('{"epoch": 1, "val_acc": 0.5}\n{"epoch": "two", "val_acc": 0.6}\n', 2, "epoch must be an integer"),
        ('{"epoch": 1, "val_acc": 0.5}\n\n{"epoch": 3, "bad key": 0.6}\n', 3, "'bad key'"),
        ('{"epoch": 1, "val_acc": 0.5}\n{"epoch": 2, "hist": [1, 2]}\n', 2, "'hist'"),
    ],
)
def test_a_bad_jsonl_row_is_reported_by_line_and_skipped(tmp_path, text, line, reason):
    imported = import_file(write(tmp_path / "metrics.jsonl", text))
    assert [(b.line, reason in b.reason) for b in imported.bad] == [(line, True)]
    assert imported.spool.records()[0] == [{"epoch": 1, "val_acc": 0.5}]


def test_a_csv_row_with_more_cells_than_columns_is_reported_by_line(tmp_path):
    imported = import_file(write(tmp_path / "m.csv", "epoch,val_acc\n1,0.5\n2,0.6,7\n3,0.7\n"))
    assert [(b.line, b.reason) for b in imported.bad] == [(3, "more cells than the header has columns")]
    assert [r["epoch"] for r in imported.spool.records()[0]] == [1, 3]


def test_a_config_beside_the_metrics_becomes_the_run_config(tmp_path):
    write(tmp_path / "run" / "config.json", json.dumps({"lr": 0.01, "fusion": "concat"}))
    imported = import_file(write(tmp_path / "run" / "metrics.jsonl", '{"epoch": 1, "val_acc": 0.5}\n'))
    assert imported.spool.run()["config"] == {"lr": 0.01, "fusion": "concat"}


def test_a_folder_is_searched_for_metric_files_but_not_armscope_event_logs(tmp_path):
    write(tmp_path / "a" / "metrics.jsonl", "")
    write(tmp_path / "a" / "events.jsonl", "")
    write(tmp_path / "b.csv", "")
    write(tmp_path / "notes.txt", "")
    assert [p.relative_to(tmp_path).as_posix() for p in metric_files(tmp_path)] == ["a/metrics.jsonl", "b.csv"]


def test_importing_the_same_file_again_spools_the_same_run_afresh(tmp_path):
    source = write(tmp_path / "metrics.jsonl", '{"epoch": 1, "val_acc": 0.5}\n')
    first = import_file(source)
    source.write_text('{"epoch": 1, "val_acc": 0.5}\n{"epoch": 2, "val_acc": 0.6}\n')
    second = import_file(source)
    assert second.spool.folder == first.spool.folder
    assert len(Spool(second.spool.folder).records()[0]) == 2


@pytest.mark.service
def test_armscope_import_uploads_each_file_as_a_finished_external_run(tmp_path):
    (tmp_path / "server-home").mkdir()
    server = BareServer(tmp_path / "server-home").start()
    try:
        write(tmp_path / "runs" / "avnet" / "metrics.jsonl", '{"epoch": 1, "val_acc": 0.5}\nnot json\n')
        write(tmp_path / "runs" / "mlp.csv", "epoch,val_acc\n1,0.4\n2,0.45\n")
        result = CliRunner().invoke(app, ["import", str(tmp_path / "runs"), "--url", server.url])
        assert result.exit_code == 0, result.output
        assert "metrics.jsonl:2" in result.output and "not JSON" in result.output
        runs = server.api.get("/runs", params={"method": "external"}).json()["items"]
        assert sorted((r["name"], r["status"]) for r in runs) == [("avnet", "succeeded"), ("mlp", "succeeded")]
        mlp = next(r for r in runs if r["name"] == "mlp")
        assert [r["val_acc"] for r in server.metrics(mlp["id"])] == [0.4, 0.45]
    finally:
        server.stop()
