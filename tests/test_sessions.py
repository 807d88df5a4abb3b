"""Browser sessions: what a read-only colleague holding a cookie could try, done for real.

The cookie used to be signed with sha256("armscope-session:" + API token): a read cookie let its
holder test guesses of the write token offline, then forge a write session. Now it is signed with
a per-installation secret, names a session the database can end, and still dies with either token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from server.app import create_app
from service.access import COOKIE
from service.secret_key import FILE_NAME, SecretKeyError
from service.settings import Settings
from tests.fakes import RecordingQueue
from tests.service_support import free_port, service_env, start, stop, wait_for, wait_for_server
from tests.support import ONE_EPOCH as TINY

WRITE, READ = "w-secret-0123456789", "r-secret-9876543210"
FORM = {"content-type": "application/x-www-form-urlencoded", "origin": "http://testserver"}


def server_app(home: Path, store, **settings):
    """One server process: its own app on a shared home and database."""
    tokens = {"api_token": WRITE, "read_token": READ, **settings}
    return create_app(Settings(home=home, **tokens), store=store, queue=RecordingQueue())


def log_in(app, token: str) -> str:
    with TestClient(app, follow_redirects=False) as client:
        response = client.post("/login", content=f"token={token}&next=/", headers=FORM)
        assert response.status_code == 303, response.text
        return response.cookies[COOKIE]


def with_cookie(cookie: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={cookie}", "Origin": "http://testserver"}


def api_answer(app, cookie: str, method: str = "get", path: str = "/api/v1/runs") -> int:
    with TestClient(app, follow_redirects=False) as client:
        kwargs = {"json": TINY} if method == "post" else {}
        return getattr(client, method)(path, headers=with_cookie(cookie), **kwargs).status_code


def unsigned(cookie: str) -> tuple[bytes, bytes]:
    payload, signature = cookie.split(".")
    return base64.urlsafe_b64decode(payload), base64.urlsafe_b64decode(signature)


def signed(payload: bytes, key: bytes) -> str:
    signature = hmac.new(key, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(payload).decode() + "." + base64.urlsafe_b64encode(signature).decode()


OLD_KEY = hashlib.sha256(b"armscope-session:" + WRITE.encode()).digest()  # the key the issue broke


# -- the attack of issue 12 -------------------------------------------------------------------


@pytest.mark.service
def test_a_read_cookie_cannot_test_guesses_of_the_write_token(tmp_path, store):
    payload, signature = unsigned(log_in(server_app(tmp_path, store), READ))
    guesses = ["password", "w-secret", WRITE.upper(), WRITE]  # the right token is among them
    for guess in guesses:
        old_style_key = hashlib.sha256(b"armscope-session:" + guess.encode()).digest()
        assert hmac.new(old_style_key, payload, hashlib.sha256).digest() != signature, guess


@pytest.mark.service
def test_a_write_session_forged_with_the_write_token_is_refused(tmp_path, store):
    app = server_app(tmp_path, store)
    session_id = unsigned(log_in(app, READ))[0].decode().split(".")[0]
    expires = int(time.time()) + 3600
    for payload in (f"write.{expires}", f"{session_id}.write.{expires}"):
        forged = signed(payload.encode(), OLD_KEY)
        assert api_answer(app, forged, "post", "/api/v1/runs") == 401, payload
        with TestClient(app, follow_redirects=False) as client:
            assert client.get("/", headers=with_cookie(forged)).status_code == 303
    assert app.state.store.list_runs()[0] == []


@pytest.mark.service
def test_two_installations_with_the_same_tokens_refuse_each_others_cookies(tmp_path, store):
    one, other = server_app(tmp_path / "one", store), server_app(tmp_path / "other", store)
    cookie = log_in(one, WRITE)
    assert api_answer(one, cookie) == 200
    assert api_answer(other, cookie) == 401  # same tokens, same database: only the secret differs


# -- the secret ---------------------------------------------------------------------------------


@pytest.mark.service
def test_the_secret_is_made_on_first_start_private_and_kept(tmp_path, store):
    first = server_app(tmp_path, store)
    secret = tmp_path / FILE_NAME
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    content = secret.read_text()
    cookie = log_in(first, WRITE)
    restarted = server_app(tmp_path, store)
    assert secret.read_text() == content and api_answer(restarted, cookie) == 200
    assert sorted(p.name for p in tmp_path.iterdir() if FILE_NAME in p.name) == [FILE_NAME]


RACER = """
import sys, time
from pathlib import Path
from service.secret_key import installation_secret
from service.settings import Settings
home, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
print(installation_secret(Settings(home=home)).hex())
"""


@pytest.mark.service
def test_processes_starting_together_agree_on_one_secret(tmp_path):
    home, gates = tmp_path / "home", tmp_path / "gates"
    gates.mkdir()
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, str(home), str(gates / f"ready-{i}"), str(gates / "go")],
                         stdout=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    wait_for(lambda: len(list(gates.glob("ready-*"))) == len(racers), 120, "every racer to start")
    (gates / "go").touch()
    keys = {racer.communicate(timeout=60)[0].strip() for racer in racers}
    assert keys == {(home / FILE_NAME).read_text().strip()}
    assert [p.name for p in home.iterdir()] == [FILE_NAME]  # no temporary file left behind


@pytest.mark.service
def test_a_secret_file_other_users_may_read_is_refused(tmp_path, store):
    server_app(tmp_path, store)
    (tmp_path / FILE_NAME).chmod(0o644)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        server_app(tmp_path, store)


@pytest.mark.service
def test_a_damaged_secret_file_is_refused_naming_it(tmp_path, store):
    secret = tmp_path / FILE_NAME
    secret.write_text("not a key\n")
    secret.chmod(0o600)
    with pytest.raises(SecretKeyError, match=f"{secret} is not 64 hexadecimal characters"):
        server_app(tmp_path, store)


@pytest.mark.service
def test_armscope_secret_key_lets_servers_with_different_homes_share_sessions(tmp_path, store):
    key = "k" * 40
    one, other = server_app(tmp_path / "one", store, secret_key=key), server_app(tmp_path / "other", store, secret_key=key)
    assert api_answer(other, log_in(one, WRITE)) == 200
    assert not (tmp_path / "one" / FILE_NAME).exists() and not (tmp_path / "other" / FILE_NAME).exists()


def test_a_short_secret_key_is_refused_naming_the_setting():
    with pytest.raises(ValidationError, match="secret_key"):
        Settings(secret_key="short")


@pytest.mark.service
def test_no_secret_is_made_at_import_or_without_a_token(tmp_path):
    env = service_env(tmp_path / "home", ARMSCOPE_API_TOKEN=WRITE)
    subprocess.run([sys.executable, "-c", "import backend.api, server.serve, cli.main"], env=env, check=True)
    assert not (tmp_path / "home" / FILE_NAME).exists()
    create_app(Settings(home=tmp_path / "open"), queue=RecordingQueue())
    assert not (tmp_path / "open" / FILE_NAME).exists()


# -- ending sessions ----------------------------------------------------------------------------


@pytest.mark.service
@pytest.mark.parametrize("changed", [{"api_token": "w-changed-0123456789"}, {"read_token": "r-changed-0123456789"}])
def test_changing_either_token_logs_every_browser_out(tmp_path, store, changed):
    before = server_app(tmp_path, store)
    cookies = [log_in(before, WRITE), log_in(before, READ)]
    after = server_app(tmp_path, store, **changed)
    assert [api_answer(after, cookie) for cookie in cookies] == [401, 401]
    assert [api_answer(server_app(tmp_path, store), cookie) for cookie in cookies] == [200, 200]


@pytest.mark.service
def test_logging_out_ends_the_session_in_every_process(tmp_path, store):
    one, other = server_app(tmp_path, store), server_app(tmp_path, store)
    cookie = log_in(one, WRITE)
    assert api_answer(other, cookie) == 200
    with TestClient(one, follow_redirects=False) as client:
        response = client.get("/logout", headers={"Cookie": f"{COOKIE}={cookie}"})
        assert response.status_code == 303 and response.headers["location"] == "/login"
    assert api_answer(other, cookie) == 401 and api_answer(one, cookie) == 401
    with TestClient(other, follow_redirects=False) as client:
        assert client.get("/", headers=with_cookie(cookie)).status_code == 303


# -- real servers sharing a home ----------------------------------------------------------------


def serve(home: Path, *options: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = service_env(home, ARMSCOPE_API_TOKEN=WRITE, ARMSCOPE_READ_TOKEN=READ)
    return f"http://127.0.0.1:{port}", start(["serve", "--port", str(port), "--no-worker", *options], env,
                                             home / f"serve-{port}.log")


def http_log_in(url: str) -> str:
    response = httpx.post(f"{url}/login", data={"token": WRITE, "next": "/"}, headers={"Origin": url})
    assert response.status_code == 303, response.text
    return response.cookies[COOKIE]


@pytest.mark.service
def test_servers_sharing_a_home_share_the_secret_sessions_logouts_and_failure_counts(tmp_path):
    (one, first), (other, second) = serve(tmp_path), serve(tmp_path)  # starting together: they race for the secret
    try:
        wait_for_server(one)
        wait_for_server(other)
        assert stat.S_IMODE((tmp_path / FILE_NAME).stat().st_mode) == 0o600
        cookie = {"Cookie": f"{COOKIE}={http_log_in(one)}"}
        assert httpx.get(f"{other}/api/v1/runs", headers=cookie).status_code == 200
        assert httpx.get(f"{one}/logout", headers=cookie).status_code == 303
        assert httpx.get(f"{other}/api/v1/runs", headers=cookie).status_code == 401

        wrong = {"Authorization": "Bearer guess"}
        for _ in range(5):
            assert httpx.get(f"{one}/api/v1/runs", headers=wrong).status_code == 401
            assert httpx.get(f"{other}/api/v1/runs", headers=wrong).status_code == 401
        assert httpx.get(f"{one}/api/v1/runs", headers=wrong).status_code == 429
        assert httpx.get(f"{other}/api/v1/runs", headers=wrong).status_code == 429
    finally:
        stop(first)
        stop(second)


@pytest.mark.service
def test_every_process_of_serve_processes_accepts_the_cookie(tmp_path):
    url, server = serve(tmp_path, "--processes", "3")
    try:
        wait_for_server(url)
        cookie = {"Cookie": f"{COOKIE}={http_log_in(url)}"}
        # A fresh connection each time, which the kernel spreads over the three processes.
        answers = [httpx.get(f"{url}/api/v1/runs", headers=cookie).status_code for _ in range(30)]
        assert answers == [200] * 30
        assert [p.name for p in tmp_path.iterdir() if FILE_NAME in p.name] == [FILE_NAME]
    finally:
        stop(server)
