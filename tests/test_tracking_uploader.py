"""The SDK's uploader: the loop never waits on the network, and a missing server costs it little."""

from __future__ import annotations

import json
import threading

import httpx

from armscope.client import Client
from armscope.tracking.run import Run
from armscope.tracking.spool import Spool
from tests.service_support import wait_for

KEY = "20261130-abcdef123456"


def spooled_run(tmp_path, handler) -> Run:
    spool = Spool.create(tmp_path / KEY, {"key": KEY, "name": "x"})
    client = Client("http://armscope.test", transport=httpx.MockTransport(handler))
    return Run(spool, client, 7, flush_timeout=5, flush_seconds=0.01, heartbeat_seconds=60)


def test_log_returns_while_the_server_has_not_answered(tmp_path):
    release, asked = threading.Event(), threading.Event()

    def stuck(request: httpx.Request) -> httpx.Response:
        asked.set()
        release.wait(30)
        return httpx.Response(200, json={"should_stop": False, "stored": 0})

    run = spooled_run(tmp_path, stuck)
    run.log({"val_acc": 0.5}, epoch=1)
    asked.wait(10)
    for epoch in range(2, 12):
        run.log({"val_acc": 0.5}, epoch=epoch)  # would hang here if log waited for the request in flight
    assert len(Spool(run.spool.folder).records()[0]) == 11
    release.set()
    run.finish()


def test_while_the_server_is_away_only_empty_heartbeats_probe_for_it(tmp_path):
    bodies: list[dict] = []
    down = threading.Event()
    down.set()

    def server(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if down.is_set():
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"should_stop": False, "stored": len(body.get("records", []))})

    run = spooled_run(tmp_path, server)
    for epoch in range(1, 4):
        run.log({"val_acc": epoch / 10}, epoch=epoch)
    wait_for(lambda: len(bodies) >= 3, 20, "three attempts while the server is away")
    attempts = [len(b["records"]) for b in bodies]
    assert attempts[0] > 0 and all(n == 0 for n in attempts[1:])  # one batch failed, then only probes
    down.clear()
    wait_for(lambda: not run.uploader.pending, 30, "the batch sent once the server answers")
    sent = [b for b in bodies[len(attempts):] if b["records"]]
    assert [r["epoch"] for b in sent for r in b["records"]] == [1, 2, 3]
    run.finish()


def test_a_batch_goes_out_as_the_spool_wrote_it(tmp_path):
    bodies: list[bytes] = []

    def server(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(200, json={"should_stop": False, "stored": 1})

    run = spooled_run(tmp_path, server)
    run.log({"val_acc": 0.5, "dominant": "audio"}, epoch=1)
    run.finish()
    line = (run.spool.folder / "records.jsonl").read_text().strip()
    assert bodies[0] == ('{"key":"' + KEY + '","records":[' + line + "]}").encode()
