"""Response times of GET /compare (20 runs x 100 epochs x all keys) and GET /runs pages (10,000 runs).

    python bench/api_queries.py [--repeats 30] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432]

Runs a real uvicorn server in this process against SQLite and a fresh PostgreSQL
database, and times requests over HTTP from a client. Targets: compare < 150 ms,
a page of runs < 100 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx
import uvicorn
from sqlalchemy import create_engine, text

from server.app import create_app
from service.db.store import Store
from service.settings import Settings

MODALITIES = ["audio", "visual"]
PER_MODALITY = ["val_acc", "confidence", "shapley", "nmi", "ncmi", "arm_score", "arm_weight", "grad_norm",
                "arm_train_weight"]


class NoQueue:
    def enqueue(self, run_id: int, queue: str) -> None:
        """The bench only reads; nothing is trained."""


def record(epoch: int, rng: random.Random) -> dict[str, Any]:
    values: dict[str, Any] = {
        "epoch": epoch, "step": epoch * 50, "samples_seen": epoch * 3200,
        "train_loss": rng.random(), "val_loss": rng.random(), "val_acc": rng.random(), "val_f1": rng.random(),
        "imbalance": rng.random(), "dominant": rng.choice(MODALITIES), "arm_guard_steps": 0.0,
        "epoch_seconds": 0.2, "train_seconds": 0.15, "samples_per_second": 20000.0, "elapsed_seconds": epoch * 0.2,
    }
    for key in PER_MODALITY:
        for m in MODALITIES:
            values[f"{key}.{m}"] = rng.random()
    return values


def config(seed: int) -> dict[str, Any]:
    return {"method": "arm", "dataset": "synthetic-shift", "seed": seed, "epochs": 100,
            "tags": ["bench", f"group{seed % 10}"], "name": f"bench run {seed}"}


def seed_store(store: Store, compare_runs: int, epochs: int, total_runs: int) -> list[int]:
    rng = random.Random(0)
    _, runs = store.create_sweep({"bench": True}, [(config(i), "cpu") for i in range(total_runs)])
    ids = [r["id"] for r in runs[:compare_runs]]
    for run_id in ids:
        for epoch in range(1, epochs + 1):
            store.add_epoch(run_id, record(epoch, rng))
    return ids


def serve(store: Store, home: Path) -> tuple[uvicorn.Server, str]:
    app = create_app(Settings(home=home), store, NoQueue())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/api/v1"


def timed(call: Callable[[], httpx.Response], repeats: int) -> tuple[float, float]:
    call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def measure(label: str, store: Store, repeats: int) -> list[tuple[str, str, float, float]]:
    with tempfile.TemporaryDirectory() as home:
        print(f"[{label}] seeding 10,000 runs and 20 x 100 epochs ...", flush=True)
        ids = seed_store(store, compare_runs=20, epochs=100, total_runs=10_000)
        server, base = serve(store, Path(home))
        rows = []
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                runs = ",".join(map(str, ids))
                first = client.get("/runs", params={"limit": 50}).json()
                deep_cursor = first["next_cursor"]
                for _ in range(100):
                    deep_cursor = client.get("/runs", params={"limit": 50, "cursor": deep_cursor}).json()["next_cursor"]
                cases = {
                    "GET /compare 20 runs x 100 epochs, all keys": lambda: client.get("/compare", params={"runs": runs}),
                    "GET /compare ... downsampled to 50 points": lambda: client.get("/compare", params={"runs": runs, "points": 50}),
                    "GET /runs first page (50)": lambda: client.get("/runs", params={"limit": 50}),
                    "GET /runs page 101 by cursor": lambda: client.get("/runs", params={"limit": 50, "cursor": deep_cursor}),
                    "GET /runs?tag=group3": lambda: client.get("/runs", params={"limit": 50, "tag": "group3"}),
                    "GET /runs?text=run 99&sort=name": lambda: client.get("/runs", params={"limit": 50, "text": "run 99", "sort": "name"}),
                }
                for name, call in cases.items():
                    median, p95 = timed(call, repeats)
                    rows.append((label, name, median, p95))
        finally:
            server.should_exit = True
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_store = Store(f"sqlite:///{tmp}/bench.db")
        sqlite_store.upgrade()
        rows += measure("SQLite", sqlite_store, args.repeats)
        sqlite_store.dispose()
    name = f"armscope_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{args.postgres}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        pg_store = Store(f"{args.postgres}/{name}")
        pg_store.upgrade()
        rows += measure("PostgreSQL", pg_store, args.repeats)
        pg_store.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print("\n| database | request | median ms | p95 ms |\n|---|---|---|---|")
    for label, request, median, p95 in rows:
        print(f"| {label} | {request} | {median:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
