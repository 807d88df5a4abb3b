"""Organisation: projects on runs and sweeps, unique run names, and a queued run's place in its queue.

On SQLite and PostgreSQL (the ``store`` fixture), through the store, the service and the API.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import armscope
from armscope.config import RunConfig
from armscope.tracking.spool import Spool
from dashboard.pages import benchmark as bench
from service import runs
from service.benchmark import benchmark
from service.errors import Conflict
from service.seed_sets import seed_sets
from tests.support import TWO_EPOCHS
from tests.test_benchmark import finished_run


def stored(**fields) -> dict:
    """A run config as the service stores it (defaults filled in)."""
    return RunConfig.model_validate({**TWO_EPOCHS, **fields}).model_dump(mode="json")



# -- projects -----------------------------------------------------------------------------------


def test_a_runs_project_comes_from_its_config_and_filters_the_list(store):
    vision = store.create_run(stored(project="vision"), queue="cpu")
    store.create_run(stored(project="audio study"), queue="cpu")
    store.create_run(stored(), queue="cpu")
    assert vision["project"] == "vision" and store.get_run(vision["id"])["project"] == "vision"
    listed, _ = store.list_runs(project="vision")
    assert [run["id"] for run in listed] == [vision["id"]]
    assert len(store.list_runs()[0]) == 3


def test_the_projects_in_use_are_listed_once_each_sorted(store, api):
    for project in ("vision", "audio study", "vision", None):
        store.create_run(stored(project=project), queue="cpu")
    assert runs.projects(store) == ["audio study", "vision"]
    assert api.get("/api/v1/projects").json() == ["audio study", "vision"]


def test_a_sweep_and_its_runs_belong_to_the_project_of_its_config(api, store):
    body = {"config": {**TWO_EPOCHS, "project": "ablations"}, "methods": ["arm", "baseline"], "seeds": [0]}
    sweep = api.post("/api/v1/sweeps", json=body).json()
    assert {run["project"] for run in sweep["runs"]} == {"ablations"}
    assert [run["id"] for run in api.get("/api/v1/runs?project=ablations").json()["items"]][::-1] == [
        run["id"] for run in sweep["runs"]
    ]
    assert runs.projects(store) == ["ablations"]


def test_the_api_filters_runs_by_project_and_says_which_project_each_is_in(api):
    mine = api.post("/api/v1/runs", json={**TWO_EPOCHS, "project": "vision"}).json()
    api.post("/api/v1/runs", json=TWO_EPOCHS)
    items = api.get("/api/v1/runs", params={"project": "vision"}).json()["items"]
    assert [(run["id"], run["project"]) for run in items] == [(mine["id"], "vision")]
    assert api.get("/api/v1/runs", params={"project": "nothing here"}).json()["items"] == []


def test_a_bad_project_name_is_refused_naming_the_field_and_nothing_is_stored(api):
    for bad in ("", " vision", "vision ", "a" * 101, "vision<script>"):
        response = api.post("/api/v1/runs", json={**TWO_EPOCHS, "project": bad})
        assert response.status_code == 422, bad
        (problem,) = response.json()["detail"]
        assert problem["loc"][-1] == "project" and "project name" in problem["msg"]
    assert api.get("/api/v1/runs").json()["items"] == []


def test_a_runs_project_can_be_changed_and_cleared(api):
    run = api.post("/api/v1/runs", json={**TWO_EPOCHS, "project": "vision"}).json()
    moved = api.patch(f"/api/v1/runs/{run['id']}", json={"project": "audio study"}).json()
    assert moved["project"] == "audio study"
    assert api.patch(f"/api/v1/runs/{run['id']}", json={"project": ""}).json()["project"] is None
    assert api.patch(f"/api/v1/runs/{run['id']}", json={"project": " x"}).status_code == 422


def test_an_external_run_belongs_to_the_project_its_script_names(api):
    start = {"key": "script-run-0001", "name": "my-avnet", "project": "vision"}
    run = api.post("/api/v1/external-runs", json=start).json()
    assert run["project"] == "vision"
    assert [r["id"] for r in api.get("/api/v1/runs?project=vision").json()["items"]] == [run["id"]]


def test_the_sdk_sends_the_project_it_is_given(tmp_path):
    with armscope.init("offline-run", project="vision", mode="offline", spool_dir=tmp_path / "spool") as run:
        run.log({"val_acc": 0.5}, epoch=1)
    assert Spool(Path(tmp_path / "spool")).run()["project"] == "vision"


def test_the_benchmark_is_over_one_projects_runs_when_asked(store):
    finished_run(store, "baseline", 0, acc=0.8, shapley=(0.3, 0.1), project="vision")
    finished_run(store, "arm", 0, acc=0.9, shapley=(0.3, 0.1), project="audio study")
    table = benchmark(store, "synthetic-shift", project="vision")
    assert [row["method"] for row in table["rows"]] == ["baseline"] and table["project"] == "vision"
    assert "arm" in table["without_runs"]
    assert {row["method"] for row in benchmark(store, "synthetic-shift")["rows"]} == {"baseline", "arm"}


def test_the_benchmark_api_takes_a_project(api, store):
    finished_run(store, "baseline", 0, acc=0.8, shapley=(0.3, 0.1), project="vision")
    finished_run(store, "arm", 0, acc=0.9, shapley=(0.3, 0.1))
    body = api.get("/api/v1/benchmark", params={"dataset": "synthetic-shift", "project": "vision"}).json()
    assert [row["method"] for row in body["rows"]] == ["baseline"]


def test_the_benchmark_page_shows_the_urls_project_and_offers_every_project(ctx):
    finished_run(ctx.store, "baseline", 0, acc=0.8, shapley=(0.3, 0.1), project="vision")
    finished_run(ctx.store, "arm", 0, acc=0.9, shapley=(0.3, 0.1), project="audio study")
    page = bench.render(ctx, bench.parse_view("?project=vision"), "light")
    assert [tr.to_plotly_json()["props"]["data-method"] for tr in page["table"][1].children] == ["baseline"]
    picker = bench.project_choice(ctx, "vision").children[1]
    assert [o["value"] for o in picker.options] == ["audio study", "vision"] and picker.value == "vision"
    unused = bench.project_choice(ctx, "next study").children[1]  # a project no run has yet stays chosen
    assert "next study" in [o["value"] for o in unused.options] and unused.value == "next study"
    assert "No finished runs on synthetic-shift in project next study yet" in str(
        bench.render(ctx, bench.parse_view("?project=next study"), "light")["empty"])


def test_a_method_launched_from_a_projects_benchmark_runs_in_that_project(ctx):
    bench.launch(ctx, "unimodal", "synthetic-shift", None, "0-1", "vision")
    launched, _ = ctx.store.list_runs(method="unimodal")
    assert [run["project"] for run in launched] == ["vision", "vision"]


def test_runs_that_differ_only_in_their_project_are_one_seed_set():
    configs = [stored(seed=0, project="vision"), stored(seed=1, project="audio study")]
    sets = seed_sets([{"id": i, "method": "arm", "seed": c["seed"], "config": c} for i, c in enumerate(configs)])
    assert len(sets) == 1


# -- unique names -------------------------------------------------------------------------------


def test_a_generated_name_never_repeats(store):
    names = [store.create_run(stored(), queue="cpu")["name"] for _ in range(3)]
    assert names == ["arm-synthetic-shift-s0", "arm-synthetic-shift-s0-2", "arm-synthetic-shift-s0-3"]


def test_a_given_name_another_run_has_gets_the_first_free_suffix(store):
    store.create_run(stored(name="ablation"), queue="cpu")
    store.create_run(stored(name="ablation-2"), queue="cpu")
    again = store.create_run(stored(name="ablation"), queue="cpu")
    assert again["name"] == "ablation-3" and again["config"]["name"] == "ablation"


def test_two_sweeps_of_one_spec_never_share_a_run_name(api):
    body = {"config": TWO_EPOCHS, "methods": ["arm", "baseline"], "seeds": [0, 1]}
    first = [run["name"] for run in api.post("/api/v1/sweeps", json=body).json()["runs"]]
    second = [run["name"] for run in api.post("/api/v1/sweeps", json=body).json()["runs"]]
    assert len(set(first)) == len(first) == 4
    assert not set(first) & set(second)
    assert all(name.endswith("-2") for name in second)


def test_a_long_name_keeps_its_suffix_within_the_limit(store):
    long = "x" * 200
    store.create_run(stored(name=long), queue="cpu")
    again = store.create_run(stored(name=long), queue="cpu")["name"]
    assert len(again) <= 200 and again.endswith("-2") and again != long


def test_runs_created_at_once_never_share_a_name(store):
    names: list[str] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            for _ in range(3):
                names.append(store.create_run(stored(), queue="cpu")["name"])
        except BaseException as exc:  # a thread's failure must fail the test, not vanish
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(names) == 18 and len(set(names)) == 18


def test_renaming_a_run_to_another_runs_name_is_a_conflict_naming_it(store, api):
    first = store.create_run(stored(name="baseline-run"), queue="cpu")
    second = store.create_run(stored(name="other"), queue="cpu")
    with pytest.raises(Conflict, match=f"run {first['id']} is already named 'baseline-run'"):
        store.update_run(second["id"], name="baseline-run")
    response = api.patch(f"/api/v1/runs/{second['id']}", json={"name": "baseline-run"})
    assert response.status_code == 409 and "already named" in response.json()["detail"]
    assert store.get_run(second["id"])["name"] == "other"
    assert store.update_run(second["id"], name="other")["name"] == "other"  # its own name is no clash


# -- the queue ----------------------------------------------------------------------------------


def test_a_queued_run_knows_its_place_in_its_own_queue(store):
    first, second, third = (store.create_run(stored(), queue="cpu") for _ in range(3))
    gpu = store.create_run(stored(device="cuda"), queue="gpu")
    assert [first["queue_position"], second["queue_position"], third["queue_position"]] == [1, 2, 3]
    assert gpu["queue_position"] == 1
    store.claim_run(first["id"], "worker-1")
    assert store.get_run(first["id"])["queue_position"] is None
    assert store.get_run(third["id"])["queue_position"] == 2
    listed = {run["id"]: run["queue_position"] for run in store.list_runs()[0]}
    assert listed == {first["id"]: None, second["id"]: 1, third["id"]: 2, gpu["id"]: 1}


def test_a_cancelled_run_leaves_the_queue_and_those_behind_move_up(store):
    first, second = (store.create_run(stored(), queue="cpu") for _ in range(2))
    store.cancel_run(first["id"])
    assert store.get_run(second["id"])["queue_position"] == 1


def test_the_api_gives_a_queued_runs_place(api):
    api.post("/api/v1/runs", json=TWO_EPOCHS)
    second = api.post("/api/v1/runs", json=TWO_EPOCHS).json()
    assert second["queue_position"] == 2
    assert api.get(f"/api/v1/runs/{second['id']}").json()["queue_position"] == 2
