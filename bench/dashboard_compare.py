"""How long the compare page takes to draw 20 runs x 100 epochs in headless Chromium (target: under 2 s).

Fills a temporary home with finished runs through the store (no training), serves it with
`armscope serve --no-worker`, and times navigation start -> every trace of `compare-graph` drawn,
measured inside the page (performance.now() when the last trace appears). The first load runs on a
cold browser cache and is reported apart; the repeats reuse the cache as a returning user would.

    python bench/dashboard_compare.py [--runs 20] [--epochs 100] [--repeats 7]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving import free_port, start_server  # noqa: E402  (after the path is set)
from tests.browser_support import chromium, quit_browser  # noqa: E402

METHODS = ["arm", "baseline", "ogm-ge"]
MODALITIES = ["audio", "visual"]

# Installed before the page's own scripts: records when the graph has drawn `want` traces.
PROBE = """
(function () {
  const want = %d;
  function check() {
    const n = document.querySelectorAll('#compare-graph .scatterlayer .trace').length;
    if (n >= want) { window.__drawn = performance.now(); return; }
    requestAnimationFrame(check);
  }
  requestAnimationFrame(check);
})();
"""


def fake_records(method: str, seed: int, epochs: int, modalities: list[str]) -> list[dict[str, Any]]:
    """Epoch records shaped like the engine's: accuracy rising, contributions shifting, timing keys."""
    rng = random.Random(f"{method}-{seed}")
    switch = rng.randint(epochs // 4, 3 * epochs // 4)
    records, elapsed = [], 0.0
    for epoch in range(1, epochs + 1):
        t = epoch / epochs
        acc = 0.1 + 0.75 * (1 - math.exp(-4 * t)) + rng.gauss(0, 0.01)
        lead = 0.7 if epoch < switch else 0.35
        if method == "arm":
            lead = 0.5 + (lead - 0.5) * 0.4
        shap = {modalities[0]: (acc - 0.1) * lead, modalities[1]: (acc - 0.1) * (1 - lead)}
        seconds = 1.5 + rng.random() * 0.2
        elapsed += seconds
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": epoch * 50,
            "samples_seen": epoch * 3200,
            "train_loss": 2.3 * math.exp(-2 * t) + 0.2,
            "val_loss": 2.2 * math.exp(-1.8 * t) + 0.3,
            "val_acc": acc,
            "val_f1": acc - 0.01,
            "dominant": max(shap, key=shap.get),
            "imbalance": abs(shap[modalities[0]] - shap[modalities[1]]) / max(1e-9, sum(map(abs, shap.values()))),
            "epoch_seconds": seconds,
            "train_seconds": seconds * 0.9,
            "samples_per_second": 3200 / seconds,
            "elapsed_seconds": elapsed,
        }
        for i, m in enumerate(modalities):
            record.update(
                {
                    f"val_acc.{m}": 0.1 + shap[m] * 1.2,
                    f"confidence.{m}": 0.1 + shap[m],
                    f"shapley.{m}": shap[m],
                    f"nmi.{m}": 0.004 + 0.01 * shap[m],
                    f"ncmi.{m}": 0.0002 + 0.001 * shap[m],
                    f"arm_score.{m}": 0.001 + 0.002 * shap[m],
                    f"arm_weight.{m}": 1 + (0.5 - lead) * (1 if i == 0 else -1),
                    f"grad_norm.{m}": 0.3 + 0.1 * rng.random(),
                }
            )
            if method == "ogm-ge":
                record.update(
                    {
                        f"ogm_ratio.{m}": 1 + (lead - 0.5) * (1 if i == 0 else -1),
                        f"ogm_coeff.{m}": 1 - max(0.0, (lead - 0.5) * (1 if i == 0 else -1)),
                    }
                )
            if method == "arm":
                record[f"arm_train_weight.{m}"] = record[f"arm_weight.{m}"]
        if method == "arm":
            record["arm_guard_steps"] = 0
        records.append(record)
    return records


def seed_store(home: Path, runs: int, epochs: int) -> list[int]:
    """Finished runs with full records, written through the store's own lifecycle calls."""
    from armscope.config import RunConfig
    from service.db.store import Store
    from service.settings import Settings

    settings = Settings(home=home)
    settings.ensure_home()
    store = Store(settings.resolved_database_url)
    store.upgrade()
    ids = []
    for i in range(runs):
        method, seed = METHODS[i % len(METHODS)], i // len(METHODS)
        config = RunConfig.model_validate(
            {"method": method, "seed": seed, "epochs": epochs, "device": "cpu", "tags": ["bench"]}
        ).model_dump(mode="json")
        run = store.create_run(config, queue="cpu")
        store.claim_run(run["id"], "bench")
        for record in fake_records(method, seed, epochs, MODALITIES):
            store.add_epoch(run["id"], record)
        store.heartbeat(run["id"], "bench", {"step": epochs * 50, "total_steps": epochs * 50})
        store.finish_run(run["id"], "bench", "succeeded")
        ids.append(run["id"])
    store.dispose()
    return ids


def time_once(driver: Any, url: str, traces: int, timeout: float = 30) -> float:
    """Seconds from navigation start until all traces are drawn, measured by the page's clock."""
    driver.get("about:blank")
    driver.get(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        drawn = driver.execute_script("return window.__drawn || null")
        if drawn is not None:
            return float(drawn) / 1000
        time.sleep(0.02)
    raise TimeoutError(f"compare-graph did not draw {traces} traces within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="armscope-bench-") as tmp:
        home = Path(tmp)
        started = time.perf_counter()
        ids = seed_store(home, args.runs, args.epochs)
        print(f"stored {args.runs} runs x {args.epochs} epochs in {time.perf_counter() - started:.1f} s")
        port = free_port()
        server = start_server(home, port)
        driver = chromium()
        try:
            traces = args.runs * len(MODALITIES)  # the default view: Shapley per modality, one trace each
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE % traces})
            url = f"http://127.0.0.1:{port}/compare?runs={','.join(map(str, ids))}"
            cold = time_once(driver, url, traces)
            warm = [time_once(driver, url, traces) for _ in range(args.repeats)]
        finally:
            quit_browser(driver)
            server.terminate()
            server.wait(20)
    print(f"compare page, {args.runs} runs x {args.epochs} epochs, {traces} traces, headless Chromium:")
    print(f"  first load (cold cache): {cold:.2f} s")
    print(f"  {args.repeats} repeats: median {statistics.median(warm):.2f} s, max {max(warm):.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
