"""The service with its real parts: API -> Redis -> Celery worker processes -> PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from fastapi.testclient import TestClient

from armscope.client import Client
from armscope.config import RunConfig
from armscope.rundir import RunDir
from armscope.train import train
from server.app import create_app
from service.db.store import Store
from service.settings import Settings
from tests.service_support import (
    free_port,
    service_env,
    start,
    stop,
    wait_for,
    wait_for_server,
    wait_for_worker,
    wait_status,
)
from tests.support import SLOW, without_timing

REDIS_URL = "redis://127.0.0.1:6379/9"
TINY = {"method": "arm", "epochs": 2, "dataset_options": {"n_samples": 400, "dims": 8},
        "model_options": {"feature_dim": 16}, "device": "cpu"}

pytestmark = pytest.mark.service  # every test here starts workers or servers


@pytest.fixture(scope="module")
def lab(tmp_path_factory, postgres_database):
    """Two worker processes on Redis and a fresh PostgreSQL database, and an API in this process."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    home = tmp_path_factory.mktemp("lab")
    database = postgres_database()
    env = service_env(home, ARMSCOPE_DATABASE_URL=database, ARMSCOPE_BROKER_URL=REDIS_URL)
    workers = [start(["worker", "--queues", "cpu"], env, home / f"worker{i}.log") for i in range(2)]
    try:
        for i in range(2):
            wait_for_worker(home / f"worker{i}.log")
        settings = Settings(home=home, database_url=database, broker_url=REDIS_URL)
        with TestClient(create_app(settings)) as api:
            yield api, settings
    finally:
        for worker in workers:
            stop(worker)


def test_a_submitted_run_is_trained_by_a_worker_and_its_metrics_are_served(lab):
    api, _ = lab
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    run = wait_status(api, run_id, {"succeeded", "failed"})
    assert run["status"] == "succeeded", run["error"]
    assert run["worker"] and run["progress"]["fraction"] == 1.0 and run["best_val_acc"] > 0
    metrics = api.get(f"/api/v1/runs/{run_id}/metrics").json()
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert {"shapley.audio", "arm_weight.visual", "dominant"} <= set(metrics[0])


def test_cancelling_a_queued_run_means_it_never_starts(lab):
    api, _ = lab
    # No worker here listens on the gpu queue, so this run stays queued.
    run_id = api.post("/api/v1/runs", json={**TINY, "device": "cuda"}).json()["id"]
    assert api.get(f"/api/v1/runs/{run_id}").json()["queue"] == "gpu"
    assert api.post(f"/api/v1/runs/{run_id}/cancel").json()["status"] == "cancelled"
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["started_at"] is None and run["attempt"] == 0


def test_cancelling_a_running_run_stops_it_within_a_batch(lab):
    api, _ = lab
    run_id = api.post("/api/v1/runs", json={**SLOW, "epochs": 50}).json()["id"]
    wait_for(lambda: api.get(f"/api/v1/runs/{run_id}").json()["progress"]["step"] > 0, 60, "training to start")
    api.post(f"/api/v1/runs/{run_id}/cancel")
    run = wait_status(api, run_id, {"cancelled"})
    assert run["progress"]["epoch"] < 50  # stopped mid-run, not after its 50 epochs
    assert any(e["kind"] == "cancelled" for e in api.get(f"/api/v1/runs/{run_id}/events").json())


def test_retry_resumes_from_the_last_checkpoint_and_ends_as_an_uninterrupted_run(lab, tmp_path):
    api, settings = lab
    run_id = api.post("/api/v1/runs", json=SLOW).json()["id"]
    wait_for(lambda: api.get(f"/api/v1/runs/{run_id}").json()["progress"]["epoch"] >= 1, 60, "epoch 1")
    api.post(f"/api/v1/runs/{run_id}/cancel")
    cancelled = wait_status(api, run_id, {"cancelled", "succeeded"})
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["epoch"] < 4
    api.post(f"/api/v1/runs/{run_id}/retry")
    run = wait_status(api, run_id, {"succeeded", "failed"})
    assert run["status"] == "succeeded" and run["attempt"] == 2
    stored = api.get(f"/api/v1/runs/{run_id}/metrics").json()
    assert [m["epoch"] for m in stored] == [1, 2, 3, 4]
    assert any(e["kind"] == "resumed" for e in api.get(f"/api/v1/runs/{run_id}/events").json())
    train(RunConfig.model_validate(SLOW), tmp_path / "whole")
    assert without_timing(stored) == without_timing(RunDir(tmp_path / "whole").metrics())


def test_two_workers_never_own_one_run_even_when_a_task_is_delivered_twice(lab):
    api, _ = lab
    queue = api.app.state.queue
    ids = [api.post("/api/v1/runs", json={**TINY, "seed": s}).json()["id"] for s in range(4)]
    for run_id in ids:
        queue.enqueue(run_id, "cpu")
    for run_id in ids:
        run = wait_status(api, run_id, {"succeeded", "failed"})
        assert run["status"] == "succeeded" and run["attempt"] == 1
        assert [m["epoch"] for m in api.get(f"/api/v1/runs/{run_id}/metrics").json()] == [1, 2]


@contextmanager
def serving(home: Path, *options: str, **env: str):
    """`armscope serve` with nothing but a home folder: SQLite, embedded broker, embedded worker."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(["serve", "--port", str(port), *options], service_env(home, **env), home / "serve.log")
    try:
        wait_for_server(url)
        yield url, server
    finally:
        stop(server)


@pytest.fixture
def laptop(tmp_path):
    with serving(tmp_path) as (url, server):
        yield url, server, tmp_path


def embedded_worker_pid(log: Path) -> int:
    """The pid of the embedded worker serve started last (first at startup, then at each restart)."""
    return int(re.findall(r"embedded worker pid (\d+)", log.read_text())[-1])


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_serve_runs_submitted_jobs_with_nothing_else_installed(laptop):
    url, _, home = laptop
    with Client(url) as client:
        run = client.submit(TINY)
        final = client.wait(run["id"], timeout=90, progress=False)
        assert final["status"] == "succeeded", final["error"]
        assert len(client.metrics(run["id"])) == 2
    assert (home / "armscope.db").exists() and (home / "runs" / str(run["id"]) / "checkpoints" / "last.pt").exists()


def test_submit_command_waits_for_the_run(laptop, tmp_path):
    url, _, _ = laptop
    config = tmp_path / "run.yaml"
    config.write_text("method: baseline\nepochs: 1\ndevice: cpu\ndataset_options: {n_samples: 300}\n")
    done = subprocess.run([sys.executable, "-m", "armscope", "submit", "--config", str(config), "--wait",
                           "--url", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ctrl_c_stops_server_and_worker(laptop):
    url, server, home = laptop
    log = home / "serve.log"
    wait_for_worker(log)
    worker_pid = embedded_worker_pid(log)
    server.send_signal(signal.SIGINT)
    assert server.wait(40) == 0
    assert not alive(worker_pid)
    assert "Warm shutdown" in log.read_text() and "starting another" not in log.read_text()


def test_a_terminated_server_takes_its_worker_down(laptop):
    url, server, home = laptop
    log = home / "serve.log"
    wait_for_worker(log)
    worker_pid = embedded_worker_pid(log)
    server.terminate()
    server.wait(40)
    wait_for(lambda: not alive(worker_pid), 40, "the worker to exit")


def children_of(pid: int) -> dict[int, str]:
    """The live child processes of ``pid``, with their command lines."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue  # the process ended while being read
    return found


def test_serve_with_two_processes_starts_two_server_processes_trains_runs_and_stops_them_all(tmp_path):
    with serving(tmp_path, "--processes", "2") as (url, server):
        servers = wait_for(lambda: len(s := [p for p, c in children_of(server.pid).items() if "spawn_main" in c]) == 2
                           and s, 30, "two server processes")
        with Client(url) as client:
            run = client.submit(TINY)
            assert client.wait(run["id"], timeout=90, progress=False)["status"] == "succeeded"
            assert len(client.metrics(run["id"])) == 2
        worker_pid = embedded_worker_pid(tmp_path / "serve.log")
        server.terminate()
        assert server.wait(40) == 0
        assert not [p for p in [*servers, worker_pid] if alive(p)]
        assert "2 server processes" in (tmp_path / "serve.log").read_text()


def test_a_run_interrupted_by_ctrl_c_resumes_on_the_next_start(laptop):
    url, server, home = laptop
    with Client(url) as client:
        run_id = client.submit({**SLOW, "epochs": 30})["id"]
        wait_for(lambda: client.get(run_id)["progress"]["epoch"] >= 1, 60, "epoch 1")
    server.send_signal(signal.SIGINT)
    assert server.wait(40) == 0
    port = free_port()
    restarted = start(["serve", "--port", str(port)], service_env(home), home / "serve2.log")
    try:
        wait_for_server(f"http://127.0.0.1:{port}")
        with Client(f"http://127.0.0.1:{port}") as client:
            assert client.get(run_id)["status"] in ("queued", "running")
            # The run may have finished epoch 2 before the stop: wait for the resume itself.
            wait_for(lambda: "resumed" in [e["kind"] for e in client.events(run_id)], 60, "the run to resume")
            wait_for(lambda: client.get(run_id)["progress"]["epoch"] >= 2, 60, "an epoch after the restart")
            assert "requeued" in [e["kind"] for e in client.events(run_id)]
            client.cancel(run_id)
    finally:
        stop(restarted)


def test_ctrl_c_hands_the_runs_of_an_embedded_worker_of_several_processes_back_at_once(tmp_path):
    """The embedded broker makes Celery's pool run with threads, and billiard then resets every signal handler
    its processes had: the stop signal ended them outright and their runs waited for the reaper instead."""
    with serving(tmp_path, "--concurrency", "2") as (url, server):
        with Client(url) as client:
            run_ids = [client.submit({**SLOW, "epochs": 30, "seed": seed})["id"] for seed in (0, 1)]
            for run_id in run_ids:
                wait_for(lambda run_id=run_id: client.get(run_id)["progress"]["epoch"] >= 1, 90, "epoch 1")
        server.send_signal(signal.SIGINT)
        assert server.wait(40) == 0
    store = Store(f"sqlite:///{tmp_path / 'armscope.db'}")
    try:
        for run_id in run_ids:
            assert store.get_run(run_id)["status"] == "queued"
            kinds = [e["kind"] for e in store.events(run_id)]
            assert "requeued" in kinds and "cancelled" not in kinds
    finally:
        store.dispose()
    assert "exitcode 70" not in (tmp_path / "serve.log").read_text()


def test_a_killed_embedded_worker_is_reaped_and_restarted_and_the_new_one_finishes_its_run(tmp_path):
    with serving(tmp_path, ARMSCOPE_HEARTBEAT_TIMEOUT="3") as (url, server):
        log = tmp_path / "serve.log"
        killed = embedded_worker_pid(log)
        with Client(url) as client:
            run_id = client.submit({**SLOW, "epochs": 3})["id"]
            wait_for(lambda: client.get(run_id)["progress"]["epoch"] >= 1, 90, "epoch 1")
            os.kill(killed, signal.SIGKILL)
            restarted = wait_for(lambda: (pid := embedded_worker_pid(log)) != killed and pid, 60, "another worker")
            assert killed not in children_of(server.pid) and restarted in children_of(server.pid)  # reaped
            assert f"the embedded worker (pid {killed}) was killed by SIGKILL" in log.read_text()
            final = client.wait(run_id, timeout=240, progress=False)
            assert final["status"] == "succeeded", final["error"]
            assert [m["epoch"] for m in client.metrics(run_id)] == [1, 2, 3]
            events = client.events(run_id)
        assert any(e["kind"] == "requeued" and f"armscope-{killed}@" in e["message"] for e in events)
        assert "resumed" in [e["kind"] for e in events]


def test_health_lists_the_embedded_worker_alive_with_the_run_it_trains(laptop):
    url, _, home = laptop
    wait_for_worker(home / "serve.log")
    pid = embedded_worker_pid(home / "serve.log")
    with Client(url) as client:
        run_id = client.submit({**SLOW, "epochs": 50})["id"]
        wait_for(lambda: client.get(run_id)["status"] == "running", 60, "the run to start")
        health = client.health()
        client.cancel(run_id)
    (worker,) = health["workers"]
    assert worker["name"].startswith(f"armscope-{pid}@") and sorted(worker["queues"]) == ["cpu", "gpu"]
    assert worker["alive"] and worker["heartbeat_at"] and worker["runs"] == [run_id]
    assert health["status"] == "ok"


def compose_healthcheck_passes(url: str) -> bool:
    """docker-compose.yml's healthcheck of the API, pointed at ``url``."""
    root = Path(__file__).resolve().parents[1]
    command = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]["api"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    code = command[3].replace("http://127.0.0.1:8000", url)
    return subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0


def test_health_is_503_while_runs_wait_with_no_worker_and_200_once_one_is_up(tmp_path):
    with serving(tmp_path, "--no-worker") as (url, _):
        with Client(url) as client:
            run_id = client.submit(TINY)["id"]
            waiting = httpx.get(f"{url}/api/v1/health")
            assert waiting.status_code == 503 and waiting.json()["unserved_queues"] == ["cpu"]
            assert compose_healthcheck_passes(url)  # so compose still starts the workers that fix it
            worker = start(["worker", "--queues", "cpu"], service_env(tmp_path), tmp_path / "worker.log")
            try:
                wait_for(lambda: httpx.get(f"{url}/api/v1/health").status_code == 200, 60, "health 200")
                assert client.wait(run_id, timeout=90, progress=False)["status"] == "succeeded"
            finally:
                stop(worker)
