"""Runs side by side on one worker share its cores instead of each taking them all."""

import pytest
import torch

from armscope.config import RunConfig
from server import worker
from service.db.store import Store
from service.settings import Settings
from workers.runner import execute

pytestmark = pytest.mark.unit


def test_each_of_a_worker_s_runs_gets_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(worker.os, "cpu_count", lambda: 8)
    assert [worker.threads_per_run(n) for n in (1, 2, 3, 16)] == [8, 4, 2, 1]


def test_a_run_trains_with_the_threads_the_worker_gives_it(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path / "home", run_threads=1)
    settings.ensure_home()
    store = Store(settings.resolved_database_url)
    store.upgrade()
    config = RunConfig.model_validate({"epochs": 1, "dataset_options": {"n_samples": 200, "dims": 4}, "device": "cpu"})
    run_id = store.create_run(config.model_dump(mode="json"), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    before = torch.get_num_threads()
    seen = []
    monkeypatch.setattr("workers.runner.train", lambda *args, **kwargs: seen.append(torch.get_num_threads()))
    try:
        execute(store, settings, run_id, "w")
    finally:
        torch.set_num_threads(before)
        store.dispose()
    assert seen == [1]
