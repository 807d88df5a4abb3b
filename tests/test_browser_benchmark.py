"""The benchmark page in a real browser: headless Chromium against `armscope serve` (SQLite, embedded worker).

The finished runs are written straight into the server's database (no training), so the page has a
full table at once; the one sweep launched from the page is cancelled as soon as its link shows.
"""

from __future__ import annotations

import re

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from service.db.store import Store
from service.settings import Settings
from tests.browser_support import Server, css_id, screenshot, severe_errors
from tests.test_benchmark import finished_run

# Six methods, best first, each over seeds 0 and 1 (seed 1 two points better).
ACCURACY = {"arm": 0.90, "baseline": 0.85, "ogm-ge": 0.80, "ogm": 0.75, "mmcosine": 0.70, "agm": 0.65}
LAUNCHED = "unimodal"


def seed_finished_runs(server: Server) -> None:
    store = Store(Settings(home=server.home).resolved_database_url)
    try:
        for method, accuracy in ACCURACY.items():
            for seed in (0, 1):
                finished_run(store, method, seed, acc=accuracy + 0.02 * seed, shapley=(0.3, 0.1 + 0.05 * seed))
    finally:
        store.dispose()


def column(driver, title: str) -> list[str]:
    """The texts of the table's column under the sort button with this title, wherever the column stands."""
    return driver.execute_script(
        "const th = document.querySelector(`#benchmark-table button[title='${arguments[0]}']`).closest('th');"
        " const index = [...th.parentElement.children].indexOf(th) + 1;"
        " return [...document.querySelectorAll(`#benchmark-table tbody tr td:nth-child(${index})`)]"
        ".map(td => td.innerText);",
        title,
    )


def methods(driver) -> list[str]:
    """The table's rows by method, top to bottom (read in one script: the table may be redrawn meanwhile)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#benchmark-table tbody tr')].map(tr => tr.dataset.method)"
    )


def points(driver, graph: str) -> int:
    """How many points the chart drew (its markers, not their labels)."""
    return driver.execute_script(
        "return document.querySelectorAll(`#${arguments[0]} .scatterlayer .point`).length", graph
    )


def test_the_benchmark_shows_a_row_per_method_sorts_by_a_header_charts_each_row_and_launches_a_method(server, browser):
    seed_finished_runs(server)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{server.url}/benchmark?dataset=synthetic-shift")
    wait.until(lambda d: len(methods(d)) == len(ACCURACY))
    best_first = list(ACCURACY)
    assert methods(browser) == best_first
    assert [re.match(r"n=(\d+)", text)[1] for text in column(browser, "Sort by runs")] == ["2"] * len(ACCURACY)
    assert column(browser, "Sort by fused acc.")[0] == "91.0% ± 1.4"

    header = "#benchmark-table button[title='Sort by fused acc.']"
    browser.find_element(By.CSS_SELECTOR, header).click()
    wait.until(lambda d: methods(d) == best_first[::-1])
    aria = "return document.querySelector(arguments[0]).closest('th').getAttribute('aria-sort')"
    assert browser.execute_script(aria, header) == "ascending"
    wait.until(lambda d: "sort=val_acc" in d.current_url and "dataset=synthetic-shift" in d.current_url)

    for graph in ("benchmark-imbalance-graph", "benchmark-cost-graph"):
        wait.until(lambda d, graph=graph: points(d, graph) == len(ACCURACY), message=f"{graph} drew no point per row")

    button = css_id({"type": "benchmark-launch", "method": LAUNCHED})
    launch = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, button)))
    # At once: Bootstrap scrolls smoothly, and a click aimed while the page still moves lands elsewhere.
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", launch)
    launch.click()
    answer = css_id({"type": "benchmark-launched", "method": LAUNCHED})
    link = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, f"{answer} a.benchmark-sweep-link")))
    sweep = int(re.search(r"/sweeps/(\d+)$", link.get_attribute("href"))[1])
    runs = server.api.get("/runs", params={"sweep": sweep}).json()["items"]
    for run in runs:  # seen: no need to train them
        server.api.post(f"/runs/{run['id']}/cancel")
    assert sorted((r["method"], r["dataset"], r["seed"]) for r in runs) == [(LAUNCHED, "synthetic-shift", 0),
                                                                             (LAUNCHED, "synthetic-shift", 1)]
    assert "2 runs queued" in browser.find_element(By.CSS_SELECTOR, answer).text
    screenshot(browser, "test_benchmark")
    assert severe_errors(browser) == []
