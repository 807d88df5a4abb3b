"""/health, read from the database on SQLite and PostgreSQL: the workers it knows, and 503 while runs wait
in a queue that no live worker takes from."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.schemas import Health
from server.app import create_app
from service.db.store import Store
from service.settings import Settings
from tests.fakes import RecordingQueue
from tests.service_support import wait_for
from tests.support import STORED as CONFIG

pytestmark = pytest.mark.service  # every test here builds the whole app

TOKEN = "health-write-token"


def health_client(store: Store, tmp_path, **settings) -> TestClient:
    return TestClient(create_app(Settings(home=tmp_path / "home", **settings), store, RecordingQueue()))


def get_health(api: TestClient, **headers: str) -> tuple[int, dict]:
    response = api.get("/api/v1/health", headers=headers)
    return response.status_code, Health.model_validate(response.json()).model_dump(mode="json")


def test_with_no_runs_and_no_workers_the_service_is_ok(store, tmp_path):
    with health_client(store, tmp_path) as api:
        status, body = get_health(api)
    assert status == 200 and body["status"] == "ok" and body["workers"] == [] and body["unserved_queues"] == []


def test_a_run_waiting_in_a_queue_no_live_worker_takes_from_makes_it_503_naming_the_queue(store, tmp_path):
    store.worker_alive("armscope-1@cpu-box", "cpu")
    store.create_run(CONFIG, queue="gpu")
    store.create_run(CONFIG, queue="gpu")
    store.create_run(CONFIG, queue="cpu")
    with health_client(store, tmp_path) as api:
        status, body = get_health(api)
    assert status == 503 and body["status"] == "degraded"
    assert body["unserved_queues"] == ["gpu"] and body["queued"] == {"gpu": 2, "cpu": 1}
    assert body["detail"] == "no live worker takes runs from queue 'gpu' (2 waiting)"


def test_a_live_worker_for_every_queue_with_waiting_runs_makes_it_ok(store, tmp_path):
    store.worker_alive("armscope-1@box", "cpu,gpu")
    store.create_run(CONFIG, queue="gpu")
    with health_client(store, tmp_path) as api:
        status, body = get_health(api)
    assert status == 200 and body["status"] == "ok" and body["queued"] == {"gpu": 1}


def test_a_worker_silent_for_longer_than_the_heartbeat_timeout_is_listed_dead_and_serves_nothing(store, tmp_path):
    store.worker_alive("armscope-1@box", "cpu")
    store.create_run(CONFIG, queue="cpu")
    with health_client(store, tmp_path, heartbeat_timeout=0.2) as api:
        status, body = wait_for(lambda: (answer := get_health(api))[0] == 503 and answer, 10, "the worker to go silent")
    (worker,) = body["workers"]
    assert worker["name"] == "armscope-1@box" and worker["alive"] is False and body["unserved_queues"] == ["cpu"]


def test_each_worker_is_listed_with_its_queues_heartbeat_and_the_runs_its_processes_hold(store, tmp_path):
    store.worker_alive("armscope-1@box", "cpu,gpu")
    store.worker_alive("armscope-2@box", "cpu")
    held = [store.create_run(CONFIG, queue="cpu")["id"] for _ in range(3)]
    store.claim_run(held[0], "armscope-1@box:11")
    store.claim_run(held[1], "armscope-1@box:12")  # a second pool process of the same worker
    store.claim_run(held[2], "armscope-2@box:21")
    with health_client(store, tmp_path) as api:
        status, body = get_health(api)
    listed = {w["name"]: w for w in body["workers"]}
    assert status == 200 and set(listed) == {"armscope-1@box", "armscope-2@box"}
    assert listed["armscope-1@box"]["queues"] == ["cpu", "gpu"] and listed["armscope-1@box"]["runs"] == held[:2]
    assert listed["armscope-2@box"]["runs"] == [held[2]]
    assert all(w["alive"] and w["heartbeat_at"] >= w["started_at"] for w in listed.values())


def test_workers_are_named_only_to_callers_who_may_read_the_api(store, tmp_path):
    store.worker_alive("armscope-1@box", "cpu")
    with health_client(store, tmp_path, api_token=TOKEN) as api:
        anonymous = get_health(api)
        forged = get_health(api, authorization="Bearer not-the-token")
        reader = get_health(api, authorization=f"Bearer {TOKEN}")
    assert anonymous == forged and anonymous[0] == 200 and anonymous[1]["workers"] is None
    assert [w["name"] for w in reader[1]["workers"]] == ["armscope-1@box"]


def test_a_database_that_does_not_answer_makes_it_503(tmp_path):
    (tmp_path / "armscope.db").mkdir()  # SQLite cannot open a folder as its file
    store = Store(f"sqlite:///{tmp_path / 'armscope.db'}")
    with health_client(store, tmp_path) as api:
        status, body = get_health(api)
    store.dispose()
    assert status == 503 and body["status"] == "degraded" and body["workers"] is None
    assert body["detail"] == "the database did not answer (OperationalError)"
