"""Issue #12 items 6-8: input built to break the API gets a 4xx naming the problem, never a 500, on both databases.

Each test sends the attack as the issue found it. The HTTP-level ones (chunked bodies, keep-alive, the
delete race) go through a real uvicorn server; the rest through the ASGI app, both on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from backend.limits import MAX_LIST_ITEMS
from server.app import create_app
from service.compare import MAX_COMPARED
from service.db.store import SORTABLE
from service.settings import Settings
from tests.fakes import RecordingQueue
from tests.service_support import free_port, wait_for
from tests.support import TWO_EPOCHS as TINY

JSON = {"content-type": "application/json"}


@pytest.fixture
def app(store, tmp_path):
    return create_app(Settings(home=tmp_path / "home"), store, RecordingQueue())


@pytest.fixture
def api(app):
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def server(app) -> Iterator[tuple[str, int]]:
    """The app behind a real uvicorn server (the server `armscope serve` runs), in this process."""
    port = free_port()
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: uvicorn_server.started, 30, "uvicorn to start")
        yield "127.0.0.1", port
    finally:
        uvicorn_server.should_exit = True
        thread.join(30)


def send_raw(api: TestClient, method: str, path: str, body: str | bytes) -> httpx.Response:
    """A body exactly as written: NaN, 1e400 and lone surrogates, which httpx's JSON encoder refuses to write."""
    return api.request(method, f"/api/v1{path}", content=body, headers=JSON)


def message(response: httpx.Response) -> str:
    return " ".join(f"{e['loc']} {e['msg']}" for e in response.json()["detail"])


def cursor_of(value: Any, run_id: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([value, run_id]).encode()).decode()


def stored_runs(api: TestClient) -> list[dict[str, Any]]:
    return api.get("/api/v1/runs").json()["items"]


# -- numbers JSON cannot carry ------------------------------------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize("field", ["lr", "dataset_options.n_samples"])
def test_a_non_finite_number_in_a_body_is_422_naming_the_field_and_stores_nothing(api, literal, field):
    outer, _, inner = field.partition(".")
    value = {inner: literal} if inner else literal
    body = json.dumps({**TINY, outer: value}).replace(f'"{literal}"', literal)
    response = send_raw(api, "POST", "/runs", body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", *field.split(".")]
    assert "finite number" in message(response)
    assert stored_runs(api) == []


def test_a_non_finite_number_in_a_sweep_config_is_422(api):
    response = send_raw(api, "POST", "/sweeps", '{"config": {"lr": NaN}, "methods": ["arm"], "seeds": [0]}')
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "config", "lr"]
    assert stored_runs(api) == []


# -- text the databases cannot store --------------------------------------------------------


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00", "a\\ud800b"])
def test_a_lone_surrogate_in_a_name_is_422(api, escape):
    response = send_raw(api, "POST", "/runs", json.dumps({**TINY, "name": "NAME"}).replace("NAME", escape))
    assert response.status_code == 422
    assert "not valid JSON" in message(response) and "surrogate" in message(response)
    assert stored_runs(api) == []


@pytest.mark.parametrize("body", ['{"tags": ["\\ud800"]}', '{"notes": "\\ud800"}', '{"name": "\\ud800"}'])
def test_a_lone_surrogate_in_an_edit_is_422_and_changes_nothing(api, body):
    run = api.post("/api/v1/runs", json=TINY).json()
    response = send_raw(api, "PATCH", f"/runs/{run['id']}", body)
    assert response.status_code == 422 and "surrogate" in message(response)
    assert api.get(f"/api/v1/runs/{run['id']}").json() == run


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/runs", {**TINY, "name": "a\x00b"}, ["body", "name"]),
        ("/runs", {**TINY, "tags": ["ok", "x\x00"]}, ["body", "tags", 1]),
        ("/runs", {**TINY, "dataset_options": {"n_samples": 300, "\x00": 1}}, ["body", "dataset_options"]),
        ("/sweeps", {"config": TINY, "methods": ["arm"], "seeds": [0], "name": "\x00"}, ["body", "name"]),
        ("/sweeps", {"config": TINY, "methods": ["arm\x00"], "seeds": [0]}, ["body", "methods", 0]),
    ],
)
def test_a_nul_character_in_a_body_is_422_naming_the_field_and_stores_nothing(api, path, body, loc):
    response = api.post(f"/api/v1{path}", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc and "NUL" in message(response)
    assert stored_runs(api) == []


@pytest.mark.parametrize(
    ("edit", "loc"),
    [({"name": "a\x00"}, ["body", "name"]), ({"notes": "x\x00y"}, ["body", "notes"]),
     ({"tags": ["\x00"]}, ["body", "tags", 0])],
)
def test_a_nul_character_in_an_edit_is_422_and_changes_nothing(api, edit, loc):
    run = api.post("/api/v1/runs", json=TINY).json()
    response = api.patch(f"/api/v1/runs/{run['id']}", json=edit)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc and "NUL" in message(response)
    assert api.get(f"/api/v1/runs/{run['id']}").json() == run


@pytest.mark.parametrize("parameter", ["text", "tag", "method", "dataset", "status", "cursor"])
def test_a_nul_character_in_a_filter_is_422_naming_the_parameter(api, parameter):
    api.post("/api/v1/runs", json=TINY)
    response = api.get("/api/v1/runs", params={parameter: "a\x00b"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", parameter] and "NUL" in message(response)


def test_a_nul_character_in_metric_keys_is_422(api):
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    for path in (f"/runs/{run_id}/metrics", "/compare", "/compare/seeds"):
        response = api.get(f"/api/v1{path}", params={"runs": run_id, "keys": "val_acc,\x00"})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "keys"], path


# -- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["body", "model_options"])
def test_json_nested_100000_deep_is_422_not_a_crash(api, where):
    nested = "[" * 100_000 + "]" * 100_000
    body = nested if where == "body" else json.dumps({**TINY, "model_options": "NESTED"}).replace('"NESTED"', nested)
    response = send_raw(api, "POST", "/runs", body)
    assert response.status_code == 422 and "recursion limit" in message(response)
    assert stored_runs(api) == []


# -- cursors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "value", "run_id", "complaint"),
    [
        ("seed", 0, 2**64 + 1, "run id"),
        ("seed", 2**64 + 1, 1, "seed"),
        ("seed", 2**31, 1, "seed"),
        ("-seed", -(2**31) - 1, 1, "seed"),
        ("created_at", "2024-01-01T00:00:00+00:00", 2**31, "run id"),
        ("name", [1, 2], 1, "name"),
        ("name", "x", True, "run id"),
        ("best_val_acc", "high", 1, "best_val_acc"),
        ("-best_val_acc", 10**400, 1, "best_val_acc"),
        ("created_at", 5, 1, "created_at"),
        ("status", {"a": 1}, 1, "status"),
    ],
)
def test_a_cursor_holding_values_its_sort_field_cannot_have_is_422(api, sort, value, run_id, complaint):
    api.post("/api/v1/runs", json=TINY)
    response = api.get("/api/v1/runs", params={"sort": sort, "cursor": cursor_of(value, run_id)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"] and complaint in message(response)


def test_a_name_cursor_of_a_nested_list_is_422(api):
    """The issue's repro: `sort=name` with a cursor of `[[1,2],1]`."""
    cursor = base64.urlsafe_b64encode(b"[[1,2],1]").decode()
    assert api.get("/api/v1/runs", params={"sort": "name", "cursor": cursor}).status_code == 422


@pytest.mark.parametrize("raw", [b"[1, 2, 3]", b'{"value": 1}', b"[NaN, 1]", b'["\\ud800", 1]', b"[" * 600 + b"]" * 600])
def test_a_cursor_that_is_not_a_pair_of_plain_values_is_422(api, raw):
    response = api.get("/api/v1/runs", params={"sort": "name", "cursor": base64.urlsafe_b64encode(raw).decode()})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("sort", [f"{direction}{field}" for field in SORTABLE for direction in ("", "-")])
def test_the_cursors_the_server_issues_page_through_every_run_once(api, store, sort):
    ids = [api.post("/api/v1/runs", json={**TINY, "seed": s % 3, "name": f"run {s % 2}"}).json()["id"]
           for s in range(5)]
    store.add_epoch(ids[1], {"epoch": 1, "val_acc": 0.25})
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/runs", params={"sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += [r["id"] for r in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids)


# -- LIKE wildcards ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("%", ["100% done"]), ("_", ["a_b"]), ("\\", ["back\\slash"])])
def test_like_wildcards_in_the_text_filter_match_literally(api, text, expected):
    for name in ("100% done", "a_b", "axb", "plain", "back\\slash"):
        api.post("/api/v1/runs", json={**TINY, "name": name})
    assert [r["name"] for r in api.get("/api/v1/runs", params={"text": text}).json()["items"]] == expected


# -- lists in a request ------------------------------------------------------------------------


def test_every_list_in_a_query_is_bounded_with_a_422_naming_the_parameter_and_limit(api):
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    cases = [
        ("/compare", "runs", MAX_COMPARED, {}),
        ("/compare/seeds", "runs", MAX_COMPARED, {}),
        ("/compare", "keys", MAX_LIST_ITEMS, {"runs": run_id}),
        ("/compare/seeds", "keys", MAX_LIST_ITEMS, {"runs": run_id}),
        (f"/runs/{run_id}/metrics", "keys", MAX_LIST_ITEMS, {}),
        ("/runs", "status", MAX_LIST_ITEMS, {}),
    ]
    for path, parameter, limit, others in cases:
        item = str(run_id) if parameter == "runs" else ("queued" if parameter == "status" else "val_acc")
        assert api.get(f"/api/v1{path}", params={**others, parameter: ",".join([item] * limit)}).status_code == 200
        response = api.get(f"/api/v1{path}", params={**others, parameter: ",".join([item] * (limit + 1))})
        assert response.status_code == 422, (path, parameter)
        assert response.json()["detail"][0]["loc"] == ["query", parameter] and f"at most {limit}" in message(response)


@pytest.mark.parametrize(("field", "items", "limit"), [("seeds", list(range(101)), 100), ("methods", ["arm"] * 65, 64)])
def test_a_sweep_list_over_its_bound_is_422_naming_the_field(api, field, items, limit):
    body = {"config": TINY, "methods": ["arm"], "seeds": [0], field: items}
    response = api.post("/api/v1/sweeps", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field] and f"at most {limit}" in message(response)


# -- over real HTTP ------------------------------------------------------------------------------


def get_over_http(server: tuple[str, int], path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*server, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_compare_with_thousands_of_ids_is_refused_naming_the_limit(server):
    """The issue's repro sent 110,000 ids (a 700 kB URL): uvicorn refuses URLs over about 64 kB itself;
    the 10,000 ids that fit are refused with one bounded split, before any id is parsed."""
    ids = ",".join(str(i) for i in range(1, 110_001))
    assert 400 <= get_over_http(server, f"/api/v1/compare?runs={ids}")[0] < 500
    status, body = get_over_http(server, "/api/v1/compare?runs=" + ",".join(str(i) for i in range(1, 10_001)))
    assert status == 422 and f"at most {MAX_COMPARED}" in json.loads(body)["detail"][0]["msg"]


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


def test_a_chunked_body_over_the_limit_is_413_not_400(server, api):
    """2.5 MB sent without a Content-Length, as `Transfer-Encoding: chunked`."""
    host, port = server
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("POST", "/api/v1/runs", body=chunks(2_500_000), headers=JSON, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413
    assert "ARMSCOPE_MAX_BODY_BYTES" in json.loads(response.read())["detail"]
    connection.close()
    assert stored_runs(api) == []


HOSTILE_REQUESTS = [
    ("POST", "/api/v1/runs", b'{"lr": NaN}'),
    ("POST", "/api/v1/runs", b'{"lr": 1e400}'),
    ("POST", "/api/v1/runs", b'{"name": "\\ud800"}'),
    ("POST", "/api/v1/runs", b'{"name": "\\u0000"}'),
    ("POST", "/api/v1/runs", b"[" * 100_000 + b"]" * 100_000),
    ("POST", "/api/v1/sweeps", b'{"config": {}, "methods": ["arm"], "seeds": [0], "name": "\\u0000"}'),
    ("GET", "/api/v1/runs?sort=seed&cursor=" + cursor_of(2**70, 2**70), b""),
    ("GET", "/api/v1/runs?text=%00", b""),
]


def test_hostile_requests_get_4xx_and_leave_the_keep_alive_connection_usable(server):
    host, port = server
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", "/api/v1/health")
    connection.getresponse().read()
    socket = connection.sock
    for method, path, body in HOSTILE_REQUESTS:
        connection.request(method, path, body=body or None, headers=JSON if body else {})
        response = connection.getresponse()
        assert 400 <= response.status < 500, (path, body[:40], response.status)
        response.read()
        connection.request("GET", "/api/v1/health")
        assert connection.getresponse().read() and connection.sock is socket, (path, body[:40])
    connection.close()


def test_of_32_concurrent_deletes_of_a_cancelled_run_one_gets_204_and_the_others_404(server, api):
    host, port = server
    run_id = api.post("/api/v1/runs", json=TINY).json()["id"]
    api.post(f"/api/v1/runs/{run_id}/cancel")
    barrier = threading.Barrier(32)
    statuses: list[int] = []

    def delete() -> None:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as client:
            barrier.wait()
            statuses.append(client.delete(f"/api/v1/runs/{run_id}").status_code)

    threads = [threading.Thread(target=delete) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [204] + [404] * 31
