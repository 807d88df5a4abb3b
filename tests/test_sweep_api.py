"""Sweeps over the REST API (SQLite and PostgreSQL, a recording queue) and through the Python client."""

from __future__ import annotations

import httpx

from tests.support import TWO_EPOCHS as TINY
from tests.test_client import FakeServer, body

SEARCH = {"lr": {"values": [0.01, 0.1]}, "model_options.feature_dim": {"range": [16, 32, 2]}}




def test_a_search_sweep_stores_its_spec_and_a_run_per_combination_and_seed(api, queue):
    response = api.post("/api/v1/sweeps", json={"config": TINY, "methods": ["arm"], "seeds": [0, 1], "search": SEARCH})
    assert response.status_code == 201, response.text
    runs = response.json()["runs"]
    assert len(runs) == len(queue.sent) == 8
    assert {(r["config"]["lr"], r["config"]["model_options"]["feature_dim"]) for r in runs} == {
        (0.01, 16), (0.01, 32), (0.1, 16), (0.1, 32)}
    assert len({r["name"] for r in runs}) == 8 and "arm-lr0.01-feature_dim16-s0" in {r["name"] for r in runs}
    sweep = api.get(f"/api/v1/sweeps/{response.json()['id']}").json()
    assert sweep["spec"]["search"]["lr"]["values"] == [0.01, 0.1] and sweep["counts"] == {"queued": 8}


def test_planning_a_sweep_answers_its_runs_and_stores_nothing(api, queue):
    response = api.post("/api/v1/sweep-plan", json={"config": TINY, "methods": ["arm"], "seeds": [0], "search": SEARCH})
    assert response.status_code == 200
    plan = response.json()
    assert plan["runs"] == len(plan["configs"]) == 4 and plan["max_runs"] == 200
    assert plan["configs"][0]["method_options"]["estimator"] == "debiased"  # validated, defaults filled in
    assert api.get("/api/v1/runs").json()["items"] == [] and queue.sent == [] and api.get("/api/v1/sweeps").json() == []


def test_a_sweep_over_the_cap_is_422_naming_the_count_and_the_cap(api, queue):
    big = {"config": TINY, "methods": ["arm"], "seeds": list(range(10)), "search": {"lr": {"range": [0.01, 1, 30]}}}
    response = api.post("/api/v1/sweeps", json=big)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "max_runs"] and "300 runs" in error["msg"] and "(200)" in error["msg"]
    assert api.post("/api/v1/sweeps", json={**big, "max_runs": 300}).status_code == 201


def test_an_unknown_search_field_is_422_with_a_near_miss(api):
    response = api.post("/api/v1/sweep-plan", json={"config": TINY, "methods": ["arm"], "seeds": [0],
                                                     "search": {"batchsize": {"values": [8]}}})
    [error] = response.json()["detail"]
    assert response.status_code == 422 and error["loc"] == ["body", "search", "batchsize"]
    assert "did you mean 'batch_size'?" in error["msg"]


def test_a_bad_method_is_one_422_at_its_place_in_methods_whatever_the_seeds(api, queue):
    response = api.post("/api/v1/sweeps", json={"config": TINY, "methods": ["arm", "armm"], "seeds": [0, 1, 2]})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "methods", 1] and "'armm'" in error["msg"] and "baseline" in error["msg"]
    assert queue.sent == []


def test_a_typo_d_modality_in_an_encoder_override_is_422_naming_the_modalities(api):
    config = {**TINY, "model_options": {"encoders": {"vidual": {"name": "mlp"}}}}
    response = api.post("/api/v1/runs", json=config)
    [error] = response.json()["detail"]
    assert response.status_code == 422 and error["loc"] == ["body", "model_options", "encoders"]
    assert "audio, visual" in error["msg"]


def test_a_sweep_is_read_with_its_runs_swept_values_final_metric_and_best_run(api, store):
    created = api.post("/api/v1/sweeps", json={"config": TINY, "methods": ["arm"], "seeds": [0], "search": SEARCH}).json()
    for run, acc in zip(created["runs"], (0.4, 0.8)):
        store.claim_run(run["id"], "w")
        store.add_epoch(run["id"], {"epoch": 1, "val_acc": acc})
        store.finish_run(run["id"], "w", "succeeded")
    sweep = api.get(f"/api/v1/sweeps/{created['id']}").json()
    assert sweep["swept"] == ["lr", "model_options.feature_dim"] and sweep["metric"] == "val_acc"
    assert sweep["best"] == created["runs"][1]["id"]
    assert [(r["swept"], r["final"]) for r in sweep["runs"][:2]] == [
        ({"lr": 0.01, "model_options.feature_dim": 16}, 0.4), ({"lr": 0.01, "model_options.feature_dim": 32}, 0.8)]
    listed = api.get("/api/v1/sweeps").json()
    assert [(s["id"], s["run_count"], s["counts"]) for s in listed] == [(created["id"], 4, {"queued": 2, "succeeded": 2})]


def test_reading_an_unknown_sweep_is_404_and_an_unknown_metric_422(api):
    assert api.get("/api/v1/sweeps/77").status_code == 404
    created = api.post("/api/v1/sweeps", json={"config": TINY, "methods": ["arm"], "seeds": [0]}).json()
    response = api.get(f"/api/v1/sweeps/{created['id']}?metric=val_accc")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "metric"]


# -- the client -------------------------------------------------------------------------------------


def test_the_client_sends_a_search_and_reads_sweeps():
    server = FakeServer(lambda request: httpx.Response(200, json=[] if request.url.path.endswith("/sweeps") else {}))
    with server.client() as client:
        client.sweep(TINY, ["arm"], [0], search=SEARCH, strategy="random", samples=3, search_seed=4, max_runs=50)
        assert (server.last.url.path, body(server.last)) == ("/api/v1/sweeps", {
            "config": TINY, "methods": ["arm"], "seeds": [0], "search": SEARCH, "strategy": "random", "samples": 3,
            "search_seed": 4, "max_runs": 50})
        client.sweep(TINY, ["arm"], [0], search=SEARCH, dry_run=True)
        assert server.last.url.path == "/api/v1/sweep-plan"
        client.get_sweep(5, metric="val_loss")
        assert (server.last.method, server.last.url.path, dict(server.last.url.params)) == (
            "GET", "/api/v1/sweeps/5", {"metric": "val_loss"})
        client.sweeps(project="paper")
        assert (server.last.url.path, dict(server.last.url.params)) == ("/api/v1/sweeps", {"project": "paper"})
