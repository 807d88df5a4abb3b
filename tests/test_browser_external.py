"""An external run (a script logging through the SDK) in a real browser: live on its page, cancelled from it."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

import armscope
from tests.browser_support import screenshot, severe_errors


def drawn_epochs(driver, graph: str) -> list[int]:
    """The epochs the first line of a run-page chart reaches."""
    return driver.execute_script(
        "const g = document.querySelector(`#${arguments[0]} .js-plotly-plot`) || document.getElementById(arguments[0]);"
        " return g && g.data && g.data.length ? g.data[0].x : [];",
        graph,
    )


def status(driver) -> str:
    """Read in one script: the live redraw replaces the status block while it is being read."""
    return driver.execute_script("const b = document.querySelector('#run-status .status-badge'); return b && b.title")


def text_of(driver, ident: str) -> str:
    return driver.execute_script("const e = document.getElementById(arguments[0]); return e ? e.innerText : ''", ident)


def test_a_scripts_run_shows_live_on_its_page_with_its_own_chart_and_stops_when_cancelled_there(
        server, browser, tmp_path, monkeypatch):
    monkeypatch.setenv("ARMSCOPE_HOME", str(tmp_path))
    wait = WebDriverWait(browser, 30)
    with armscope.init(name="my-avnet", modalities=["audio", "visual"], url=server.url, heartbeat_seconds=0.2,
                       flush_seconds=0.05) as run:
        for epoch in (1, 2):
            run.log({"val_acc": 0.4 + epoch / 10, "val_acc.audio": 0.3, "val_acc.visual": 0.35,
                     "shapley.audio": 0.15, "shapley.visual": 0.2, "dominant": "visual", "lr": 0.1 / epoch},
                    epoch=epoch)
        browser.get(f"{server.url}/runs/{run.id}")
        wait.until(lambda d: len(drawn_epochs(d, "run-graph-accuracy")) == 2,
                   message="the accuracy chart never drew the first two epochs")
        assert status(browser) == "running"
        assert "external: its own script" in text_of(browser, "run-status")
        assert "lr (logged by the script)" in text_of(browser, "run-detail")
        assert not browser.find_elements(By.LINK_TEXT, "Launch again")

        run.log({"val_acc": 0.7, "val_acc.audio": 0.3, "val_acc.visual": 0.4}, epoch=3)
        wait.until(lambda d: len(drawn_epochs(d, "run-graph-accuracy")) == 3,
                   message="the page never showed the third epoch without a reload")

        browser.find_element(By.ID, "run-cancel").click()
        wait.until(EC.element_to_be_clickable((By.ID, "run-confirm-ok"))).click()
        WebDriverWait(browser, 30).until(lambda _: run.should_stop, message="the script never saw the cancel")
    wait.until(lambda d: status(d) == "cancelled", message="the page never showed the run cancelled")
    screenshot(browser, "test_external_run_cancelled")
    assert severe_errors(browser) == []
