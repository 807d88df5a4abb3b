"""Cross-site request forgery: a page on another port of the same host drives a logged-in browser.

SameSite=Lax does not help there (another port is the same site), so a state-changing request
that carries the session cookie must name this server in Origin (or, without one, Referer).
Each test does the attack against a real `armscope serve` (no worker: runs stay queued).
"""

from __future__ import annotations

import http.server
import threading
from functools import partial
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from server.app import create_app
from service.access import COOKIE
from service.settings import Settings
from tests.browser_support import chromium, css_id, quit_browser, screenshot, severe_errors
from tests.fakes import RecordingQueue
from tests.service_support import free_port, service_env, start, stop, wait_for, wait_for_server

WRITE = "w-csrf-0123456789abcdef"
TINY = {"method": "arm", "epochs": 1, "device": "cpu", "dataset_options": {"n_samples": 300}}
ELSEWHERE = f"http://127.0.0.1:{free_port()}"  # another port of the same host: the attacker's page


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("csrf")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(["serve", "--port", str(port), "--no-worker"], service_env(home, ARMSCOPE_API_TOKEN=WRITE),
                 home / "serve.log")
    try:
        wait_for_server(url)
        yield url
    finally:
        stop(proc)


@pytest.fixture
def api(server):
    with httpx.Client(base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {WRITE}"}) as client:
        yield client


def queued_run(api: httpx.Client) -> int:
    response = api.post("/runs", json=TINY)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def logged_in(url: str) -> dict[str, str]:
    """The session cookie a browser gets from the login form, as a request header."""
    response = httpx.post(f"{url}/login", data={"token": WRITE, "next": "/"}, headers={"Origin": url})
    assert response.status_code == 303, response.text
    return {"Cookie": f"{COOKIE}={response.cookies[COOKIE]}"}


def cancel_with_cookie(url: str, run_id: int, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/runs/{run_id}/cancel", headers={**logged_in(url), **headers})


@pytest.mark.service
def test_a_cookie_post_from_another_port_is_refused_and_cancels_nothing(server, api):
    run_id = queued_run(api)
    response = cancel_with_cookie(server, run_id, Origin=ELSEWHERE)
    assert response.status_code == 403
    assert "cross-site request refused" in response.json()["detail"]
    assert api.get(f"/runs/{run_id}").json()["status"] == "queued"


@pytest.mark.service
def test_a_cookie_post_from_the_server_s_own_page_cancels(server, api):
    run_id = queued_run(api)
    assert cancel_with_cookie(server, run_id, Origin=server).status_code == 200
    assert api.get(f"/runs/{run_id}").json()["status"] == "cancelled"


@pytest.mark.service
def test_without_origin_the_referer_decides(server, api):
    run_id = queued_run(api)
    assert cancel_with_cookie(server, run_id, Referer=f"{ELSEWHERE}/page.html").status_code == 403
    assert api.get(f"/runs/{run_id}").json()["status"] == "queued"
    assert cancel_with_cookie(server, run_id, Referer=f"{server}/runs/{run_id}").status_code == 200
    assert api.get(f"/runs/{run_id}").json()["status"] == "cancelled"


@pytest.mark.service
def test_a_cookie_post_naming_no_origin_at_all_is_refused(server, api):
    run_id = queued_run(api)
    response = cancel_with_cookie(server, run_id)
    assert response.status_code == 403 and "Origin or Referer" in response.json()["detail"]
    assert api.get(f"/runs/{run_id}").json()["status"] == "queued"


@pytest.mark.service
def test_bearer_requests_need_no_origin(server, api):
    run_id = queued_run(api)
    assert api.post(f"/runs/{run_id}/cancel").status_code == 200
    assert api.get(f"/runs/{run_id}").json()["status"] == "cancelled"


@pytest.mark.service
def test_a_login_form_posted_from_another_origin_is_refused(server):
    response = httpx.post(f"{server}/login", data={"token": WRITE, "next": "/"}, headers={"Origin": ELSEWHERE})
    assert response.status_code == 403 and COOKIE not in response.cookies


def cancel_callback(url: str, cookie: dict[str, str], run_id: int) -> dict:
    """The body the runs page's "confirm" button posts to cancel ``run_id``, built from Dash's own
    list of callbacks: what an attacker would forge."""
    callbacks = httpx.get(f"{url}/_dash-dependencies", headers=cookie).json()
    confirm = next(c for c in callbacks if c["inputs"] == [{"id": "runs-confirm-ok", "property": "n_clicks"}])
    outputs = [dict(zip(("id", "property"), part.split(".", 1))) for part in confirm["output"].strip(".").split("...")]
    return {
        "output": confirm["output"],
        "outputs": outputs,
        "inputs": [{"id": "runs-confirm-ok", "property": "n_clicks", "value": 1}],
        "state": [
            {"id": "runs-pending", "property": "data", "value": {"action": "cancel", "ids": [run_id]}},
            {"id": "runs-refresh", "property": "data", "value": 0},
            {"id": "runs-selected", "property": "data", "value": [run_id]},
        ],
        "changedPropIds": ["runs-confirm-ok.n_clicks"],
    }


@pytest.mark.service
def test_a_dash_callback_from_another_origin_cancels_nothing(server, api):
    run_id = queued_run(api)
    cookie = logged_in(server)
    body = cancel_callback(server, cookie, run_id)
    forged = httpx.post(f"{server}/_dash-update-component", json=body, headers={**cookie, "Origin": ELSEWHERE})
    assert forged.status_code == 403 and "cross-site request refused" in forged.json()["detail"]
    assert api.get(f"/runs/{run_id}").json()["status"] == "queued"
    own = httpx.post(f"{server}/_dash-update-component", json=body, headers={**cookie, "Origin": server})
    assert own.status_code == 200 and "Cancelled 1 run" in own.text
    assert api.get(f"/runs/{run_id}").json()["status"] == "cancelled"


@pytest.mark.service
def test_an_open_server_refuses_posts_from_other_origins_but_not_scripts(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path), queue=RecordingQueue())) as client:
        foreign = client.post("/api/v1/runs", json=TINY, headers={"Origin": ELSEWHERE})
        assert foreign.status_code == 403 and "cross-site request refused" in foreign.json()["detail"]
        assert client.get("/api/v1/runs").json()["items"] == []
        assert client.post("/api/v1/runs", json=TINY).status_code == 201  # a script: no Origin
        assert client.post("/api/v1/runs", json=TINY, headers={"Origin": "http://testserver"}).status_code == 201


ATTACK = """<!doctype html><html><body>
<form id="attack" method="post" action="{target}"></form>
<script>
  fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include"}})
    .finally(() => document.getElementById("attack").submit());
</script></body></html>"""


@pytest.fixture
def attacker_site(tmp_path):
    """A web server on another port of this host, serving the pages in ``tmp_path``."""
    site = tmp_path / "site"
    site.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", int(ELSEWHERE.rsplit(":", 1)[1])), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        httpd.shutdown()
        httpd.server_close()


def log_in_browser(driver, url: str) -> None:
    driver.get(f"{url}/login")
    driver.find_element(By.ID, "token").send_keys(WRITE)
    driver.find_element(By.ID, "login-button").click()
    WebDriverWait(driver, 30).until(EC.presence_of_element_located((By.ID, "runs-table-wrap")))


@pytest.mark.browser
def test_a_page_on_another_port_cannot_make_a_logged_in_browser_cancel_but_the_dashboard_can(
    server, api, attacker_site: Path
):
    run_id = queued_run(api)
    (attacker_site / "attack.html").write_text(ATTACK.format(target=f"{server}/api/v1/runs/{run_id}/cancel"))
    driver = chromium()
    try:
        log_in_browser(driver, server)
        driver.get(f"{ELSEWHERE}/attack.html")
        WebDriverWait(driver, 30).until(lambda d: d.current_url.startswith(server))  # the form went through
        assert "cross-site request refused" in driver.page_source
        assert api.get(f"/runs/{run_id}").json()["status"] == "queued"
        driver.get_log("browser")  # the attack's refused requests; the dashboard's own must log no error

        wait = WebDriverWait(driver, 30)
        driver.get(server)
        check = css_id({"type": "run-check", "index": run_id})
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, check))).click()
        wait.until(EC.element_to_be_clickable((By.ID, "runs-cancel"))).click()
        wait.until(EC.element_to_be_clickable((By.ID, "runs-confirm-ok"))).click()
        wait_for(lambda: api.get(f"/runs/{run_id}").json()["status"] == "cancelled", 30, "the dashboard's cancel")
        wait.until(lambda d: "Cancelled 1 run" in d.find_element(By.ID, "runs-message").text)
        screenshot(driver, "test_csrf_dashboard_cancel_after_refused_attack")
        assert severe_errors(driver) == []
    finally:
        quit_browser(driver)
