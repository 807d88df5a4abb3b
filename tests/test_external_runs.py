"""External runs over the API: what the SDK relies on, on both databases."""

from __future__ import annotations

import pytest

KEY = "20261130-abcdef123456"



def start(api, key=KEY, **spec):
    return api.post("/api/v1/external-runs", json={"key": key, "name": "my-avnet", **spec})


def log(api, run_id, records, key=KEY):
    return api.post(f"/api/v1/runs/{run_id}/log", json={"key": key, "records": records})


def test_starting_an_external_run_makes_it_running_with_its_config_and_modalities(api):
    response = start(api, config={"lr": 0.1}, modalities=["audio", "visual"], tags=["ks"], epochs=5)
    run = response.json()
    assert response.status_code == 201
    assert (run["status"], run["method"], run["external"], run["tags"]) == ("running", "external", True, ["ks"])
    assert run["config"] == {"lr": 0.1, "modalities": ["audio", "visual"]}
    assert run["progress"]["epochs"] == 5


def test_starting_again_with_the_same_key_answers_the_same_run(api):
    first = start(api).json()
    again = start(api)
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert len(api.get("/api/v1/runs").json()["items"]) == 1


def test_records_of_one_epoch_merge_key_by_key(api):
    run_id = start(api).json()["id"]
    log(api, run_id, [{"epoch": 1, "val_acc": 0.5, "train_loss": 2.0}])
    log(api, run_id, [{"epoch": 1, "val_acc": 0.6, "shapley.audio": 0.2}])
    assert api.get(f"/api/v1/runs/{run_id}/metrics").json() == [
        {"epoch": 1, "val_acc": 0.6, "train_loss": 2.0, "shapley.audio": 0.2}
    ]


def test_a_batch_sent_twice_is_stored_once(api):
    run_id = start(api).json()["id"]
    batch = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7, "dominant": "audio"}]
    log(api, run_id, batch)
    log(api, run_id, batch)
    assert api.get(f"/api/v1/runs/{run_id}/metrics").json() == batch


def test_the_run_summary_follows_the_latest_epoch_and_the_best_accuracy(api):
    run_id = start(api).json()["id"]
    log(api, run_id, [{"epoch": 1, "val_acc": 0.8}, {"epoch": 2, "val_acc": 0.6, "dominant": "visual"}])
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert (run["best_val_acc"], run["last_val_acc"], run["dominant"], run["progress"]["epoch"]) == (
        0.8, 0.6, "visual", 2)


def test_nulls_are_left_out_and_booleans_stored_as_numbers(api):
    run_id = start(api).json()["id"]
    log(api, run_id, [{"epoch": 1, "val_acc": 0.5, "grad_norm.audio": None, "converged": True}])
    assert api.get(f"/api/v1/runs/{run_id}/metrics").json() == [{"epoch": 1, "val_acc": 0.5, "converged": 1}]


@pytest.mark.parametrize(
    ("record", "where"),
    [
        ({"val_acc": 0.5}, ["body", "records", 1, "epoch"]),
        ({"epoch": 1.5}, ["body", "records", 1, "epoch"]),
        ({"epoch": 2, "1bad": 0.5}, ["body", "records", 1, "1bad"]),
        ({"epoch": 2, "hist": [1, 2]}, ["body", "records", 1, "hist"]),
        ({"epoch": 2, "note": "x" * 201}, ["body", "records", 1, "note"]),
    ],
)
def test_a_bad_record_is_refused_by_where_it_is_and_nothing_of_the_batch_is_stored(api, record, where):
    run_id = start(api).json()["id"]
    response = log(api, run_id, [{"epoch": 1, "val_acc": 0.5}, record])
    assert response.status_code == 422
    assert [d["loc"] for d in response.json()["detail"]] == [where]
    assert api.get(f"/api/v1/runs/{run_id}/metrics").json() == []


def test_logging_with_another_key_is_refused(api):
    run_id = start(api).json()["id"]
    response = log(api, run_id, [{"epoch": 1, "val_acc": 0.5}], key="someone-elses-key")
    assert response.status_code == 409 and "key" in response.json()["detail"]


def test_a_run_trained_here_cannot_be_logged_to(api, store, tiny_config):
    trained = store.create_run(tiny_config().model_dump(mode="json"), queue="cpu")
    assert log(api, trained["id"], [{"epoch": 1, "val_acc": 0.5}]).status_code == 404


def test_a_cancel_asked_in_the_dashboard_reaches_the_script_at_its_next_heartbeat(api):
    run_id = start(api).json()["id"]
    assert log(api, run_id, []).json() == {"should_stop": False, "stored": 0}
    api.post(f"/api/v1/runs/{run_id}/cancel")
    assert log(api, run_id, []).json()["should_stop"] is True


def test_ending_a_run_twice_the_same_way_changes_nothing_and_another_way_is_refused(api):
    run_id = start(api).json()["id"]
    ended = api.post(f"/api/v1/runs/{run_id}/end", json={"key": KEY, "status": "failed", "error": "boom"})
    assert (ended.json()["status"], ended.json()["error"]) == ("failed", "boom")
    again = api.post(f"/api/v1/runs/{run_id}/end", json={"key": KEY, "status": "failed", "error": "boom"})
    assert again.status_code == 200 and again.json()["finished_at"] == ended.json()["finished_at"]
    other = api.post(f"/api/v1/runs/{run_id}/end", json={"key": KEY, "status": "succeeded"})
    assert other.status_code == 409


def test_an_external_run_cannot_be_retried_here(api):
    run_id = start(api).json()["id"]
    api.post(f"/api/v1/runs/{run_id}/end", json={"key": KEY, "status": "failed"})
    response = api.post(f"/api/v1/runs/{run_id}/retry")
    assert response.status_code == 409 and "its own script" in response.json()["detail"]


def test_a_silent_script_is_marked_crashed_not_requeued(store):
    run, _ = store.create_external_run(KEY, name="x", config={}, dataset="external", seed=0, epochs=0, tags=[])
    assert store.reap(timeout=-1) == []
    crashed = store.get_run(run["id"])
    assert crashed["status"] == "crashed" and crashed["finished_at"] is not None
    assert [e["kind"] for e in store.events(run["id"])] == ["crashed"]


def test_a_crashed_run_whose_script_comes_back_runs_again(store):
    run, _ = store.create_external_run(KEY, name="x", config={}, dataset="external", seed=0, epochs=0, tags=[])
    store.reap(timeout=-1)
    store.log_external(run["id"], KEY, [{"epoch": 1, "val_acc": 0.5}])
    back = store.get_run(run["id"])
    assert (back["status"], back["finished_at"]) == ("running", None)
    assert [e["kind"] for e in store.events(run["id"])] == ["crashed", "resumed"]


def test_the_benchmark_leaves_external_runs_out(store):
    run, _ = store.create_external_run(KEY, name="x", config={}, dataset="uci-mfeat", seed=0, epochs=0, tags=[])
    store.log_external(run["id"], KEY, [{"epoch": 1, "val_acc": 0.5}])
    store.finish_external(run["id"], KEY, "succeeded")
    assert store.finished_runs("uci-mfeat") == []
