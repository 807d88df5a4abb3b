"""The REST client against a fake server (httpx.MockTransport); the real server is tested end to end elsewhere."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import httpx
import pytest
import typer
from typer.testing import CliRunner

from armscope.client import Client, ClientError
from cli import submit as submit_cli

URL = "http://armscope.test"


def run_json(run_id: int = 1, status: str = "queued", **extra: Any) -> dict[str, Any]:
    return {"id": run_id, "name": f"arm-synthetic-shift-s{run_id}", "status": status, "config": {"epochs": 3},
            "progress": {"epoch": 1, "epochs": 3, "step": 2, "total_steps": 9, "fraction": 0.2,
                         "eta_seconds": 12.0},
            "error": None, "best_val_acc": None, **extra}


class FakeServer:
    """Records every request and answers with ``handler(request)`` (default: 200 with ``{}``)."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.handler = handler or (lambda request: httpx.Response(200, json={}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self, **kwargs: Any) -> Client:
        return Client(URL, transport=httpx.MockTransport(self), **kwargs)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def body(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


CONFIG = {"method": "arm", "dataset": "synthetic-shift", "epochs": 3}

CALLS = [
    (lambda c: c.health(), "GET", "/api/v1/health", {}, None),
    (lambda c: c.catalog(), "GET", "/api/v1/catalog", {}, None),
    (lambda c: c.submit(CONFIG), "POST", "/api/v1/runs", {}, CONFIG),
    (lambda c: c.sweep(CONFIG, ["arm", "baseline"], range(3), name="s"), "POST", "/api/v1/sweeps", {},
     {"config": CONFIG, "methods": ["arm", "baseline"], "seeds": [0, 1, 2], "name": "s"}),
    (lambda c: c.sweep(CONFIG, ["arm"], [0]), "POST", "/api/v1/sweeps", {},
     {"config": CONFIG, "methods": ["arm"], "seeds": [0]}),
    (lambda c: c.sweep(CONFIG, ["arm"], [0], compare=True, variants=[{"method": "arm", "label": "v"}]), "POST",
     "/api/v1/sweeps", {},
     {"config": CONFIG, "methods": ["arm"], "seeds": [0], "variants": [{"method": "arm", "label": "v"}], "compare": True}),
    (lambda c: c.benchmark("uci-mfeat", encoder="mlp"), "GET", "/api/v1/benchmark",
     {"dataset": "uci-mfeat", "encoder": "mlp"}, None),
    (lambda c: c.get(7), "GET", "/api/v1/runs/7", {}, None),
    (lambda c: c.update(7, tags=["a", "b"], notes="n"), "PATCH", "/api/v1/runs/7", {},
     {"tags": ["a", "b"], "notes": "n"}),
    (lambda c: c.update(7, name="x", tags=[]), "PATCH", "/api/v1/runs/7", {}, {"name": "x", "tags": []}),
    (lambda c: c.delete(7), "DELETE", "/api/v1/runs/7", {}, None),
    (lambda c: c.cancel(7), "POST", "/api/v1/runs/7/cancel", {}, None),
    (lambda c: c.retry(7), "POST", "/api/v1/runs/7/retry", {}, None),
    (lambda c: c.metrics(7), "GET", "/api/v1/runs/7/metrics", {}, None),
    (lambda c: c.metrics(7, keys=["val_acc", "shapley.audio"], since_epoch=4), "GET", "/api/v1/runs/7/metrics",
     {"keys": "val_acc,shapley.audio", "since_epoch": "4"}, None),
    (lambda c: c.events(7), "GET", "/api/v1/runs/7/events", {}, None),
    (lambda c: c.compare([1, 2], keys="val_acc", points=100), "GET", "/api/v1/compare",
     {"runs": "1,2", "keys": "val_acc", "points": "100"}, None),
    (lambda c: c.compare_seeds([3, 1], keys=["val_acc", "val_loss"]), "GET", "/api/v1/compare/seeds",
     {"runs": "3,1", "keys": "val_acc,val_loss"}, None),
    (lambda c: c.list(status="running", tag="paper", sweep=3), "GET", "/api/v1/runs",
     {"status": "running", "tag": "paper", "sweep": "3", "limit": "50"}, None),
]


@pytest.mark.parametrize("call, method, path, params, sent", CALLS)
def test_each_call_hits_its_endpoint(call, method, path, params, sent):
    responses = {"/api/v1/runs": {"items": [], "next_cursor": None}}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(204)
        if request.url.path.endswith("/metrics") or request.url.path.endswith("/events"):
            return httpx.Response(200, json=[])
        return httpx.Response(200, json=responses.get(request.url.path, {}))

    server = FakeServer(answer)
    with server.client() as client:
        call(client)
    assert len(server.requests) == 1
    request = server.last
    assert (request.method, request.url.path, dict(request.url.params)) == (method, path, params)
    assert body(request) == sent
    assert "authorization" not in request.headers


def test_submit_sends_a_run_config_as_json(tiny_config):
    server = FakeServer(lambda request: httpx.Response(201, json=run_json()))
    config = tiny_config(tags=["x"])
    assert server.client().submit(config)["id"] == 1
    assert body(server.last) == config.model_dump(mode="json")


def test_the_bearer_token_is_sent_from_the_argument_or_the_environment(monkeypatch):
    server = FakeServer()
    server.client(token="s3cret").health()
    assert server.last.headers["authorization"] == "Bearer s3cret"
    monkeypatch.setenv("ARMSCOPE_API_TOKEN", "from-env")
    server.client().health()
    assert server.last.headers["authorization"] == "Bearer from-env"


def test_the_url_comes_from_the_environment_when_not_given(monkeypatch):
    monkeypatch.setenv("ARMSCOPE_URL", "http://elsewhere:9000/")
    server = FakeServer()
    client = Client(transport=httpx.MockTransport(server))
    client.health()
    assert str(server.last.url) == "http://elsewhere:9000/api/v1/health"
    assert client.run_url(4) == "http://elsewhere:9000/api/v1/runs/4"


def paged(total: int) -> Callable[[httpx.Request], httpx.Response]:
    """A /runs endpoint over ``total`` runs whose cursor is the next offset."""

    def answer(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("cursor", 0))
        end = min(start + int(request.url.params["limit"]), total)
        items = [run_json(i) for i in range(start, end)]
        return httpx.Response(200, json={"items": items, "next_cursor": str(end) if end < total else None})

    return answer


def test_list_follows_the_cursor_to_the_last_page():
    server = FakeServer(paged(23))
    runs = server.client().list(method="arm", page_size=10)
    assert [r["id"] for r in runs] == list(range(23))
    assert [r.url.params.get("cursor") for r in server.requests] == [None, "10", "20"]
    assert all(r.url.params["method"] == "arm" for r in server.requests)


def test_list_stops_at_max_items_without_fetching_more():
    server = FakeServer(paged(500))
    runs = server.client().list(max_items=60)
    assert [r["id"] for r in runs] == list(range(60))
    assert [r.url.params["limit"] for r in server.requests] == ["50", "10"]


def statuses(*sequence: str) -> Callable[[httpx.Request], httpx.Response]:
    """A GET /runs/1 whose status steps through ``sequence`` and then stays at the last one."""
    remaining = list(sequence)

    def answer(request: httpx.Request) -> httpx.Response:
        status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return httpx.Response(200, json=run_json(1, status))

    return answer


@pytest.mark.parametrize("progress", [False, True])
def test_wait_returns_the_run_once_it_is_terminal(progress):
    server = FakeServer(statuses("queued", "running", "running", "succeeded"))
    run = server.client().wait(1, poll=0, progress=progress)
    assert run["status"] == "succeeded"
    assert len(server.requests) == 4


def test_wait_raises_timeout_error_while_the_run_is_still_going():
    server = FakeServer(statuses("running"))
    with pytest.raises(TimeoutError, match="run 1 is still running"):
        server.client().wait(1, timeout=0.05, poll=0.01, progress=False)


@pytest.mark.parametrize("status, detail, expected", [
    (404, "run 9 not found", "HTTP 404 Not Found: run 9 not found"),
    (409, "cannot retry a run that is running", "HTTP 409 Conflict: cannot retry a run that is running"),
    (422, [{"loc": ["body", "epochs"], "msg": "Input should be greater than or equal to 1", "type": "x"},
           {"loc": ["body", "method"], "msg": "unknown method 'nope'", "type": "y"}],
     "HTTP 422 Unprocessable Entity:\n  epochs: Input should be greater than or equal to 1\n"
     "  method: unknown method 'nope'"),
])
def test_error_responses_become_readable_client_errors(status, detail, expected):
    server = FakeServer(lambda request: httpx.Response(status, json={"detail": detail}))
    with pytest.raises(ClientError) as caught:
        server.client().retry(9)
    assert caught.value.status_code == status
    assert str(caught.value) == expected


def test_a_non_json_error_body_is_still_reported():
    server = FakeServer(lambda request: httpx.Response(502, text="Bad gateway from proxy"))
    with pytest.raises(ClientError, match="HTTP 502 Bad Gateway: Bad gateway from proxy"):
        server.client().health()


def test_an_unreachable_server_says_how_to_start_one():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = Client("http://127.0.0.1:8123", transport=httpx.MockTransport(refuse))
    with pytest.raises(ClientError) as caught:
        client.list()
    assert caught.value.status_code is None
    message = str(caught.value)
    assert "http://127.0.0.1:8123 is not reachable" in message and "armscope serve" in message


def test_downloads_stream_to_the_given_file(tmp_path):
    payload = bytes(range(256)) * 1000
    server = FakeServer(lambda request: httpx.Response(
        200, content=b"epoch,val_acc\n1,0.5\n" if request.url.path.endswith(".csv") else payload))
    client = server.client()
    assert client.download_csv(3, tmp_path / "m.csv").read_text() == "epoch,val_acc\n1,0.5\n"
    assert server.last.url.path == "/api/v1/runs/3/metrics.csv"
    assert client.download_checkpoint(3, tmp_path / "ckpt.pt").read_bytes() == payload
    assert server.last.url.path == "/api/v1/runs/3/checkpoint"


def test_a_failed_download_leaves_no_file(tmp_path):
    server = FakeServer(lambda request: httpx.Response(404, json={"detail": "run 3 has no checkpoint yet"}))
    with pytest.raises(ClientError, match="no checkpoint yet"):
        server.client().download_checkpoint(3, tmp_path / "ckpt.pt")
    assert list(tmp_path.iterdir()) == []


def test_metrics_as_frame_without_pandas_names_it_before_any_request(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    server = FakeServer()
    with pytest.raises(ImportError, match="pandas"):
        server.client().metrics(1, as_frame=True)
    assert server.requests == []


def test_metrics_as_frame_is_indexed_by_epoch():
    pytest.importorskip("pandas")
    records = [{"epoch": 1, "val_acc": 0.5, "shapley.audio": 0.2}, {"epoch": 2, "val_acc": 0.6, "shapley.audio": 0.3}]
    server = FakeServer(lambda request: httpx.Response(200, json=records))
    frame = server.client().metrics(1, as_frame=True)
    assert list(frame.index) == [1, 2]
    assert list(frame["shapley.audio"]) == [0.2, 0.3]


# -- armscope submit ---------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def submit_app(monkeypatch) -> tuple[typer.Typer, FakeServer]:
    """A Typer app with only `submit`, whose Client talks to a fake server."""
    server = FakeServer(statuses("queued"))
    created: list[Client] = []

    def fake_client(url: str | None = None, token: str | None = None) -> Client:
        created.append(Client(url or URL, token, transport=httpx.MockTransport(server)))
        return created[-1]

    monkeypatch.setattr(submit_cli, "Client", fake_client)
    app = typer.Typer()
    app.callback()(lambda: None)  # keep `submit` a named subcommand, as in the real app
    submit_cli.register(app)
    return app, server


def test_submit_rejects_an_invalid_config_before_any_request(submit_app, tmp_path):
    app, server = submit_app
    config = tmp_path / "run.yaml"
    config.write_text("method: arm\nepochs: 0\n")
    result = runner.invoke(app, ["submit", "--config", str(config), "--set", "seed=1"])
    assert result.exit_code == 2, result.output
    assert "epochs" in result.output
    assert server.requests == []


def test_submit_posts_the_merged_config_and_prints_the_run(submit_app, tmp_path):
    app, server = submit_app
    server.handler = lambda request: httpx.Response(201, json=run_json(12))
    config = tmp_path / "run.yaml"
    config.write_text("method: baseline\nepochs: 5\n")
    result = runner.invoke(app, ["submit", "-c", str(config), "--set", "epochs=2", "--token", "t"])
    assert result.exit_code == 0, result.output
    sent = body(server.last)
    assert (sent["method"], sent["epochs"]) == ("baseline", 2)
    assert server.last.headers["authorization"] == "Bearer t"
    assert "12" in result.output and f"{URL}/runs/12" in result.output.replace("\n", "")  # its dashboard page
    assert "/api/v1/runs/12" not in result.output


@pytest.mark.parametrize("final, code", [("succeeded", 0), ("failed", 1), ("cancelled", 1)])
def test_submit_wait_exits_by_the_final_status(submit_app, monkeypatch, final, code):
    app, server = submit_app
    monkeypatch.setattr("armscope.client.time.sleep", lambda seconds: None)
    states = iter(["running", final])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json=run_json(5))
        status = next(states)
        return httpx.Response(200, json=run_json(5, status, error="CUDA out of memory" if status == "failed" else None))

    server.handler = answer
    result = runner.invoke(app, ["submit", "--wait"])
    assert result.exit_code == code, result.output
    if final == "failed":
        assert "CUDA out of memory" in result.output
