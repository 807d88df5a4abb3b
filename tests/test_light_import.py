"""Validating configs, sizing runs, the catalog and the server processes import no torch, numpy or scipy.

The API and the dashboard serve from the plugins' specs and the store: a server process stays light
(README "Server memory"), and only workers load the training code.
"""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import numpy as np
import pytest

from armscope.builtin.datasets.synthetic import environment_counts, pairwise_sum
from tests.plugin_support import home_with_store, run_python
from tests.service_support import free_port, service_env, start, stop, wait_for, wait_for_server

HEAVY = ["torch", "numpy", "scipy"]


@pytest.mark.service  # a fresh interpreter
def test_validating_a_config_of_every_method_and_data_set_and_building_the_catalog_import_nothing_heavy(tmp_path):
    loaded = run_python(
        f"""
        import json, sys
        from armscope.catalog import build_catalog
        from armscope.config import RunConfig
        from armscope.plugins import DATASETS, METHODS, broken_plugins
        assert not broken_plugins(), broken_plugins()
        rooted = {{"root": {str(tmp_path)!r}}}
        for dataset in DATASETS.names():
            options = {{}} if dataset in ("synthetic-shift", "uci-mfeat") else rooted
            RunConfig.model_validate({{"dataset": dataset, "dataset_options": options}})
        for method in METHODS.names():
            RunConfig.model_validate({{
                "method": method, "model_options": {{"encoders": {{"visual": {{"name": "resnet18"}}}}}},
            }})
        json.dumps(build_catalog())
        print(json.dumps(sorted(name for name in {HEAVY!r} if name in sys.modules)))
        """,
        prelude=home_with_store(tmp_path / "home"),
    )
    assert loaded == []


@pytest.mark.service  # a fresh interpreter
def test_importing_the_engine_packages_loads_no_torch_until_a_training_name_is_used():
    loaded = run_python(
        """
        import json, sys
        import armscope.data, armscope.methods, armscope.models
        from armscope.models import ModelOptions
        before = "torch" in sys.modules
        from armscope.models import MultimodalModel
        print(json.dumps([before, "torch" in sys.modules, MultimodalModel.__module__]))
        """
    )
    assert loaded == [False, True, "armscope.models.heads"]


def test_synthetic_shift_splits_samples_over_environments_as_numpy_did():
    rng = random.Random(0)
    for _ in range(2000):
        weights = [rng.uniform(1e-3, 10.0) * 10 ** rng.randint(-3, 3) for _ in range(rng.randint(1, 256))]
        n = rng.randint(10, 2_000_000)
        w = np.asarray(weights, dtype=np.float64)
        assert pairwise_sum(weights) == float(w.sum())
        exact = n * w / w.sum()
        counts = np.floor(exact).astype(np.int64)
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[: int(n - counts.sum())]] += 1
        assert environment_counts(n, weights) == counts.tolist()


@pytest.mark.service  # a fresh interpreter
def test_a_server_process_answers_the_api_and_draws_every_page_without_loading_anything_heavy(tmp_path):
    loaded = run_python(
        f"""
        import json, sys
        from fastapi.testclient import TestClient
        from armscope.config import RunConfig
        from dashboard.context import Context
        from dashboard.pages import compare, launch, run_detail, runs
        from server.app import create_app

        queue = RecordingQueue()
        run = store.create_run(RunConfig(method="ogm-ge").model_dump(mode="json"), queue="cpu")
        store.claim_run(run["id"], "w")
        for epoch in (1, 2):
            store.add_epoch(run["id"], {{
                "epoch": epoch, "val_acc": 0.5, "val_loss": 1.0, "train_loss": 1.1, "dominant": "audio",
                **{{f"{{k}}.{{m}}": 0.3 for k in ("shapley", "val_acc", "nmi", "ogm_coeff") for m in ("audio", "visual")}},
            }})
        with TestClient(create_app(settings, store, queue)) as client:
            for path in ("/catalog", "/health", f"/compare?runs={{run['id']}}", f"/compare/seeds?runs={{run['id']}}",
                         f"/runs/{{run['id']}}/metrics.csv"):
                assert client.get("/api/v1" + path).status_code == 200, path
            assert client.post("/api/v1/runs", json={{"method": "arm", "epochs": 1}}).status_code == 201
        ctx = Context(store=store, settings=settings, queue=queue)
        launch.layout(ctx)
        runs.layout(ctx)
        run_detail.layout(ctx, run["id"], "light")
        compare.render(ctx, compare.make_view([run["id"]], "ogm_coeff.*", 0.6, "epoch", "run", "seeds"), "dark")
        print(json.dumps(sorted(name for name in {HEAVY!r} if name in sys.modules)))
        """,
        prelude=home_with_store(tmp_path / "home"),
    )
    assert loaded == []


@pytest.mark.service  # a real `armscope serve`
def test_every_process_of_armscope_serve_maps_no_torch_numpy_or_scipy(tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    proc = start(["serve", "--no-worker", "--processes", "2", "--port", str(port)], service_env(tmp_path / "home"), log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url)
        for _ in range(8):  # every server process takes some
            assert httpx.get(f"{url}/api/v1/catalog", timeout=30).status_code == 200
        pids = [proc.pid, *wait_for(lambda: len(children(proc.pid)) >= 2 and children(proc.pid), 30, "two servers")]
        mapped = {pid: [n for n in HEAVY if f"/{n}/" in Path(f"/proc/{pid}/maps").read_text()] for pid in pids}
        assert mapped == {pid: [] for pid in pids}, log.read_text()
    finally:
        stop(proc)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found
