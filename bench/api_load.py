"""Concurrent load on the REST API: N clients mixing list, metrics, compare and submit for T seconds.

    python bench/api_load.py [--clients 50] [--seconds 30] [--db sqlite,postgres]
                             [--postgres postgresql+psycopg://postgres@127.0.0.1:5432]
                             [--mix list=40,metrics=30,compare=20,submit=10] [--think-ms 0]
                             [--server-processes 1] [--profile DIR] [--server-patch FILE.py:FUNC]

For each database the store is seeded (default 1,000 runs, 50 of them with 100 epochs of
metrics), then a real uvicorn server is started in a separate process (spawned, so it does not
share the load generator's GIL) on a free port of 127.0.0.1 with a no-op queue; --server-processes N
starts N of them accepting from that one listening socket, as `armscope serve --processes N` does. First each
request kind is sent alone, one at a time (--cost-seconds each), to measure its server CPU cost.
Then N asyncio users, each with its own httpx.AsyncClient (one keep-alive connection), start
spread over --ramp-seconds (not counted) and send requests back to back (closed loop; --think-ms
adds an exponential pause between one user's requests) until T more seconds have passed or
--max-requests were sent; requests in flight then finish. Only 127.0.0.1 is contacted. PostgreSQL gets a fresh database, dropped afterwards.

Printed per database and request kind: count, p50, p99 and max latency seen by the clients (ms),
errors (non-2xx or exceptions), how long requests waited before the server app was called and
how long the app took until the response started (a thin ASGI wrapper in the server process),
requests/s, server CPU ms per request, mean response size; then CPU use of the server, the load
generator, PostgreSQL and other processes, and a Markdown table for the README. Target: p99
under 150 ms with 50 clients and no errors.

--profile DIR samples the server process with py-spy during the load (raw collapsed stacks in
DIR) and prints the functions seen most. --server-patch calls a function in the server process
before the app is built, to measure a change (e.g. a monkeypatch) without editing the project.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/api_load.py` puts bench/, not the repository, on the path
    sys.path.insert(0, str(ROOT))

KINDS = ("list", "metrics", "compare", "submit")
API = "/api/v1"
TIMINGS_PATH = "/__bench__/timings"
MODALITIES = ("audio", "visual")
PER_MODALITY = ("val_acc", "confidence", "shapley", "nmi", "ncmi", "arm_score", "arm_weight", "grad_norm",
                "arm_train_weight")
METRIC_KEYS = ("train_loss", "val_loss", "val_acc", "val_f1", "imbalance", "dominant",
               *(f"{k}.{m}" for k in PER_MODALITY for m in MODALITIES))
LIST_FILTERS: tuple[dict[str, str], ...] = (
    {"status": "succeeded"}, {"status": "queued,running"}, {"method": "arm"}, {"method": "ogm-ge"},
    {"dataset": "uci-mfeat"}, {"text": "seed 1"}, {"sort": "-best_val_acc"}, {"sort": "name"},
    *({"tag": f"group{i}"} for i in range(10)),
)


# -- seeding ----------------------------------------------------------------------------


def epoch_record(epoch: int, epochs: int, rng: random.Random) -> dict[str, Any]:
    """One epoch as the trainer reports it: losses, accuracies, timings and per-modality measures."""
    progress = epoch / epochs
    acc = min(0.99, 0.3 + 0.6 * progress + rng.gauss(0, 0.02))
    record: dict[str, Any] = {
        "epoch": epoch, "step": epoch * 50, "samples_seen": epoch * 3200,
        "train_loss": 2.3 * (1 - 0.8 * progress) + rng.gauss(0, 0.05),
        "val_loss": 2.3 * (1 - 0.7 * progress) + rng.gauss(0, 0.05),
        "val_acc": acc, "val_f1": acc - abs(rng.gauss(0, 0.02)),
        "imbalance": abs(rng.gauss(0.3, 0.1)), "dominant": rng.choice(MODALITIES), "arm_guard_steps": 0.0,
    }
    for key in PER_MODALITY:
        for m in MODALITIES:
            record[f"{key}.{m}"] = rng.random()
    seconds = 0.2 + rng.random() * 0.05
    record.update(epoch_seconds=seconds, train_seconds=seconds * 0.75, samples_per_second=3200 / (seconds * 0.75),
                  elapsed_seconds=epoch * 0.21)
    return record


def seed_configs(total: int, rng: random.Random) -> list[dict[str, Any]]:
    """Validated RunConfigs (defaults filled in, as the API stores them), a few methods and data sets."""
    from armscope.config import RunConfig

    templates = {
        (method, dataset): RunConfig(method=method, dataset=dataset, epochs=100).model_dump(mode="json")
        for method in ("arm", "ogm-ge", "baseline") for dataset in ("synthetic-shift", "uci-mfeat")
    }
    configs = []
    for i in range(total):
        config = dict(templates[(rng.choice(("arm", "ogm-ge", "baseline")), rng.choice(("synthetic-shift", "uci-mfeat")))])
        config.update(seed=i, name=f"load {config['method']} seed {i}", tags=["bench", f"group{i % 10}"])
        configs.append(config)
    return configs


def seed_store(url: str, total: int, with_metrics: int, epochs: int) -> tuple[list[int], list[int]]:
    from service.db.store import Store

    rng = random.Random(0)
    store = Store(url)
    store.upgrade()
    try:
        _, runs = store.create_sweep({"bench": "api_load"}, [(c, "cpu") for c in seed_configs(total, rng)],
                                     name="api_load seed")
        ids = [r["id"] for r in runs]
        metric_ids = sorted(rng.sample(ids, with_metrics))
        for run_id in metric_ids:
            store.claim_run(run_id, "bench-worker")
            for epoch in range(1, epochs + 1):
                store.add_epoch(run_id, epoch_record(epoch, epochs, rng))
            store.finish_run(run_id, "bench-worker", "succeeded")
    finally:
        store.dispose()
    return ids, metric_ids


# -- the server, in its own process ---------------------------------------------------------


class NoQueue:
    def enqueue(self, run_id: int, queue: str) -> None:
        """Nothing is trained: submitted runs stay queued."""


def server_kind(method: str, path: str) -> str:
    if path == f"{API}/runs":
        return "submit" if method == "POST" else "list"
    if path == f"{API}/compare":
        return "compare"
    if path.startswith(f"{API}/runs/") and path.endswith("/metrics"):
        return "metrics"
    return "other"


class ServerTimings:
    """ASGI wrapper: per kind, how long each counted request (one with the client's x-bench-sent header)
    waited before the app was called and how long the app took until its response started (not counting
    the body's transfer). GET TIMINGS_PATH returns them and starts afresh.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.reset()
        self._gc_began = 0.0
        gc.callbacks.append(self._gc)

    def reset(self) -> None:
        self.wait: dict[str, list[float]] = defaultdict(list)
        self.start: dict[str, list[float]] = defaultdict(list)
        self.gc: dict[int, list[float]] = defaultdict(list)  # pause ms per generation collected
        self.in_flight = self.max_in_flight = 0

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        """Garbage collections stop every thread of the server (they hold the GIL): time each one."""
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            self.gc[info["generation"]].append((time.perf_counter() - self._gc_began) * 1000)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == TIMINGS_PATH:
            body = json.dumps({"wait": self.wait, "start": self.start, "gc": self.gc,
                               "max_in_flight": self.max_in_flight}).encode()
            self.reset()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        kind = server_kind(scope["method"], scope["path"])
        began = time.perf_counter()
        sent = next((float(v) for k, v in scope["headers"] if k == b"x-bench-sent"), None)
        if sent is not None:  # the client's time.perf_counter(): CLOCK_MONOTONIC, the same in every process
            self.wait[kind].append((began - sent) * 1000)

        async def timed_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and sent is not None:
                self.start[kind].append((time.perf_counter() - began) * 1000)
            await send(message)

        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.in_flight -= 1


def call_patch(spec: str) -> None:
    """Run FILE.py:FUNC or MODULE:FUNC, e.g. to try a change to the server without editing its files."""
    import importlib
    import importlib.util

    where, _, name = spec.rpartition(":")
    if where.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(Path(where).stem, where)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    getattr(module, name)()


def server_main(url: str, home: str, conn: Any, patches: list[str], shared: socket.socket) -> None:
    """Child process: the API app over Store(url), served by uvicorn on the ``shared`` socket, which every
    server process accepts from, and on a port of its own for reading its timings, which it reports."""
    for spec in patches:
        call_patch(spec)
    import uvicorn

    from server.app import create_app
    from server.serve import freeze_long_lived
    from service.db.store import Store
    from service.settings import Settings

    store = Store(url)
    app = create_app(Settings(home=Path(home), database_url=url), store, NoQueue())
    freeze_long_lived()  # as armscope serve does
    own = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    own.bind(("127.0.0.1", 0))
    conn.send(own.getsockname()[1])
    conn.close()
    server = uvicorn.Server(uvicorn.Config(ServerTimings(app), log_level="warning", backlog=1024))
    try:
        server.run(sockets=[shared, own])
    finally:
        store.dispose()


class Server:
    """``count`` server processes accepting from one listening socket, as `armscope serve --processes` runs."""

    def __init__(self, url: str, home: str, patches: list[str], count: int) -> None:
        ctx = mp.get_context("spawn")
        self.processes: list[Any] = []
        self.own_bases: list[str] = []
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        try:
            for _ in range(count):
                self._start(ctx, url, home, patches)
            for process, own in zip(self.processes, self.own_bases, strict=True):
                self._wait_healthy(process, own)
        except BaseException:
            self.stop()
            raise

    def _start(self, ctx: Any, url: str, home: str, patches: list[str]) -> None:
        parent, child = ctx.Pipe(duplex=False)
        process = ctx.Process(target=server_main, args=(url, home, child, patches, self.socket),
                              name="api-load-server", daemon=True)
        process.start()
        self.processes.append(process)
        child.close()
        if not parent.poll(180):
            raise RuntimeError("a server process did not report its port within 180 s")
        self.own_bases.append(f"http://127.0.0.1:{parent.recv()}")

    @staticmethod
    def _wait_healthy(process: Any, base: str) -> None:
        deadline = time.monotonic() + 180
        while True:
            if not process.is_alive():
                raise RuntimeError(f"a server process exited with code {process.exitcode}")
            try:
                if httpx.get(f"{base}{API}/health", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("a server process did not answer /health within 180 s")
            time.sleep(0.1)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def timings(self) -> dict[str, Any]:
        """Every process's timings since the last call, merged (and each process's started afresh)."""
        merged: dict[str, Any] = {"wait": defaultdict(list), "start": defaultdict(list), "gc": defaultdict(list),
                                  "max_in_flight": []}
        for base in self.own_bases:
            part = httpx.get(f"{base}{TIMINGS_PATH}", timeout=30, trust_env=False).json()
            for name in ("wait", "start", "gc"):
                for key, values in part[name].items():
                    merged[name][key].extend(values)
            merged["max_in_flight"].append(part["max_in_flight"])
        return merged

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(15)
            if process.is_alive():
                process.kill()
                process.join(5)
        self.socket.close()


# -- the load -----------------------------------------------------------------------------


@dataclass
class Result:
    kind: str
    ms: float
    ok: bool
    error: str | None = None
    size: int = 0
    at: float = 0.0  # when it was sent (time.perf_counter())


@dataclass
class Load:
    ids: list[int]
    metric_ids: list[int]
    weights: dict[str, float]
    measure_from: float  # time.perf_counter(): requests sent from here (after the ramp-up) are counted
    deadline: float  # and none is sent from here
    max_requests: int
    think_ms: float
    sent: int = 0
    results: list[Result] = field(default_factory=list)
    created: list[int] = field(default_factory=list)

    def take(self) -> bool:
        if time.perf_counter() >= self.deadline or self.sent >= self.max_requests:
            return False
        self.sent += 1
        return True


class User:
    """One simulated user: its own random stream, list cursor and (in run) HTTP connection."""

    def __init__(self, index: int, load: Load) -> None:
        self.rng = random.Random(1000 + index)
        self.load = load
        self.cursor: tuple[dict[str, str], str] | None = None

    def pick(self) -> str:
        return self.rng.choices(list(self.load.weights), list(self.load.weights.values()))[0]

    def request(self, kind: str) -> tuple[str, str, dict[str, Any], Any]:
        rng, load = self.rng, self.load
        if kind == "list":
            if self.cursor and rng.random() < 0.3:
                params, cursor = self.cursor
                return "GET", "/runs", {**params, "cursor": cursor}, None
            params = dict(rng.choice(LIST_FILTERS)) if rng.random() < 0.3 else {}
            params["limit"] = "50"
            return "GET", "/runs", params, None
        if kind == "metrics":
            run_id = rng.choice(load.metric_ids) if rng.random() < 0.9 else rng.choice(load.ids)
            params = {}
            if rng.random() < 0.3:
                params["keys"] = ",".join(rng.sample(METRIC_KEYS, rng.randint(2, 6)))
            if rng.random() < 0.3:
                params["since_epoch"] = str(rng.randint(0, 99))
            return "GET", f"/runs/{run_id}/metrics", params, None
        if kind == "compare":
            runs = rng.sample(load.metric_ids, rng.randint(5, min(20, len(load.metric_ids))))
            return "GET", "/compare", {"runs": ",".join(map(str, runs)), "points": "100"}, None
        body = {"method": "arm", "epochs": 2, "dataset_options": {"n_samples": 300},
                "seed": rng.randint(0, 2**31 - 1), "tags": ["load", f"group{rng.randint(0, 9)}"]}
        return "POST", "/runs", {}, body

    def note(self, kind: str, params: dict[str, Any], response: httpx.Response) -> None:
        """Keep the next cursor of a listing (followed now and then) and the ids of submitted runs."""
        if kind == "list":
            next_cursor = response.json().get("next_cursor")
            used = {k: v for k, v in params.items() if k != "cursor"}
            self.cursor = (used, next_cursor) if next_cursor else None
        elif kind == "submit":
            self.load.created.append(response.json()["id"])

    async def run(self, base: str, timeout: float, delay: float) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        await asyncio.sleep(delay)
        async with httpx.AsyncClient(base_url=f"{base}{API}", timeout=timeout, limits=limits, trust_env=False) as client:
            while self.load.take():
                kind = self.pick()
                method, path, params, body = self.request(kind)
                start = time.perf_counter()
                # the server wrapper times only requests with this header: those that count
                headers = {"x-bench-sent": repr(start)} if start >= self.load.measure_from else None
                try:
                    response = await client.request(method, path, params=params, json=body, headers=headers)
                    ms = (time.perf_counter() - start) * 1000
                    ok = 200 <= response.status_code < 300
                    error = None if ok else f"{method} {kind} -> {response.status_code}: {response.text[:200]}"
                except Exception as exc:  # noqa: BLE001 - every failure counts as an error
                    ms, ok, error, response = (time.perf_counter() - start) * 1000, False, f"{method} {kind}: {exc!r}", None
                self.load.results.append(Result(kind, ms, ok, error, len(response.content) if response else 0, start))
                if ok and response is not None:
                    self.note(kind, params, response)
                if self.load.think_ms > 0:
                    await asyncio.sleep(self.rng.expovariate(1 / self.load.think_ms) / 1000)


def request_costs(server: Server, load: Load, seconds: float) -> dict[str, tuple[float, float, int]]:
    """Each kind alone, one request at a time: server CPU ms and wall ms per request, and how many were sent.

    Independent of other processes on the machine (CPU time, not wall time), so it says what a request
    costs the server and how many requests per second one core could answer with the given mix.
    """
    user = User(-1, load)
    costs = {}
    with httpx.Client(base_url=f"{server.base}{API}", timeout=60, trust_env=False) as client:
        for kind in KINDS:
            count, cpu0, start = 0, cpu_ticks(server.pids), time.perf_counter()
            while time.perf_counter() - start < seconds:
                method, path, params, body = user.request(kind)
                response = client.request(method, path, params=params, json=body)
                response.raise_for_status()
                user.note(kind, params, response)
                count += 1
            wall = time.perf_counter() - start
            costs[kind] = ((cpu_ticks(server.pids) - cpu0) * 1000 / count, wall * 1000 / count, count)
    server.timings()  # start the server's garbage-collection counts afresh
    return costs


async def loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late the load generator's event loop wakes up: if this grows, the client is the bottleneck."""
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append((time.perf_counter() - start - 0.01) * 1000)


class Usage:
    """CPU seconds used so far by the server processes, this process, PostgreSQL and the whole machine."""

    def __init__(self, server_pids: list[int]) -> None:
        self.pids = server_pids

    def take(self) -> dict[str, Any]:
        return {"wall": time.perf_counter(), "client": time.process_time(), "server": cpu_ticks(self.pids),
                "kernel": cpu_ticks(self.pids, system_only=True), "machine": cpu_ticks(), "postgres": postgres_ticks()}

    @staticmethod
    def cores(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        """Average cores busy between two snapshots."""
        wall = max(after["wall"] - before["wall"], 1e-9)
        used = {k: (after[k] - before[k]) / wall for k in ("client", "server", "kernel", "machine")}
        used["postgres"] = sum(t - before["postgres"].get(pid, 0.0) for pid, t in after["postgres"].items()) / wall
        used["other"] = used["machine"] - used["server"] - used["client"] - used["postgres"]
        used["seconds"] = wall
        return used


async def drive(base: str, load: Load, clients: int, timeout: float, usage: Usage) -> tuple[list[float], dict[str, float]]:
    """Users start evenly spread over the ramp-up, then run until the deadline (or the request budget is
    spent); CPU is measured over the counted stretch, whose length is returned as cores["seconds"]."""
    users = [User(i, load) for i in range(clients)]
    stop, lags, snapshots = asyncio.Event(), [], []
    ramp = max(load.measure_from - time.perf_counter(), 0.0)

    async def measure_usage() -> None:
        await asyncio.sleep(max(load.measure_from - time.perf_counter(), 0))
        snapshots.append(usage.take())
        await asyncio.sleep(max(load.deadline - time.perf_counter(), 0))
        snapshots.append(usage.take())

    monitor = asyncio.create_task(loop_lag(stop, lags))
    meter = asyncio.create_task(measure_usage())
    await asyncio.gather(*(u.run(base, timeout, i * ramp / clients) for i, u in enumerate(users)))
    if len(snapshots) < 2:  # the request budget ran out before the deadline
        meter.cancel()
        snapshots.extend(usage.take() for _ in range(2 - len(snapshots)))
    await asyncio.gather(meter, return_exceptions=True)
    stop.set()
    await monitor
    return lags, Usage.cores(*snapshots)


def warm_up(server: Server, metric_ids: list[int]) -> None:
    with httpx.Client(base_url=f"{server.base}{API}", timeout=60, trust_env=False) as client:
        for _ in range(3):
            client.get("/runs", params={"limit": 50}).raise_for_status()
            client.get(f"/runs/{metric_ids[0]}/metrics").raise_for_status()
            client.get("/compare", params={"runs": ",".join(map(str, metric_ids[:10])), "points": 100}).raise_for_status()
            client.post("/runs", json={"method": "arm", "epochs": 2, "dataset_options": {"n_samples": 300}}).raise_for_status()
    server.timings()  # start the server's garbage-collection counts afresh


# -- measuring ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def cpu_ticks(pids: list[int] | None = None, system_only: bool = False) -> float:
    """CPU seconds used by processes (all their threads), or busy CPU seconds of the machine when pids is None."""
    tick = os.sysconf("SC_CLK_TCK")
    if pids is None:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
    used = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used += int(fields[12]) if system_only else int(fields[11]) + int(fields[12])  # utime, stime
    return used / tick


def postgres_ticks() -> dict[int, float]:
    """CPU seconds of each local PostgreSQL process now alive (its backends serve the server's pool)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = cpu_ticks([int(entry.name)])
            except (OSError, IndexError, ValueError):
                continue
    return found


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("  (py-spy not found; no profile)", flush=True)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "200",
         "--format", "raw", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def summarize_profile(path: Path, top: int = 25) -> None:
    """Share of samples in which each function is on the stack (inclusive) and at the top (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        frames = frames[1:] if frames[0].startswith("process ") or frames[0].startswith("thread ") else frames
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    if not total:
        print("  (empty profile)")
        return
    print(f"  profile {path} ({total} samples of non-idle threads): most inclusive")
    for frame, n in inclusive.most_common(top):
        print(f"    {100 * n / total:5.1f}%  {frame[:150]}")
    print("  most self time")
    for frame, n in own.most_common(15):
        print(f"    {100 * n / total:5.1f}%  {frame[:150]}")


@dataclass
class Row:
    database: str
    kind: str
    count: int
    p50: float
    p99: float
    max: float
    errors: int
    wait_p50: float  # from the client's send to the server app's start
    wait_p99: float
    app_p50: float  # from the server app's start to its response's start
    app_p99: float
    rps: float
    kb: float
    cpu_ms: float  # server CPU per request: the kind alone (serial), or for "all" the mix under load


def measure(label: str, url: str, args: argparse.Namespace, weights: dict[str, float]) -> list[Row]:
    print(f"[{label}] seeding {args.runs:,} runs, {args.metric_runs} with {args.epochs} epochs ...", flush=True)
    started = time.perf_counter()
    ids, metric_ids = seed_store(url, args.runs, args.metric_runs, args.epochs)
    print(f"[{label}] seeded in {time.perf_counter() - started:.1f} s; starting the server ...", flush=True)
    with tempfile.TemporaryDirectory() as home:
        server = Server(url, home, args.server_patch, args.server_processes)
        try:
            warm_up(server, metric_ids)
            costs: dict[str, tuple[float, float, int]] = {}
            if args.cost_seconds > 0:
                print(f"[{label}] server cost of each kind alone, {args.cost_seconds:g} s each ...", flush=True)
                probe = Load(ids, metric_ids, weights, math.inf, math.inf, args.max_requests, 0)
                costs = request_costs(server, probe, args.cost_seconds)
            print(f"[{label}] server pids {', '.join(map(str, server.pids))} at {server.base}; {args.clients} clients for "
                  f"{args.seconds:g} s ...", flush=True)
            profiler = None
            if args.profile:
                profile_path = Path(args.profile) / f"api_load-{label.split(',')[0].lower()}.txt"
                profiler = start_profile(server.pids[0], args.ramp_seconds + args.seconds, profile_path)
            now = time.perf_counter()
            load = Load(ids, metric_ids, weights, now + args.ramp_seconds, now + args.ramp_seconds + args.seconds,
                        args.max_requests, args.think_ms)
            lags, cores = asyncio.run(drive(server.base, load, args.clients, args.timeout, Usage(server.pids)))
            timings = server.timings()
            if profiler is not None:
                profiler.wait(60 + args.seconds)
        finally:
            server.stop()

    results = [r for r in load.results if r.at >= load.measure_from]
    elapsed = max(cores["seconds"], 1e-9)
    load_cpu_ms = cores["server"] * elapsed * 1000 / max(len(results), 1)
    rows = []
    for kind in [*KINDS, "all"]:
        chosen = [r for r in results if kind == "all" or r.kind == kind]
        ms = [r.ms for r in chosen]

        def server(name: str) -> list[float]:
            return [v for k, vs in timings[name].items() if k in KINDS and kind in (k, "all") for v in vs]

        rows.append(Row(
            label, kind, len(chosen), percentile(ms, 50), percentile(ms, 99), max(ms, default=math.nan),
            sum(not r.ok for r in chosen), percentile(server("wait"), 50), percentile(server("wait"), 99),
            percentile(server("start"), 50), percentile(server("start"), 99), len(chosen) / elapsed,
            sum(r.size for r in chosen) / max(len(chosen), 1) / 1000, costs[kind][0] if kind in costs else load_cpu_ms,
        ))
    print(f"\n[{label}] {len(results):,} requests sent in {elapsed:.1f} s = {len(results) / elapsed:.1f} req/s, "
          f"{args.clients} clients, think {args.think_ms:g} ms (and {len(load.results) - len(results)} in the "
          f"{args.ramp_seconds:g} s ramp-up, not counted)")
    print(f"  {'':<8} {'':>7} {'client':^26} {'':>6} {'before app':^17} {'in app':^17}")
    print(f"  {'kind':<8} {'count':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6} "
          f"{'p50':>8} {'p99':>8} {'p50':>8} {'p99':>8} {'req/s':>7} {'CPU ms':>7} {'kB':>6}")
    for r in rows:
        print(f"  {r.kind:<8} {r.count:>7,} {r.p50:>8.1f} {r.p99:>8.1f} {r.max:>8.1f} {r.errors:>6} "
              f"{r.wait_p50:>8.1f} {r.wait_p99:>8.1f} {r.app_p50:>8.1f} {r.app_p99:>8.1f} {r.rps:>7.1f} "
              f"{r.cpu_ms:>7.1f} {r.kb:>6.0f}")
    print("  (before app = from the client's send to the server app's start; in app = from there to the response's "
          "start;\n   CPU ms = server CPU per request: the kind alone, one request at a time, or for 'all' the mix "
          "under this load; kB = mean response body)")
    if costs:
        serial = "; ".join(f"{k} {wall_ms:.1f} ms" for k, (_, wall_ms, _) in costs.items())
        total_weight = sum(weights.values())
        mixed = sum(weights[k] * costs[k][0] for k in weights) / total_weight
        print(f"  alone, one at a time: {serial}. The mix costs {mixed:.1f} ms of server CPU per request: "
              f"at most {1000 / mixed:.0f} req/s per core; {args.clients} clients back to back then wait "
              f"{args.clients * mixed:.0f} ms on average (Little's law) on one core")
    if elapsed < 0.5:
        print("  (CPU use not shown: under half a second was counted)")
    else:
        print(f"  CPU (cores busy): server {cores['server']:.2f} ({cores['kernel']:.2f} of it in the kernel), "
              f"load generator {cores['client']:.2f}, PostgreSQL {cores['postgres']:.2f}, other processes "
              f"{cores['other']:.2f}; whole machine {cores['machine']:.2f} of {os.cpu_count()}")
    print(f"  server: at most {' and '.join(map(str, timings['max_in_flight']))} requests in the app at once "
          f"(per process); "
          f"client event-loop lag p50 {percentile(lags, 50):.1f} ms, p99 {percentile(lags, 99):.1f} ms")
    pauses = {int(g): v for g, v in timings["gc"].items()}
    print("  server garbage collections since the ramp-up began (each pauses all its process's threads): " + ", ".join(
        f"generation {g}: {len(v)}, p50 {percentile(v, 50):.1f} ms, max {max(v):.1f} ms, total {sum(v):.0f} ms"
        for g, v in sorted(pauses.items()) if v))
    errors = Counter(r.error for r in results if r.error)
    for message, n in errors.most_common(5):
        print(f"  error x{n}: {message}")
    if args.profile and profiler is not None and profile_path.exists():
        summarize_profile(profile_path)
    print(flush=True)
    return rows


def parse_mix(text: str) -> dict[str, float]:
    weights = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in KINDS:
            raise argparse.ArgumentTypeError(f"mix: unknown kind {name!r}; choose from {', '.join(KINDS)}")
        weights[name] = float(value)
        if weights[name] < 0:
            raise argparse.ArgumentTypeError(f"mix: {name} must not be negative")
    if not any(weights.values()):
        raise argparse.ArgumentTypeError("mix: at least one weight must be positive")
    return {k: v for k, v in weights.items() if v > 0}


def database_label(database: str, args: argparse.Namespace) -> str:
    return database if args.server_processes == 1 else f"{database}, {args.server_processes} server processes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50, help="concurrent simulated users")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured load duration per database")
    parser.add_argument("--ramp-seconds", type=float, default=2.0,
                        help="users start spread over this time before the measured seconds; not counted")
    parser.add_argument("--max-requests", type=int, default=500_000, help="stop sending after this many requests")
    parser.add_argument("--mix", type=parse_mix, default=parse_mix("list=40,metrics=30,compare=20,submit=10"),
                        help="request weights, e.g. list=40,metrics=30,compare=20,submit=10")
    parser.add_argument("--think-ms", type=float, default=0.0, help="mean pause between one user's requests")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres, or both (comma-separated)")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--runs", type=int, default=1000, help="runs seeded")
    parser.add_argument("--metric-runs", type=int, default=50, help="seeded runs with metrics (compare picks 5-20)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of metrics per such run")
    parser.add_argument("--profile", metavar="DIR", help="sample the server with py-spy into DIR")
    parser.add_argument("--cost-seconds", type=float, default=3.0,
                        help="before the load, send each kind alone for this long to measure its server CPU cost")
    parser.add_argument("--server-processes", type=int, default=1,
                        help="server processes sharing the port, as `armscope serve --processes` runs")
    parser.add_argument("--server-patch", action="append", default=[], metavar="FILE.py:FUNC",
                        help="call FUNC in the server process before the app is built (to try a change)")
    args = parser.parse_args()
    databases = [d.strip() for d in args.db.split(",") if d.strip()]
    if not databases or set(databases) - {"sqlite", "postgres"}:
        parser.error("--db: choose sqlite, postgres or both")
    if not 1 <= args.server_processes <= 64:
        parser.error("--server-processes: between 1 and 64")
    if args.metric_runs < 5 or args.metric_runs > args.runs:
        parser.error("--metric-runs: between 5 and --runs")
    if "127.0.0.1" not in args.postgres and "localhost" not in args.postgres and "postgres" in databases:
        parser.error("--postgres: only a local server (127.0.0.1) is contacted")

    # a plain `kill` unwinds too, so the server process stops and the PostgreSQL database is dropped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows: list[Row] = []
    if "sqlite" in databases:
        with tempfile.TemporaryDirectory() as tmp:
            rows += measure(database_label("SQLite", args), f"sqlite:///{tmp}/load.db", args, args.mix)
    if "postgres" in databases:
        from sqlalchemy import create_engine, text

        name = f"armscope_load_{uuid.uuid4().hex[:8]}"
        admin = create_engine(f"{args.postgres}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            rows += measure(database_label("PostgreSQL", args), f"{args.postgres}/{name}", args, args.mix)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    mix = ", ".join(f"{k} {v:g}" for k, v in args.mix.items())
    print(f"{args.clients} clients, {args.seconds:g} s per database, think {args.think_ms:g} ms, mix {mix}; "
          f"{args.runs:,} runs seeded, {args.metric_runs} with {args.epochs} epochs; compare 5-20 runs, points=100\n")
    print("| database | request | count | p50 ms | p99 ms | errors | req/s | server CPU ms/request |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.database} | {r.kind} | {r.count:,} | {r.p50:.1f} | {r.p99:.1f} | {r.errors} | {r.rps:.1f} "
              f"| {r.cpu_ms:.1f} |")
    missed = [r for r in rows if r.kind == "all" and (not r.count or r.p99 >= 150 or r.errors)]
    print("\ntarget p99 < 150 ms, no errors: " + ("met" if not missed else "MISSED on " + ", ".join(
        f"{r.database} (p99 {r.p99:.0f} ms, {r.errors} errors)" if r.count else f"{r.database} (no request counted: "
        "raise --max-requests or lower --ramp-seconds)" for r in missed)))


if __name__ == "__main__":
    main()
