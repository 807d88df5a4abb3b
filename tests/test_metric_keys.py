"""`GET /runs/{id}/metrics?keys=`: a key the run neither logged nor declares is a 422 naming it, never empty rows.

On SQLite and PostgreSQL, through the API and the Python client (which raises the server's answer).
"""

from __future__ import annotations

import httpx
import pytest

from armscope.client import Client, ClientError
from tests.support import TWO_EPOCHS

RECORD = {"epoch": 1, "val_acc": 0.5, "shapley.audio": 0.3, "shapley.visual": 0.1}



@pytest.fixture
def run_id(api, store):
    run = api.post("/api/v1/runs", json=TWO_EPOCHS).json()
    store.add_epoch(run["id"], RECORD)
    return run["id"]


def refusal(api, run_id: int, keys: str) -> str:
    response = api.get(f"/api/v1/runs/{run_id}/metrics", params={"keys": keys})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["query", "keys"]
    return problem["msg"]


def test_an_unknown_key_is_refused_naming_it_with_the_near_miss_and_the_runs_keys(api, run_id):
    message = refusal(api, run_id, "val_acc,val_accc")
    assert "unknown metric key 'val_accc' (did you mean 'val_acc'?)" in message
    assert "shapley.audio" in message and "'val_acc'," not in message.split(";")[0]


def test_every_unknown_key_is_named_at_once(api, run_id):
    message = refusal(api, run_id, "nope,val_accc")
    assert "unknown metric keys 'nope'" in message and "'val_accc'" in message


def test_a_modality_the_run_does_not_have_is_unknown(api, run_id):
    assert "'shapley.vidual' (did you mean 'shapley.visual'?)" in refusal(api, run_id, "shapley.vidual")


def test_logged_keys_come_back(api, run_id):
    rows = api.get(f"/api/v1/runs/{run_id}/metrics", params={"keys": "val_acc,shapley.audio"}).json()
    assert rows == [{"epoch": 1, "val_acc": 0.5, "shapley.audio": 0.3}]


def test_a_declared_key_not_logged_yet_is_no_error(api):
    queued = api.post("/api/v1/runs", json=TWO_EPOCHS).json()  # nothing logged: a poller may ask ahead
    response = api.get(f"/api/v1/runs/{queued['id']}/metrics", params={"keys": "val_acc,shapley.visual,arm_weight.audio"})
    assert response.status_code == 200 and response.json() == []


def test_a_key_only_an_external_run_logs_is_known_to_it(api):
    run = api.post("/api/v1/external-runs", json={"key": "script-run-0002", "name": "own-loop"}).json()
    api.post(f"/api/v1/runs/{run['id']}/log", json={"key": "script-run-0002", "records": [{"epoch": 1, "my_loss": 2.0}]})
    rows = api.get(f"/api/v1/runs/{run['id']}/metrics", params={"keys": "my_loss"}).json()
    assert rows == [{"epoch": 1, "my_loss": 2.0}]
    assert "'my_los' (did you mean 'my_loss'?)" in refusal(api, run["id"], "my_los")


def test_the_client_raises_the_refusal_as_the_api_words_it(api, run_id):
    def forward(request: httpx.Request) -> httpx.Response:
        answer = api.request(request.method, str(request.url.copy_with(scheme="http", host="testserver")))
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)

    with Client("http://armscope.test", transport=httpx.MockTransport(forward)) as client:
        with pytest.raises(ClientError) as refused:
            client.metrics(run_id, keys=["val_accc"])
        assert client.metrics(run_id, keys=["val_acc"]) == [{"epoch": 1, "val_acc": 0.5}]
    assert refused.value.status_code == 422
    assert "query.keys: unknown metric key 'val_accc' (did you mean 'val_acc'?)" in str(refused.value)
