"""Tokens: who may read, who may change, and that no token ever reaches a log."""

from __future__ import annotations

import ipaddress
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import flask
import httpx
import pytest
from fastapi.testclient import TestClient
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from dashboard.actions import may_write
from server.app import create_app
from service.access import COOKIE
from service.db.rate_limit import FailureLimiter, TooManyFailures
from service.settings import Settings
from tests.browser_support import Server, chromium, quit_browser, screenshot
from tests.fakes import RecordingQueue
from tests.service_support import wait_for
from tests.support import ONE_EPOCH as TINY

WRITE, READ = "w-secret-0123456789", "r-secret-9876543210"
# The login form as a browser posts it: the page's own origin comes along (see test_csrf.py).
FORM = {"content-type": "application/x-www-form-urlencoded", "origin": "http://testserver"}


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(home=tmp_path, api_token=WRITE, read_token=READ), queue=RecordingQueue())


@pytest.fixture
def client(app):
    with TestClient(app, follow_redirects=False) as c:
        yield c


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_the_write_token_may_do_everything(client):
    assert client.post("/api/v1/runs", json=TINY, headers=bearer(WRITE)).status_code == 201
    assert client.get("/api/v1/runs", headers=bearer(WRITE)).status_code == 200


def test_without_a_token_every_route_but_health_is_401(client):
    assert client.get("/api/v1/health").json()["auth"] == "token"
    for method, path in [("get", "/api/v1/runs"), ("get", "/api/v1/catalog"), ("post", "/api/v1/runs"),
                         ("get", "/api/v1/compare?runs=1"), ("post", "/api/v1/sweeps")]:
        response = getattr(client, method)(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_wrong_token_is_401_and_stores_nothing(client):
    assert client.post("/api/v1/runs", json=TINY, headers=bearer("guess")).status_code == 401
    assert client.get("/api/v1/runs", headers=bearer(WRITE)).json()["items"] == []


def test_the_read_token_may_read_but_not_change(client):
    run_id = client.post("/api/v1/runs", json=TINY, headers=bearer(WRITE)).json()["id"]
    assert client.get(f"/api/v1/runs/{run_id}", headers=bearer(READ)).status_code == 200
    for method, path in [("post", "/api/v1/runs"), ("post", f"/api/v1/runs/{run_id}/cancel"),
                         ("delete", f"/api/v1/runs/{run_id}"), ("patch", f"/api/v1/runs/{run_id}")]:
        kwargs = {"json": TINY if path.endswith("runs") else {}} if method != "delete" else {}
        response = getattr(client, method)(path, headers=bearer(READ), **kwargs)
        assert response.status_code == 403 and "only read" in response.json()["detail"], path
    assert client.get(f"/api/v1/runs/{run_id}", headers=bearer(WRITE)).json()["status"] == "queued"


@pytest.mark.service
def test_without_a_token_configured_the_api_is_open(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path), queue=RecordingQueue())) as open_client:
        assert open_client.get("/api/v1/health").json()["auth"] == "open"
        assert open_client.post("/api/v1/runs", json=TINY).status_code == 201


def test_pages_need_a_login_and_the_login_sets_a_signed_cookie(client):
    response = client.get("/compare?runs=1")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/compare%3Fruns%3D1"
    assert client.post("/_dash-update-component", json={}).status_code == 401
    wrong = client.post("/login", content="token=nope&next=/", headers=FORM)
    assert wrong.status_code == 401 and "not right" in wrong.text
    right = client.post("/login", content=f"token={WRITE}&next=/compare", headers=FORM)
    assert right.status_code == 303 and right.headers["location"] == "/compare"
    assert WRITE not in right.headers["set-cookie"]
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/runs").status_code == 200  # the cookie also opens the API (downloads)


def test_a_login_never_redirects_to_another_site(client):
    for target in ("https://evil.example", "//evil.example", "/\\evil.example"):
        response = client.post("/login", content=f"token={WRITE}&next={target}", headers=FORM)
        assert response.headers["location"] == "/"


def test_session_cookies_are_signed_and_expire(app):
    auth = app.state.auth
    cookie = auth.session_cookie("read", now=1000.0)
    assert auth.role_of_cookie(cookie, now=1001.0) == "read"
    assert auth.role_of_cookie(cookie, now=1000.0 + 15 * 24 * 3600) is None
    payload, signature = cookie.split(".")
    forged = auth.session_cookie("write", now=1000.0).split(".")[0] + "." + signature
    assert auth.role_of_cookie(forged, now=1001.0) is None


@pytest.mark.parametrize("path", ["/loginx", "/docsx", "/logout2", "/openapi.jsonx",
                                  "/login/%2e%2e/_dash-layout", "/docs/%2e%2e/_dash-layout",
                                  "/api/%2e%2e/_dash-layout", "/api"])
def test_the_gate_opens_only_exact_paths(client, path):
    response = client.get(path)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


def test_the_open_pages_stay_open(client):
    for path in ("/login", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/nothing-here").status_code == 404


def test_a_read_session_may_not_act_from_the_dashboard(app):
    ctx = app.state.dashboard_context
    read_cookie = app.state.auth.session_cookie("read")
    write_cookie = app.state.auth.session_cookie("write")
    with flask.Flask(__name__).test_request_context("/", headers={"Cookie": f"{COOKIE}={read_cookie}"}):
        assert may_write(ctx) is False
    with flask.Flask(__name__).test_request_context("/", headers={"Cookie": f"{COOKIE}={write_cookie}"}):
        assert may_write(ctx) is True


@pytest.mark.service
def test_a_body_over_the_limit_is_413_and_stores_nothing(tmp_path):
    settings = Settings(home=tmp_path, max_body_bytes=2000)
    with TestClient(create_app(settings, queue=RecordingQueue())) as small:
        response = small.post("/api/v1/runs", json={**TINY, "name": "x" * 5000})
        assert response.status_code == 413 and "ARMSCOPE_MAX_BODY_BYTES" in response.json()["detail"]
        assert small.get("/api/v1/runs").json()["items"] == []


@pytest.mark.browser
def test_tokens_never_reach_the_logs_and_the_browser_logs_in_once(tmp_path):
    server = Server(tmp_path, token=WRITE, ARMSCOPE_READ_TOKEN=READ)
    driver = None
    try:
        server.wait_ready()
        run_id = server.submit({**TINY, "device": "cpu"})
        server.wait_finished(run_id)
        httpx.get(f"{server.url}/api/v1/runs", headers=bearer("wrong-" + WRITE))
        httpx.get(f"{server.url}/api/v1/runs", headers=bearer(READ))
        driver = chromium()
        driver.get(f"{server.url}/runs/{run_id}")
        wait = WebDriverWait(driver, 30)
        wait.until(EC.presence_of_element_located((By.ID, "login-form")))
        driver.find_element(By.ID, "token").send_keys(WRITE)
        driver.find_element(By.ID, "login-button").click()
        wait.until(EC.presence_of_element_located((By.ID, "run-detail")))
        assert f"/runs/{run_id}" in driver.current_url
        screenshot(driver, "test_login_then_run_detail")
    finally:
        if driver is not None:
            quit_browser(driver)
        server.stop()
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "access needs ARMSCOPE_API_TOKEN" in log
    assert WRITE not in log and READ not in log


# -- wrong tokens: limited per client address, counted in the database ------------------------


@pytest.fixture
def limited_app(tmp_path, store):
    return create_app(Settings(home=tmp_path, api_token=WRITE, read_token=READ), store=store, queue=RecordingQueue())


def an_address() -> str:
    """A client address of its own, so failures counted in the shared PostgreSQL test database stay apart."""
    return str(ipaddress.IPv4Address(0x0A000000 | (uuid.uuid4().int & 0xFFFFFF)))


def client_at(app, address: str | None = None) -> TestClient:
    return TestClient(app, follow_redirects=False, client=(address or an_address(), 40000))


def test_after_ten_wrong_tokens_a_minute_even_the_right_one_waits(limited_app):
    with client_at(limited_app) as guesser, client_at(limited_app) as colleague:
        for i in range(10):
            assert guesser.get("/api/v1/runs", headers=bearer(f"guess-{i}")).status_code == 401
        refused = guesser.get("/api/v1/runs", headers=bearer("guess-10"))
        assert refused.status_code == 429 and "too many wrong tokens" in refused.json()["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # Were the right token let through now, the answers would tell the guesser which guess was right.
        assert guesser.get("/api/v1/runs", headers=bearer(WRITE)).status_code == 429
        assert colleague.get("/api/v1/runs", headers=bearer(WRITE)).status_code == 200


def test_right_tokens_never_count_toward_the_limit(limited_app):
    with client_at(limited_app) as client:
        for _ in range(30):
            assert client.get("/api/v1/runs", headers=bearer(READ)).status_code == 200
        assert [client.get("/api/v1/runs", headers=bearer("nope")).status_code for _ in range(10)] == [401] * 10


def test_wrong_logins_and_wrong_bearer_tokens_share_one_count(limited_app):
    with client_at(limited_app) as client:
        for i in range(5):
            assert client.post("/login", content=f"token=guess-{i}&next=/", headers=FORM).status_code == 401
            assert client.get("/api/v1/runs", headers=bearer(f"guess-{i}")).status_code == 401
        page = client.post("/login", content=f"token={WRITE}&next=/", headers=FORM)
        assert page.status_code == 429 and "Too many wrong tokens" in page.text
        assert int(page.headers["retry-after"]) >= 1 and COOKIE not in page.cookies


def test_guesses_sent_to_health_count_too(limited_app):
    with client_at(limited_app) as client:
        for i in range(10):
            client.get("/api/v1/health", headers=bearer(f"guess-{i}"))
        assert client.get("/api/v1/runs", headers=bearer(WRITE)).status_code == 429
        assert client.get("/api/v1/health", headers=bearer(WRITE)).status_code == 200


def test_simultaneous_guesses_are_compared_no_more_than_the_limit(limited_app):
    with client_at(limited_app) as client, ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(
            lambda i: client.get("/api/v1/runs", headers=bearer(f"guess-{i}")).status_code, range(40)
        ))
    assert Counter(statuses) == {401: 10, 429: 30}


def test_failures_counted_by_one_process_hold_in_another(store):
    one, other, address = FailureLimiter(store.engine, 10), FailureLimiter(store.engine, 10), an_address()
    for limiter in (one, other) * 5:
        assert limiter.attempt(address, lambda: None) is None
    for limiter in (one, other):
        with pytest.raises(TooManyFailures):
            limiter.attempt(address, lambda: "write")


def test_failures_older_than_the_window_no_longer_count(store):
    limiter, address = FailureLimiter(store.engine, 2, window=1.0), an_address()
    limiter.attempt(address, lambda: None)
    limiter.attempt(address, lambda: None)
    with pytest.raises(TooManyFailures):
        limiter.attempt(address, lambda: "write")

    def let_in() -> bool:
        try:
            return limiter.attempt(address, lambda: "write") == "write"
        except TooManyFailures:
            return False

    wait_for(let_in, 10, "the failures to leave the window")
