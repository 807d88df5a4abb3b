"""/docs and /redoc work without internet: Swagger UI and ReDoc come from the installed package, not a CDN.

Before, both pages loaded their scripts from a CDN, so a server with no way out showed blank pages. This
machine's Chromium has no way out either, so the browser test below is the offline case itself.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from backend.docs import ASSET_TYPES, ASSETS_URL
from server.app import create_app
from service.settings import Settings
from tests.browser_support import Server, screenshot, severe_errors
from tests.fakes import RecordingQueue

TOKEN = "docs-token-0123456789"
PAGES = ("/docs", "/redoc")


@pytest.fixture
def client(tmp_path):
    """The whole app with a token set: the docs must stay open, as /docs always was."""
    app = create_app(Settings(home=tmp_path, api_token=TOKEN), queue=RecordingQueue())
    with TestClient(app, follow_redirects=False) as c:
        yield c


def referenced(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)


@pytest.mark.parametrize("page", PAGES)
def test_a_docs_page_loads_only_files_this_server_serves(client, page):
    response = client.get(page)
    assert response.status_code == 200
    files = [url for url in referenced(response.text) if url != "/openapi.json"]
    assert files and all(url.startswith(f"{ASSETS_URL}/") for url in files), files
    for url in files:
        served = client.get(url)
        assert served.status_code == 200 and len(served.content) > 1000, url


def test_every_docs_file_is_served_with_its_type_and_open_without_a_session(client):
    for name, media_type in ASSET_TYPES.items():
        response = client.get(f"{ASSETS_URL}/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type), name


@pytest.mark.parametrize("path", [f"{ASSETS_URL}/", f"{ASSETS_URL}/index.html", f"{ASSETS_URL}/../_dash-layout",
                                  "/redocx", f"{ASSETS_URL}/swagger-ui-bundle.js.map"])
def test_nothing_else_near_the_docs_is_open(client, path):
    response = client.get(path)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    """A real `armscope serve` with a token set, so the docs must load without logging in."""
    served = Server(tmp_path_factory.mktemp("docs"), token=TOKEN)
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


def test_swagger_ui_and_redoc_draw_the_api_in_a_browser_with_no_internet(guarded_server, browser):
    wait = WebDriverWait(browser, 30)
    browser.get(f"{guarded_server.url}/docs")
    title = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title")))
    assert title.text.startswith("armscope")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path[data-path='/api/v1/runs']"))
    screenshot(browser, "api-docs-swagger")
    assert severe_errors(browser) == []

    browser.get(f"{guarded_server.url}/redoc")
    heading = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "h1")))
    assert heading.text.startswith("armscope")
    wait.until(lambda d: "/api/v1/runs" in d.find_element(By.TAG_NAME, "body").text)
    screenshot(browser, "api-docs-redoc")
    # ReDoc always tries its maker's logo from the web in its "API docs by Redocly" link, and hides the image
    # when it fails: the one request the page may make outside, and nothing of the documentation.
    assert [e for e in severe_errors(browser) if "cdn.redoc.ly/redoc/logo-mini.svg" not in e] == []
