"""The command line: `armscope submit` takes `train`'s flags and says where to follow the run, near-miss names get
"did you mean", and `armscope train` writes whole lines when its output goes to a file."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from armscope.client import _status as bar_status
from armscope.console import ConsoleSink
from armscope.rundir import RunDir
from cli.main import app as cli_app
from tests.test_client import URL, body, run_json, submit_app  # noqa: F401 (submit_app is a fixture)

runner = CliRunner()
SMALL = ["--set", "dataset_options.n_samples=600", "--set", "dataset_options.dims=8",
         "--set", "model_options.feature_dim=16"]


def test_submit_takes_the_single_field_flags_train_takes(submit_app):  # noqa: F811
    app, server = submit_app
    server.handler = lambda request: httpx.Response(201, json=run_json(7))
    flags = ["--dataset", "uci-mfeat", "--method", "ogm-ge", "--epochs", "4", "--seed", "3", "--batch-size", "32",
             "--lr", "0.05", "--device", "cpu", "--project", "vision"]
    result = runner.invoke(app, ["submit", *flags, "--set", "epochs=5"])
    assert result.exit_code == 0, result.output
    sent = body(server.last)
    assert (sent["dataset"], sent["method"], sent["seed"], sent["batch_size"], sent["lr"]) == (
        "uci-mfeat", "ogm-ge", 3, 32, 0.05)
    assert (sent["device"], sent["project"], sent["epochs"]) == ("cpu", "vision", 5)  # --set comes last


def test_submit_prints_the_runs_dashboard_page_and_its_place_in_the_queue(submit_app):  # noqa: F811
    app, server = submit_app
    server.handler = lambda request: httpx.Response(201, json=run_json(12, queue="cpu", queue_position=3))
    result = runner.invoke(app, ["submit", "--method", "baseline"])
    assert result.exit_code == 0, result.output
    assert f"queued run 12 (arm-synthetic-shift-s12), #3 in the cpu queue: {URL}/runs/12" in result.output


def test_submit_wait_shows_the_place_in_the_queue_while_it_waits(submit_app, monkeypatch):  # noqa: F811
    app, server = submit_app
    monkeypatch.setattr("armscope.client.time.sleep", lambda seconds: None)
    answers = iter([run_json(5, "queued", queue_position=2), run_json(5, "succeeded")])
    server.handler = lambda request: httpx.Response(
        201 if request.method == "POST" else 200,
        json=run_json(5, queue="cpu", queue_position=2) if request.method == "POST" else next(answers),
    )
    seen: list[str] = []
    monkeypatch.setattr("armscope.client._ProgressBar.update", lambda bar, run: seen.append(bar_status(run)))
    result = runner.invoke(app, ["submit", "--wait"])
    assert result.exit_code == 0, result.output
    assert seen == ["queued #2", "succeeded"]


@pytest.mark.parametrize("flag, typo, meant", [("--method", "armm", "arm"), ("--dataset", "uci-mfaet", "uci-mfeat")])
def test_a_near_miss_name_is_refused_with_did_you_mean_before_any_request(submit_app, flag, typo, meant):  # noqa: F811
    app, server = submit_app
    result = runner.invoke(app, ["submit", flag, typo])
    assert result.exit_code == 2
    assert f"did you mean '{meant}'?" in " ".join(result.output.split())
    assert server.requests == []


def test_train_takes_a_project_into_the_runs_config(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(cli_app, ["train", "--method", "baseline", "--epochs", "1", "--device", "cpu",
                                     "--project", "vision", "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    assert RunDir(out).read_config()["project"] == "vision"


@pytest.mark.service  # the command in a process of its own, its output sent to a file
def test_train_written_to_a_file_keeps_each_summary_line_whole(tmp_path):
    out, log = tmp_path / "run", tmp_path / "train.log"
    with log.open("w") as stdout:  # a file: rich would lay it out at 80 columns
        subprocess.run([sys.executable, "-m", "armscope", "train", "--method", "arm", "--epochs", "2", "--device",
                        "cpu", "--out", str(out), *SMALL], stdout=stdout, stderr=subprocess.STDOUT, check=True)
    lines = log.read_text().splitlines()
    summaries = [line for line in lines if re.match(r"epoch \d+  loss ", line)]
    assert len(summaries) == 2
    assert all(re.search(r"imbalance \d\.\d{3} .* \d+\.\d\ds$", line) for line in summaries), summaries
    header = next(line for line in lines if line.startswith("modality  acc(m)"))
    assert header.split()[-1] == "grad"  # the whole table header on one line


def test_an_event_message_is_printed_as_written_brackets_and_all():
    console = Console(record=True, width=200)
    ConsoleSink(console).event({"kind": "guard_clamp", "level": "info",
                                "message": "ARM weights clamped: a weight fell outside [w_min, w_max] = [0.1, 10]"})
    assert "a weight fell outside [w_min, w_max] = [0.1, 10]" in console.export_text()


def test_submit_help_lists_trains_flags():
    text = runner.invoke(cli_app, ["submit", "--help"], env={"COLUMNS": "200"}).output
    for flag in ("--dataset", "--method", "--epochs", "--seed", "--batch-size", "--lr", "--device", "--project",
                 "--set", "--config", "--wait"):
        assert flag in text, flag
