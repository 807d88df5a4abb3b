"""What a run records of where and with what it trained (README "Reproducibility"): the engine's record, the
worker's copy in the store, the API's and the SDK's."""

from __future__ import annotations

import json
import platform
import socket
import subprocess

import pytest
import torch

import armscope
from armscope import environment
from armscope.config import RunConfig
from armscope.data.errors import DataError
from armscope.rundir import RunDir
from armscope.sinks import Sink
from armscope.train import train
from service.db.store import Store
from service.settings import Settings
from tests.browser_support import ROOT
from tests.plugin_support import run_python
from workers.runner import execute

TINY = {"epochs": 2, "device": "auto", "dataset_options": {"n_samples": 200, "dims": 4},
        "model_options": {"feature_dim": 8, "encoder": {"name": "mlp", "hidden": [8]}}}


class Calls(Sink):
    """The sink hooks a run calls, in order, with what the environment hook was given."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.environments: list[dict] = []

    def environment(self, record: dict) -> None:
        self.calls.append("environment")
        self.environments.append(record)

    def start(self, config: dict, info: dict) -> None:
        self.calls.append("start")

    def finish(self, status: str, error: str | None) -> None:
        self.calls.append("finish")


def git(folder, *args: str) -> str:
    """A git command in a repository the test made (never the project's own)."""
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(folder), *args],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repository(tmp_path):
    """A git repository with one committed config file."""
    folder = tmp_path / "study"
    folder.mkdir()
    git(folder, "init", "-q")
    (folder / "run.json").write_text(json.dumps({"method": "baseline"}))
    git(folder, "add", "run.json")
    git(folder, "commit", "-q", "-m", "first")
    return folder


# -- the engine's record -----------------------------------------------------------------------------


def test_a_run_records_the_device_auto_chose_and_its_software_before_anything_else(tmp_path):
    sink = Calls()
    train(RunConfig.model_validate(TINY), tmp_path / "run", sink)
    assert sink.calls[:2] == ["environment", "start"]
    first = sink.environments[0]
    assert (first["device"], first["device_requested"], first["gpu"]) == ("cpu", "auto", None)
    assert (first["torch"], first["armscope"], first["python"]) == (
        torch.__version__, armscope.__version__, platform.python_version())
    assert (first["host"], first["threads"], first["dataloader_workers"]) == (
        socket.gethostname(), torch.get_num_threads(), 0)


def test_the_run_folder_keeps_the_record_with_the_largest_peak_memory_of_its_epochs(tmp_path):
    sink = Calls()
    train(RunConfig.model_validate(TINY), tmp_path / "run", sink)
    peaks = [r["peak_memory_mb"] for r in RunDir(tmp_path / "run").metrics()]
    stored = environment.read(tmp_path / "run")
    assert stored["peak_memory_mb"] == pytest.approx(max(peaks), abs=0.05)
    assert sink.environments[0]["peak_memory_mb"] is None and sink.environments[-1] == stored
    assert sink.calls[-2:] == ["environment", "finish"]


def test_a_run_that_fails_loading_its_data_has_recorded_its_environment(tmp_path):
    config = RunConfig.model_validate({**TINY, "dataset": "features", "dataset_options": {"root": str(tmp_path)}})
    sink = Calls()
    with pytest.raises(DataError):
        train(config, tmp_path / "run", sink)
    assert sink.calls == ["environment"] and environment.read(tmp_path / "run")["device"] == "cpu"


def test_a_resume_on_another_host_is_an_event_naming_the_change_and_keeps_the_larger_peak(tmp_path):
    folder = tmp_path / "run"
    train(RunConfig.model_validate({**TINY, "epochs": 1}), folder)
    moved = {**environment.read(folder), "host": "elsewhere", "peak_memory_mb": 1e6}
    environment.write(folder, moved)
    train(RunConfig.model_validate(TINY), folder, resume=True)
    (event,) = [e for e in RunDir(folder).events() if e["kind"] == "environment_changed"]
    assert event["level"] == "warning" and f"host: elsewhere -> {socket.gethostname()}" in event["message"]
    assert environment.read(folder)["peak_memory_mb"] == 1e6


def test_git_state_is_the_commit_and_whether_tracked_files_changed(repository):
    head = git(repository, "rev-parse", "HEAD")
    (repository / "notes.txt").write_text("untracked files do not count")
    assert environment.git_state(repository / "run.json") == {
        "repository": str(repository), "commit": head, "dirty": False}
    (repository / "run.json").write_text("{}")
    assert environment.git_state(repository)["dirty"] is True


def test_outside_a_git_checkout_there_is_no_commit(tmp_path):
    assert environment.git_state(tmp_path) is None


def test_the_config_file_s_repository_is_recorded_as_the_run_s_source(tmp_path, repository):
    train(RunConfig.model_validate({**TINY, "epochs": 1}), tmp_path / "run", source=repository / "run.json")
    source = environment.read(tmp_path / "run")["source"]
    assert source == {"path": str(repository / "run.json"),
                      "git": {"repository": str(repository), "commit": git(repository, "rev-parse", "HEAD"),
                              "dirty": False}}


# -- the worker's copy in the store, and the API -------------------------------------------------------


def test_a_worker_stores_the_environment_and_a_finished_run_ends_at_its_last_step(tmp_path):
    # No heartbeat comes within the run (60 s apart): what the store holds at the end came with the finish.
    settings = Settings(home=tmp_path / "home", heartbeat_seconds=60)
    settings.ensure_home()
    store = Store(settings.resolved_database_url)
    store.upgrade()
    try:
        run_id = store.create_run(RunConfig.model_validate(TINY).model_dump(mode="json"), queue="cpu")["id"]
        store.claim_run(run_id, "w")
        assert execute(store, settings, run_id, "w") == "succeeded"
        run = store.get_run(run_id)
    finally:
        store.dispose()
    assert run["progress"]["step"] == run["progress"]["total_steps"] > 0
    assert run["environment"] == environment.read(settings.run_dir(run_id))
    assert run["environment"]["peak_memory_mb"] > 0


def test_only_the_worker_holding_a_run_records_its_environment(store):
    run_id = store.create_run(RunConfig.model_validate(TINY).model_dump(mode="json"), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    assert not store.set_environment(run_id, "another", {"host": "elsewhere"})
    assert store.set_environment(run_id, "w", {"host": "here", "gpu": None})
    assert store.get_run(run_id)["environment"] == {"host": "here", "gpu": None}



def test_the_api_returns_a_run_s_environment_and_null_before_it_starts(api, store):
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    assert api.get(f"/api/v1/runs/{run_id}").json()["environment"] is None
    store.claim_run(run_id, "w")
    store.set_environment(run_id, "w", {"device": "cuda:0", "gpu": {"name": "H200", "memory_mb": 143771}})
    assert api.get(f"/api/v1/runs/{run_id}").json()["environment"]["gpu"]["name"] == "H200"


def test_an_external_run_s_environment_comes_with_its_start_request(api):
    sent = environment.script_environment()
    run = api.post("/api/v1/external-runs",
                   json={"key": "20261130-abcdef123456", "name": "mine", "environment": sent}).json()
    assert api.get(f"/api/v1/runs/{run['id']}").json()["environment"] == sent


@pytest.mark.service  # a fresh interpreter
def test_the_sdk_records_a_script_s_environment_without_loading_torch(tmp_path):
    loaded = run_python(
        """
        import json, sys
        from armscope.environment import script_environment
        record = script_environment()
        print(json.dumps(["torch" in sys.modules, record.get("torch"), record["source"]["path"], record["python"]]))
        """
    )
    # Without a script file (python -c), the source is the working directory.
    assert loaded == [False, None, str(ROOT), platform.python_version()]


def test_an_sdk_run_keeps_its_environment_in_its_spool_for_sync_to_send(tmp_path):
    import armscope.tracking.run as sdk
    from armscope.tracking.spool import Spool

    run = sdk.init(name="offline", mode="offline", spool_dir=tmp_path / "spool")
    run.finish()
    sent = Spool(tmp_path / "spool").run()["environment"]
    assert (sent["python"], sent["armscope"], sent["host"]) == (
        platform.python_version(), armscope.__version__, socket.gethostname())


@pytest.mark.gpu
def test_a_run_on_a_gpu_records_the_card_it_used_and_its_peak_memory(tmp_path):
    train(RunConfig.model_validate({**TINY, "epochs": 1}), tmp_path / "run")
    record = environment.read(tmp_path / "run")
    card = torch.cuda.get_device_properties(0)
    assert (record["device"], record["cuda"]) == ("cuda:0", torch.version.cuda)
    assert record["gpu"] == {"name": card.name, "memory_mb": round(card.total_memory / 2**20),
                             "capability": f"{card.major}.{card.minor}", "count": torch.cuda.device_count()}
    assert record["peak_memory_mb"] == pytest.approx(RunDir(tmp_path / "run").metrics()[0]["peak_memory_mb"], abs=0.05)
