"""Files and messages a colleague on shared storage or the broker could plant are read as data, never run.

Each hostile payload, if it were unpickled, would create a marker file; the tests check the marker never appears.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
import torch
from fastapi.testclient import TestClient

from armscope.rundir import CheckpointError, RunDir
from armscope.train import train
from server.app import create_app
from service.queue import RUN_TASK, make_celery
from service.settings import Settings
from tests.service_support import service_env, start, stop, wait_for, wait_for_worker, wait_status
from tests.support import SLOW, without_timing

REDIS_URL = "redis://127.0.0.1:6379/11"


class RunsAShellCommand:
    """What an attacker saves in place of a checkpoint: unpickling it calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def plant_checkpoint(run_dir: Path, marker: Path) -> None:
    torch.save({"version": 1, "model": RunsAShellCommand(marker)}, run_dir / "checkpoints" / "last.pt")


def test_resuming_from_a_checkpoint_that_would_run_code_fails_naming_the_file(tiny_config, tmp_path):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    train(tiny_config(epochs=2), run)
    plant_checkpoint(run, marker)
    with pytest.raises(CheckpointError, match=r"checkpoints/last\.pt of run folder run was not loaded.*posix\.system"):
        train(tiny_config(epochs=4), run, resume=True)
    assert not marker.exists()


def test_a_refused_checkpoint_keeps_the_epochs_already_written(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(epochs=2), run)
    before = RunDir(run).metrics()
    plant_checkpoint(run, tmp_path / "pwned")
    with pytest.raises(CheckpointError):
        train(tiny_config(epochs=4), run, resume=True)
    assert RunDir(run).metrics() == before and [r["epoch"] for r in before] == [1, 2]


def test_a_checkpoint_of_garbage_bytes_fails_saying_it_is_not_a_checkpoint(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(epochs=1), run)
    (run / "checkpoints" / "last.pt").write_bytes(b"\x80\x04not a checkpoint at all")
    with pytest.raises(CheckpointError, match="checkpoints/last.pt of run folder run"):
        train(tiny_config(epochs=2), run, resume=True)


def test_a_checkpoint_that_is_not_a_dictionary_is_refused(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(epochs=1), run)
    torch.save([torch.zeros(2)], run / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="not a dictionary"):
        train(tiny_config(epochs=2), run, resume=True)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_every_optimizer_resumes_exactly_from_a_weights_only_checkpoint(tiny_config, tmp_path, optimizer):
    train(tiny_config(epochs=3, optimizer=optimizer), tmp_path / "whole")
    run = tmp_path / "run"
    train(tiny_config(epochs=1, optimizer=optimizer), run)
    train(tiny_config(epochs=3, optimizer=optimizer), run, resume=True)
    assert without_timing(RunDir(run).metrics()) == without_timing(RunDir(tmp_path / "whole").metrics())


@pytest.fixture
def lab(tmp_path, postgres_database):
    """One real worker process on Redis and PostgreSQL, and the API in this process."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    database = postgres_database()
    env = service_env(tmp_path, ARMSCOPE_DATABASE_URL=database, ARMSCOPE_BROKER_URL=REDIS_URL)
    worker = start(["worker", "--queues", "cpu"], env, tmp_path / "worker.log")
    try:
        wait_for_worker(tmp_path / "worker.log")
        settings = Settings(home=tmp_path, database_url=database, broker_url=REDIS_URL)
        with TestClient(create_app(settings)) as api:
            yield api, settings
    finally:
        stop(worker)


def test_retrying_a_run_whose_checkpoint_was_replaced_fails_it_without_running_the_code(lab, tmp_path):
    api, settings = lab
    marker = tmp_path / "pwned-by-checkpoint"
    run_id = api.post("/api/v1/runs", json=SLOW).json()["id"]
    wait_for(lambda: api.get(f"/api/v1/runs/{run_id}").json()["progress"]["epoch"] >= 1, 120, "epoch 1")
    api.post(f"/api/v1/runs/{run_id}/cancel")
    cancelled = wait_status(api, run_id, {"cancelled", "succeeded"}, 120)
    assert cancelled["status"] == "cancelled"
    kept = api.get(f"/api/v1/runs/{run_id}/metrics").json()
    plant_checkpoint(settings.run_dir(run_id), marker)
    api.post(f"/api/v1/runs/{run_id}/retry")
    failed = wait_status(api, run_id, {"failed", "succeeded"}, 120)
    assert failed["status"] == "failed"
    assert "checkpoints/last.pt" in failed["error"] and "was not loaded" in failed["error"]
    assert not marker.exists()
    assert api.get(f"/api/v1/runs/{run_id}/metrics").json() == kept and kept


def test_a_pickled_task_message_on_the_broker_is_refused_unread(lab, tmp_path):
    api, settings = lab
    marker = tmp_path / "pwned-by-message"
    celery = make_celery(settings)
    celery.send_task(RUN_TASK, args=[RunsAShellCommand(marker)], queue="cpu", serializer="pickle")
    # The worker takes messages in order: once a run sent after the hostile message has
    # trained, the hostile one has been dealt with.
    run_id = api.post("/api/v1/runs", json={**SLOW, "epochs": 1, "dataset_options": {"n_samples": 400}}).json()["id"]
    assert wait_status(api, run_id, {"succeeded", "failed"}, 120)["status"] == "succeeded"
    assert not marker.exists()
