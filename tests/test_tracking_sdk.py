"""The tracking SDK (armscope.init) against a real server: logging, ends, cancel, offline, sync, kill."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import armscope
from armscope.client import ClientError
from armscope.tracking.spool import Spool
from cli.main import app
from tests.service_support import free_port, wait_for
from tests.tracking_support import BareServer

pytestmark = pytest.mark.service
FAST = {"heartbeat_seconds": 0.2, "flush_seconds": 0.05, "flush_timeout": 20}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = BareServer(tmp_path_factory.mktemp("home"), ARMSCOPE_HEARTBEAT_TIMEOUT="3").start()
    yield served
    served.stop()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ARMSCOPE_HOME", str(tmp_path))
    monkeypatch.delenv("ARMSCOPE_API_TOKEN", raising=False)
    return tmp_path


def sync(server, *args):
    return CliRunner().invoke(app, ["sync", *args, "--url", server.url])


def test_what_a_loop_logs_is_stored_per_epoch_and_the_run_ends_succeeded(server):
    with armscope.init(name="my-avnet", config={"lr": 0.1}, modalities=["audio", "visual"], url=server.url,
                       **FAST) as run:
        for epoch in (1, 2):
            run.log({"val_acc": 0.5 + epoch / 10, "val_acc.audio": 0.3, "train_loss": 1.0 / epoch}, epoch=epoch)
            run.log({"shapley.audio": 0.1 * epoch}, epoch=epoch)
    stored = server.run(run.id)
    assert (stored["status"], stored["name"], stored["external"]) == ("succeeded", "my-avnet", True)
    records = server.metrics(run.id)
    assert [(r["epoch"], r["val_acc"], r["shapley.audio"]) for r in records] == [(1, 0.6, 0.1), (2, 0.7, 0.2)]


def test_an_exception_leaving_the_with_ends_the_run_failed_with_the_error(server):
    with pytest.raises(ZeroDivisionError):
        with armscope.init(name="broken", url=server.url, **FAST) as run:
            run.log({"val_acc": 0.5}, epoch=1)
            1 / 0
    stored = server.run(run.id)
    assert stored["status"] == "failed" and "ZeroDivisionError" in stored["error"]


def test_a_cancel_in_the_dashboard_sets_should_stop_and_the_run_ends_cancelled(server):
    with armscope.init(name="to-cancel", url=server.url, **FAST) as run:
        run.log({"val_acc": 0.5}, epoch=1)
        server.api.post(f"/runs/{run.id}/cancel")
        wait_for(lambda: run.should_stop, 20, "should_stop")
    assert server.run(run.id)["status"] == "cancelled"


def test_log_refuses_a_value_it_cannot_store_by_naming_its_key_and_keeps_nothing_of_the_call(server):
    with armscope.init(name="bad-values", url=server.url, **FAST) as run:
        with pytest.raises(ValueError, match="'hist'"):
            run.log({"val_acc": 0.5, "hist": [1, 2, 3]}, epoch=1)
    assert server.metrics(run.id) == []
    assert Spool(run.spool.folder).records() == ([], [])


def test_with_no_server_the_run_is_kept_offline_and_sync_uploads_it_once(server, capsys):
    with armscope.init(name="offline", url=f"http://127.0.0.1:{free_port()}", **FAST) as run:
        for epoch in (1, 2, 3):
            run.log({"val_acc": 0.1 * epoch}, epoch=epoch)
    assert run.offline and "kept offline" in capsys.readouterr().err
    first = sync(server, str(run.spool.folder))
    assert first.exit_code == 0, first.output
    run_id = Spool(run.spool.folder).uploaded()["run_id"]
    before = (server.run(run_id), server.metrics(run_id), server.api.get(f"/runs/{run_id}/events").json())
    assert before[0]["status"] == "succeeded" and [r["val_acc"] for r in before[1]] == [0.1, 0.2, 0.30000000000000004]
    second = sync(server, str(run.spool.folder))
    assert second.exit_code == 0 and "already on this server" in second.output
    after = (server.run(run_id), server.metrics(run_id), server.api.get(f"/runs/{run_id}/events").json())
    assert after == before


def test_offline_mode_sends_nothing_even_with_a_server(server):
    with armscope.init(name="offline-mode", mode="offline", url=server.url, **FAST) as run:
        run.log({"val_acc": 0.5}, epoch=1)
    names = [r["name"] for r in server.api.get("/runs", params={"method": "external"}).json()["items"]]
    assert run.offline and "offline-mode" not in names


def test_a_second_sync_of_an_already_synced_spool_changes_nothing_even_when_forced_to_resend(server):
    with armscope.init(name="resend", mode="offline", **FAST) as run:
        run.log({"val_acc": 0.5, "val_acc.audio": 0.25}, epoch=1)
    assert sync(server, str(run.spool.folder)).exit_code == 0
    run_id = Spool(run.spool.folder).uploaded()["run_id"]
    before = (server.run(run_id), server.metrics(run_id))
    (run.spool.folder / "server.json").unlink()  # as if the first sync's bookkeeping was lost
    assert sync(server, str(run.spool.folder)).exit_code == 0
    assert (server.run(run_id), server.metrics(run_id)) == before


def test_a_script_that_dies_is_marked_crashed_when_its_heartbeat_stops(server, home):
    script = textwrap.dedent(f"""
        import os, signal, armscope
        run = armscope.init(name="dies", url={server.url!r}, heartbeat_seconds=0.2, flush_seconds=0.05)
        run.log({{"val_acc": 0.5}}, epoch=1)
        import time
        while run.uploader.pending:
            time.sleep(0.05)
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    run_id = int(done.stdout.split()[0])
    crashed = server.wait_status(run_id, "crashed", timeout=30)
    assert server.metrics(run_id) == [{"epoch": 1, "val_acc": 0.5, "elapsed_seconds": pytest.approx(0, abs=5)}]
    assert "no heartbeat" in server.api.get(f"/runs/{run_id}/events").json()[-1]["message"]
    assert crashed["finished_at"] is not None


def test_killing_the_server_between_log_calls_loses_no_epoch_and_stores_each_once(tmp_path):
    (tmp_path / "server-home").mkdir()
    served = BareServer(tmp_path / "server-home").start()
    try:
        with armscope.init(name="survivor", url=served.url, **FAST) as run:
            for epoch in range(1, 4):
                run.log({"val_acc": epoch / 10}, epoch=epoch)
            wait_for(lambda: len(served.metrics(run.id)) == 3, 20, "the first epochs stored")
            served.kill()
            for epoch in range(4, 7):
                run.log({"val_acc": epoch / 10}, epoch=epoch)
            served.start()
            for epoch in range(7, 10):
                run.log({"val_acc": epoch / 10}, epoch=epoch)
        records = served.metrics(run.id)
        assert [r["epoch"] for r in records] == list(range(1, 10))
        assert [r["val_acc"] for r in records] == [e / 10 for e in range(1, 10)]
        assert served.run(run.id)["status"] == "succeeded"
    finally:
        served.stop()


def test_the_spool_holds_every_call_in_order_before_anything_is_sent(server):
    with armscope.init(name="spooled", url=server.url, **FAST) as run:
        run.log({"val_acc": 0.5}, epoch=1)
        run.log({"train_loss": 0.25}, epoch=1)
        run.log({"val_acc": 0.75})
    lines = (run.spool.folder / "records.jsonl").read_text().splitlines()
    assert [{k: v for k, v in json.loads(line).items() if k != "elapsed_seconds"} for line in lines] == [
        {"epoch": 1, "val_acc": 0.5}, {"epoch": 1, "train_loss": 0.25}, {"epoch": 2, "val_acc": 0.75}]


def test_the_server_and_token_come_from_the_environment_and_a_refused_token_stops_init(tmp_path, monkeypatch):
    (tmp_path / "guarded").mkdir()
    guarded = BareServer(tmp_path / "guarded", ARMSCOPE_API_TOKEN="s3cret-token-for-the-sdk").start()
    try:
        monkeypatch.setenv("ARMSCOPE_URL", guarded.url)
        monkeypatch.setenv("ARMSCOPE_API_TOKEN", "s3cret-token-for-the-sdk")
        with armscope.init(name="from-env", **FAST) as run:
            run.log({"val_acc": 0.5}, epoch=1)
        headers = {"Authorization": "Bearer s3cret-token-for-the-sdk"}
        assert guarded.api.get(f"/runs/{run.id}", headers=headers).json()["status"] == "succeeded"
        monkeypatch.setenv("ARMSCOPE_API_TOKEN", "a-wrong-token")
        with pytest.raises(ClientError) as refused:
            armscope.init(name="refused", **FAST)
        assert refused.value.status_code == 401
        assert [p.name for p in (tmp_path / "spool").iterdir()] == [run.spool.folder.name]  # nothing kept of it
    finally:
        guarded.stop()
