"""Nothing started is lost: worker deaths (SIGKILL), for real, with Redis and PostgreSQL; and workers of
several processes run what a single one runs."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import redis
from fastapi.testclient import TestClient

from armscope.config import RunConfig
from armscope.rundir import RunDir
from armscope.train import train
from server.app import create_app
from service.settings import Settings
from tests.av_fixtures import make_cremad
from tests.service_support import finished, run_of, service_env, start, stop, wait_for, wait_for_worker
from tests.support import SLOW, without_timing

REDIS_URL = "redis://127.0.0.1:6379/10"
TIMEOUT = 3


@pytest.fixture
def lab(tmp_path, postgres_database):
    """A PostgreSQL database, Redis, an API in this process, and a way to start workers."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    database = postgres_database()
    env = service_env(tmp_path, ARMSCOPE_DATABASE_URL=database, ARMSCOPE_BROKER_URL=REDIS_URL,
                      ARMSCOPE_HEARTBEAT_TIMEOUT=str(TIMEOUT))
    workers = []

    def start_worker(name: str, *args: str, **extra: str):
        log = tmp_path / f"{name}.log"
        worker = start(["worker", "--queues", "cpu", *args], {**env, **extra}, log)
        workers.append(worker)
        wait_for_worker(log)
        return worker

    settings = Settings(home=tmp_path, database_url=database, broker_url=REDIS_URL, heartbeat_timeout=TIMEOUT)
    try:
        with TestClient(create_app(settings)) as api:
            yield api, start_worker
    finally:
        for worker in workers:
            stop(worker)


def event_kinds(api, run_id):
    return [e["kind"] for e in api.get(f"/api/v1/runs/{run_id}/events").json()]


def test_a_run_whose_worker_is_killed_is_resumed_by_another_worker(lab, tmp_path):
    api, start_worker = lab
    first = start_worker("first")
    run_id = api.post("/api/v1/runs", json=SLOW).json()["id"]
    wait_for(lambda: run_of(api, run_id)["progress"]["epoch"] >= 1, 60, "epoch 1")
    owner = run_of(api, run_id)["worker"]
    assert int(owner.rsplit(":", 1)[1]) == first.pid
    os.kill(first.pid, signal.SIGKILL)
    start_worker("second")
    run = finished(api, run_id)
    assert run["status"] == "succeeded" and run["attempt"] == 2 and run["worker"] != owner
    stored = api.get(f"/api/v1/runs/{run_id}/metrics").json()
    assert [m["epoch"] for m in stored] == [1, 2, 3, 4]
    events = api.get(f"/api/v1/runs/{run_id}/events").json()
    assert any(e["kind"] == "requeued" and "stopped heartbeating" in e["message"] for e in events)
    assert any(e["kind"] == "resumed" for e in events)
    train(RunConfig.model_validate(SLOW), tmp_path / "whole")
    assert without_timing(stored) == without_timing(RunDir(tmp_path / "whole").metrics())


def test_a_run_held_by_a_worker_killed_before_starting_it_is_run_by_another(lab):
    api, start_worker = lab
    holder = start_worker("holder", ARMSCOPE_DELIVERY_PAUSE_SECONDS="600")
    run_id = api.post("/api/v1/runs", json={**SLOW, "epochs": 1, "dataset_options": {"n_samples": 400}}).json()["id"]
    wait_for(lambda: run_of(api, run_id)["delivered_to"], 60, "the run to be delivered")
    assert run_of(api, run_id)["status"] == "queued"
    os.kill(holder.pid, signal.SIGKILL)
    start_worker("rescuer")
    run = finished(api, run_id)
    assert run["status"] == "succeeded" and run["attempt"] == 1
    events = api.get(f"/api/v1/runs/{run_id}/events").json()
    assert any(e["kind"] == "requeued" and "before starting it" in e["message"] for e in events)


def test_a_run_stored_but_never_sent_to_the_queue_is_sent_by_a_reaper(lab):
    api, start_worker = lab
    # What a server that died between storing a run and publishing its message leaves behind.
    config = RunConfig.model_validate({**SLOW, "epochs": 1, "dataset_options": {"n_samples": 400}})
    run_id = api.app.state.store.create_run(config.model_dump(mode="json"), queue="cpu")["id"]
    start_worker("worker")
    run = finished(api, run_id)
    assert run["status"] == "succeeded" and run["attempt"] == 1
    events = api.get(f"/api/v1/runs/{run_id}/events").json()
    assert any(e["kind"] == "republished" for e in events)


def test_a_queued_run_whose_message_a_broker_restart_forgot_is_sent_again(lab):
    api, start_worker = lab
    run_id = api.post("/api/v1/runs", json={**SLOW, "epochs": 1, "dataset_options": {"n_samples": 400}}).json()["id"]
    redis.Redis.from_url(REDIS_URL).flushdb()  # what a Redis restart without persistence leaves: nothing
    start_worker("worker")
    run = finished(api, run_id)
    assert run["status"] == "succeeded"
    events = api.get(f"/api/v1/runs/{run_id}/events").json()
    assert any(e["kind"] == "republished" and "broker restarted" in e["message"] for e in events)


def restart_redis() -> None:
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, capture_output=True)
    wait_for(lambda: subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True).returncode != 0,
             20, "redis to stop")
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
                    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
                    "--logfile", "/var/log/redis/ci.log"], check=True, capture_output=True)
    wait_for(lambda: subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True).returncode == 0,
             20, "redis to start")


def restart_postgres() -> None:
    cluster = os.listdir("/etc/postgresql")[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"], check=True,
                   capture_output=True)
    wait_for(lambda: subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0, 30, "postgres")


def polled(api, run_id):
    """The run as the API shows it, or None while the API cannot reach its database."""
    try:
        response = api.get(f"/api/v1/runs/{run_id}")
    except Exception:
        return None
    return response.json() if response.status_code == 200 else None


@pytest.mark.parametrize("restart", [restart_redis, restart_postgres], ids=["redis", "postgresql"])
def test_a_server_restarted_mid_run_loses_nothing(lab, restart):
    api, start_worker = lab
    start_worker("worker", ARMSCOPE_HEARTBEAT_TIMEOUT="60")
    run_id = api.post("/api/v1/runs", json=SLOW).json()["id"]
    wait_for(lambda: (r := polled(api, run_id)) and r["progress"]["epoch"] >= 1, 60, "epoch 1")
    restart()
    run = wait_for(lambda: (r := polled(api, run_id)) and r["status"] in ("succeeded", "failed") and r, 120, "the run")
    assert run["status"] == "succeeded", run["error"]
    assert [m["epoch"] for m in api.get(f"/api/v1/runs/{run_id}/metrics").json()] == [1, 2, 3, 4]
    after = wait_for(lambda: (r := api.post("/api/v1/runs", json={**SLOW, "epochs": 1})).status_code == 201 and r.json(),
                     30, "a submission after the restart")
    done = wait_for(lambda: (r := polled(api, after["id"])) and r["status"] in ("succeeded", "failed") and r, 120,
                    "the run submitted after the restart")
    assert done["status"] == "succeeded"


def test_a_worker_with_several_processes_runs_data_sets_that_decode_in_loader_processes(lab, tmp_path):
    api, start_worker = lab
    start_worker("prefork", "--concurrency", "2")
    fixture = make_cremad(tmp_path / "cremad", n_train=8, n_test=4, frames=1)
    config = {
        "dataset": "cremad", "epochs": 1, "batch_size": 4, "method": "baseline", "device": "cpu",
        "dataset_options": {"root": str(fixture.root), "image_size": 16, "frames": 1, "num_workers": 2},
        "model_options": {"feature_dim": 8, "encoder": {"name": "mlp", "hidden": [8]}},
    }
    run_id = api.post("/api/v1/runs", json=config).json()["id"]
    run = finished(api, run_id)
    assert run["status"] == "succeeded", run.get("error")


def test_stopping_a_worker_of_several_processes_hands_its_running_runs_back_at_once(lab):
    api, start_worker = lab
    worker = start_worker("prefork", "--concurrency", "2")
    run_id = api.post("/api/v1/runs", json={**SLOW, "epochs": 30}).json()["id"]
    wait_for(lambda: run_of(api, run_id)["progress"]["epoch"] >= 1, 60, "epoch 1")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(40) is not None
    assert run_of(api, run_id)["status"] == "queued"
    assert "requeued" in event_kinds(api, run_id)
    start_worker("next")
    wait_for(lambda: "resumed" in event_kinds(api, run_id), 60, "the run to resume")
    api.post(f"/api/v1/runs/{run_id}/cancel")


def test_a_run_on_a_worker_of_several_processes_killed_outright_still_ends_with_all_its_epochs(lab):
    api, start_worker = lab
    worker = start_worker("prefork", "--concurrency", "2")
    run_id = api.post("/api/v1/runs", json=SLOW).json()["id"]
    wait_for(lambda: run_of(api, run_id)["progress"]["epoch"] >= 1, 60, "epoch 1")
    os.kill(worker.pid, signal.SIGKILL)
    start_worker("next")
    run = finished(api, run_id)
    assert run["status"] == "succeeded"
    assert [m["epoch"] for m in api.get(f"/api/v1/runs/{run_id}/metrics").json()] == [1, 2, 3, 4]
    # Its pool processes go down with it: the reaper takes the run back and the next worker resumes it.
    assert run["attempt"] == 2 and "resumed" in event_kinds(api, run_id)
