"""A sweep in a real browser: launched from the form with two values of one field, then its page, where the
parallel-coordinates plot draws its runs once they finish (headless Chromium against `armscope serve`)."""

from __future__ import annotations

import re

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser_support import css_id, screenshot, severe_errors
from tests.test_browser import option, type_into

# What the page's plot and table hold, read in one script: the page redraws itself while the runs train.
DRAWN = """
const g = document.querySelector('#sweep-parcoords .js-plotly-plot');
const trace = g && g._fullData && g._fullData[0];
if (!trace || trace.type !== 'parcoords' || !document.querySelector('#sweep-parcoords .parcoords')) return null;
return {axes: trace.dimensions.map(d => d.label), lines: trace.dimensions[0].values.length,
        rows: document.querySelectorAll('#sweep-runs-table tbody tr').length,
        best: (document.querySelector('#sweep-best a') || {}).textContent || ''};
"""


def test_a_sweep_launched_from_the_form_opens_on_its_page_with_the_runs_plotted(server, browser):
    wait = WebDriverWait(browser, 30)
    browser.get(f"{server.url}/launch")
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css_id(option("run", "lr")))))
    Select(browser.find_element(By.ID, "launch-method")).select_by_value("baseline")
    for section, field, text in [("dataset", "n_samples", "300"), ("dataset", "dims", "8"), ("run", "epochs", "1"),
                                 ("model", "feature_dim", "16"), ("run", "lr", "0.01, 0.1")]:
        type_into(browser, option(section, field), text)
    Select(browser.find_element(By.CSS_SELECTOR, css_id(option("run", "device")))).select_by_value("cpu")
    wait.until(lambda d: d.find_element(By.ID, "launch-summary").text.startswith("Launches a sweep of 2 runs over lr"))
    assert not browser.find_element(By.CSS_SELECTOR, ".form-advanced").get_attribute("open")  # GPU options folded
    screenshot(browser, "test_sweep_launch_form")
    wait.until(EC.element_to_be_clickable((By.ID, "launch-submit"))).click()

    wait.until(lambda d: re.search(r"/sweeps/\d+$", d.current_url))
    sweep_id = int(browser.current_url.rsplit("/", 1)[1])
    runs = server.api.get(f"/sweeps/{sweep_id}").json()["runs"]
    assert sorted(r["name"] for r in runs) == ["baseline-lr0.01-s0", "baseline-lr0.1-s0"]
    for run in runs:
        server.wait_finished(run["id"])
    drawn = WebDriverWait(browser, 60).until(lambda d: (v := d.execute_script(DRAWN)) and v["lines"] == 2 and v,
                                            message=f"the sweep's plot never showed both runs:\n{server.logs()}")
    assert drawn["axes"] == ["lr", "Fused accuracy (val)"] and drawn["rows"] == 2 and drawn["best"].startswith("#")
    screenshot(browser, "test_sweep_page")
    assert severe_errors(browser) == []
