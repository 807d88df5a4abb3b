"""The REST API contract, on SQLite and PostgreSQL, with a queue that records what it is sent."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from service.settings import Settings
from tests.fakes import RecordingQueue
from tests.support import TWO_EPOCHS as TINY
from tests.test_benchmark import finished_run


@pytest.fixture
def queue():
    return RecordingQueue()


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path / "home")


@pytest.fixture
def api(store, queue, settings):
    with TestClient(create_app(settings, store, queue)) as client:
        yield client


def test_health_is_open_and_names_the_database(api, store):
    body = api.get("/api/v1/health").json()
    assert body["status"] == "ok" and body["database"] in ("sqlite", "postgresql")


def test_catalog_lists_methods_and_datasets_with_option_schemas(api):
    body = api.get("/api/v1/catalog").json()
    assert "estimator" in body["methods"]["arm"]["options"]["properties"]
    assert "views" in body["datasets"]["uci-mfeat"]["options"]["properties"]
    assert "epochs" in body["run_config"]["properties"]


def test_openapi_schema_and_docs_are_served(api):
    assert "/api/v1/runs" in api.get("/openapi.json").json()["paths"]
    assert api.get("/docs").status_code == 200


def test_submitting_a_run_stores_and_queues_it(api, queue):
    response = api.post("/api/v1/runs", json=TINY)
    assert response.status_code == 201
    run = response.json()
    assert run["status"] == "queued" and run["config"]["method_options"]["estimator"] == "debiased"
    assert queue.sent == [(run["id"], "cpu")]


def test_a_cuda_run_goes_to_the_gpu_queue(api, queue):
    run = api.post("/api/v1/runs", json={**TINY, "device": "cuda"}).json()
    assert queue.sent == [(run["id"], "gpu")]


def test_an_invalid_config_is_422_naming_the_field_and_stores_nothing(api, queue):
    response = api.post("/api/v1/runs", json={**TINY, "method_options": {"nmi_bins": 0}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "method_options", "nmi_bins"]
    assert api.get("/api/v1/runs").json()["items"] == [] and queue.sent == []


def test_an_unreachable_queue_is_503_and_stores_nothing(api, queue):
    queue.broken = True
    response = api.post("/api/v1/runs", json=TINY)
    assert response.status_code == 503 and "nothing was stored" in response.json()["detail"]
    assert api.get("/api/v1/runs").json()["items"] == []


def test_runs_are_listed_newest_first_in_pages(api):
    ids = [api.post("/api/v1/runs", json={**TINY, "seed": s}).json()["id"] for s in range(5)]
    first = api.get("/api/v1/runs", params={"limit": 2}).json()
    second = api.get("/api/v1/runs", params={"limit": 10, "cursor": first["next_cursor"]}).json()
    assert [r["id"] for r in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None


def test_runs_are_filtered_by_method_tag_status_and_text(api):
    api.post("/api/v1/runs", json={**TINY, "method": "baseline", "tags": ["x"], "name": "needle"})
    api.post("/api/v1/runs", json=TINY)
    assert [r["method"] for r in api.get("/api/v1/runs?method=baseline").json()["items"]] == ["baseline"]
    assert [r["name"] for r in api.get("/api/v1/runs?tag=x").json()["items"]] == ["needle"]
    assert [r["name"] for r in api.get("/api/v1/runs?text=NEED").json()["items"]] == ["needle"]
    assert len(api.get("/api/v1/runs?status=queued,running").json()["items"]) == 2


@pytest.mark.parametrize("query", ["status=bogus", "sort=colour", "cursor=zzz", "limit=0"])
def test_bad_list_parameters_are_422_naming_the_parameter(api, query):
    response = api.get(f"/api/v1/runs?{query}")
    assert response.status_code == 422
    assert query.split("=")[0] in str(response.json()["detail"])


def test_unknown_runs_are_404(api):
    for method, path in [("get", "/runs/99"), ("patch", "/runs/99"), ("delete", "/runs/99"),
                         ("post", "/runs/99/cancel"), ("post", "/runs/99/retry"), ("get", "/runs/99/metrics"),
                         ("get", "/runs/99/events"), ("get", "/runs/99/metrics.csv"), ("get", "/runs/99/checkpoint")]:
        kwargs = {"json": {}} if method == "patch" else {}
        response = getattr(api, method)(f"/api/v1{path}", **kwargs)
        assert response.status_code == 404, path
        assert "run 99" in response.json()["detail"]


def test_patch_edits_name_tags_and_notes(api):
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    body = api.patch(f"/api/v1/runs/{run_id}", json={"name": "n", "tags": ["a"], "notes": "hi"}).json()
    assert (body["name"], body["tags"], body["notes"]) == ("n", ["a"], "hi")
    assert api.patch(f"/api/v1/runs/{run_id}", json={"colour": "red"}).status_code == 422


def test_cancel_then_retry_follow_the_lifecycle(api, queue):
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    assert api.post(f"/api/v1/runs/{run_id}/retry").status_code == 409
    assert api.post(f"/api/v1/runs/{run_id}/cancel").json()["status"] == "cancelled"
    assert api.post(f"/api/v1/runs/{run_id}/cancel").status_code == 409
    assert api.post(f"/api/v1/runs/{run_id}/retry").json()["status"] == "queued"
    assert queue.sent == [(run_id, "cpu"), (run_id, "cpu")]


def test_delete_removes_the_run_and_its_files(api, settings):
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    folder = settings.run_dir(run_id)
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("{}\n")
    assert api.delete(f"/api/v1/runs/{run_id}").status_code == 204
    assert not folder.exists()
    assert api.get(f"/api/v1/runs/{run_id}").status_code == 404


def test_a_running_run_cannot_be_deleted(api, store):
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    store.claim_run(run_id, "w")
    response = api.delete(f"/api/v1/runs/{run_id}")
    assert response.status_code == 409 and "cancel" in response.json()["detail"]


def test_metrics_events_and_csv_come_from_the_store(api, store):
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    for epoch in (1, 2, 3):
        store.add_epoch(run_id, {"epoch": epoch, "val_acc": epoch / 10, "dominant": "audio"})
    store.add_event(run_id, {"epoch": 2, "step": 7, "kind": "dominance_switch", "message": "m"})
    assert api.get(f"/api/v1/runs/{run_id}/metrics?keys=val_acc&since_epoch=2").json() == [
        {"epoch": 3, "val_acc": 0.3}]
    assert api.get(f"/api/v1/runs/{run_id}/events").json()[0]["kind"] == "dominance_switch"
    csv_text = api.get(f"/api/v1/runs/{run_id}/metrics.csv").text
    assert csv_text.splitlines()[0] == "epoch,val_acc,dominant" and len(csv_text.splitlines()) == 4


def test_checkpoint_download(api, settings):
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    assert "no checkpoint" in api.get(f"/api/v1/runs/{run_id}/checkpoint").json()["detail"]
    folder = settings.run_dir(run_id) / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"weights")
    assert api.get(f"/api/v1/runs/{run_id}/checkpoint").content == b"weights"


def test_compare_returns_many_runs_downsampled(api, store):
    ids = [api.post("/api/v1/runs", json={**TINY, "seed": s}).json()["id"] for s in range(3)]
    for run_id in ids:
        for epoch in range(1, 51):
            store.add_epoch(run_id, {"epoch": epoch, "val_acc": 0.5, "shapley.audio": 0.1})
    body = api.get("/api/v1/compare", params={"runs": ",".join(map(str, ids)), "keys": "shapley.audio", "points": 5}).json()
    assert [r["id"] for r in body["runs"]] == ids
    assert [rec["epoch"] for rec in body["runs"][0]["records"]] == [1, 13, 25, 38, 50]
    assert set(body["runs"][0]["records"][0]) == {"epoch", "shapley.audio"}


def test_compare_rejects_bad_ids_and_unknown_runs(api):
    assert api.get("/api/v1/compare?runs=a,b").status_code == 422
    assert api.get("/api/v1/compare?runs=12345").status_code == 404


def test_compare_over_seeds_gives_each_set_its_mean_and_std(api, store):
    accuracies = {(0, "arm"): [0.5, 0.9], (1, "arm"): [0.7, 0.5, 0.6], (0, "baseline"): [0.4, 0.45]}
    ids = []
    for (seed, method), values in accuracies.items():
        run_id = api.post("/api/v1/runs", json={**TINY, "method": method, "seed": seed}).json()["id"]
        ids.append(run_id)
        for epoch, value in enumerate(values, 1):
            store.add_epoch(run_id, {"epoch": epoch, "val_acc": value, "val_loss": 1 - value, "dominant": "audio"})
    response = api.get("/api/v1/compare/seeds", params={"runs": ",".join(map(str, ids))})
    assert response.status_code == 200
    arm, baseline = response.json()["sets"]
    assert (arm["label"], arm["runs"], arm["seeds"]) == ("arm (n=2)", ids[:2], [0, 1])
    assert baseline["label"] == "baseline (n=1)" and set(arm["metrics"]) == {"val_acc", "val_loss"}
    curve = arm["metrics"]["val_acc"]
    assert curve["epoch"] == [1, 2, 3] and curve["n"] == [2, 2, 1]
    assert curve["mean"] == pytest.approx([0.6, 0.7, 0.6]) and curve["std"][2] == 0.0
    assert curve["last"] == pytest.approx({"mean": 0.75, "std": 0.2121320, "n": 2})  # 0.9 and 0.6
    assert curve["best"]["mean"] == pytest.approx(0.8)  # 0.9 and 0.7
    assert arm["metrics"]["val_loss"]["best"]["mean"] == pytest.approx(0.2)  # lowest: 0.1 and 0.3
    only = api.get("/api/v1/compare/seeds", params={"runs": ids[2], "keys": "val_loss"}).json()["sets"][0]
    assert set(only["metrics"]) == {"val_loss"} and only["metrics"]["val_loss"]["last"]["std"] is None


def test_compare_over_seeds_rejects_bad_ids_and_unknown_runs(api):
    assert api.get("/api/v1/compare/seeds?runs=a").status_code == 422
    assert api.get("/api/v1/compare/seeds?runs=12345").status_code == 404


def test_a_sweep_crosses_methods_and_seeds(api, queue):
    response = api.post("/api/v1/sweeps", json={"config": TINY, "methods": ["arm", "baseline"], "seeds": [0, 1]})
    assert response.status_code == 201
    body = response.json()
    assert sorted((r["method"], r["seed"]) for r in body["runs"]) == [("arm", 0), ("arm", 1), ("baseline", 0), ("baseline", 1)]
    assert len(queue.sent) == 4
    listed = api.get(f"/api/v1/runs?sweep={body['id']}").json()["items"]
    assert len(listed) == 4


def test_a_comparison_sweep_runs_every_compared_method_and_arm_without_re_weighting(api, queue):
    body = {"config": {**TINY, "method": "arm", "method_options": {"estimator": "plugin"}}, "methods": ["arm"],
            "seeds": [0], "compare": True}
    response = api.post("/api/v1/sweeps", json=body)
    assert response.status_code == 201
    runs = {r["name"]: r for r in response.json()["runs"]}
    assert sorted(runs) == sorted(["arm-synthetic-shift-s0", "baseline-synthetic-shift-s0", "ogm-ge-synthetic-shift-s0",
                                   "arm-no-reweight-synthetic-shift-s0"])
    control = runs["arm-no-reweight-synthetic-shift-s0"]["config"]["method_options"]
    assert control["reweight"] is False and control["estimator"] == "plugin"


def test_a_sweep_variant_is_a_method_with_its_own_options_under_its_label(api, queue):
    variant = {"method": "arm", "method_options": {"estimator": "reference"}, "label": "published"}
    response = api.post("/api/v1/sweeps", json={"config": TINY, "methods": ["baseline"], "seeds": [3],
                                                "variants": [variant]})
    assert response.status_code == 201
    runs = {r["name"]: r["config"]["method_options"] for r in response.json()["runs"]}
    assert runs["arm-published-synthetic-shift-s3"]["estimator"] == "reference" and len(runs) == 2


def test_a_sweep_variant_with_a_bad_option_names_it_and_stores_nothing(api, queue):
    variant = {"method": "arm", "method_options": {"reweigh": False}, "label": "typo"}
    response = api.post("/api/v1/sweeps", json={"config": TINY, "methods": ["baseline"], "seeds": [0],
                                                "variants": [variant]})
    assert response.status_code == 422 and "arm (typo)" in str(response.json()["detail"])
    assert api.get("/api/v1/runs").json()["items"] == [] and queue.sent == []


def test_an_invalid_sweep_names_the_method_and_stores_nothing(api, queue):
    response = api.post("/api/v1/sweeps", json={"config": TINY, "methods": ["arm", "nope"], "seeds": [0]})
    assert response.status_code == 422
    assert "nope" in str(response.json()["detail"])
    assert api.get("/api/v1/runs").json()["items"] == [] and queue.sent == []


def test_a_sweep_the_queue_refuses_is_503_and_stores_none_of_its_runs(api, queue):
    queue.broken = True
    response = api.post("/api/v1/sweeps", json={"config": TINY, "methods": ["arm", "baseline"], "seeds": [0, 1]})
    assert response.status_code == 503 and "nothing was stored" in response.json()["detail"]
    assert api.get("/api/v1/runs").json()["items"] == []


def test_the_api_serves_the_table_and_refuses_an_unknown_data_set_with_422(api, store):
    finished_run(store, "baseline", 0, acc=0.8, shapley=(0.3, 0.1))
    body = api.get("/api/v1/benchmark?dataset=synthetic-shift").json()
    assert body["rows"][0]["method"] == "baseline" and body["dataset"] == "synthetic-shift"
    response = api.get("/api/v1/benchmark?dataset=nope")
    assert response.status_code == 422 and "unknown data set" in response.text
