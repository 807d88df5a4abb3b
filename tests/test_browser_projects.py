"""Projects in a real browser: the benchmark page filters by the project chosen, and the address holds it.

Headless Chromium against `armscope serve` (SQLite, embedded worker); the finished runs are written straight
into the server's database (no training), in two projects.
"""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from service.db.store import Store
from service.settings import Settings
from tests.browser_support import Server, screenshot, severe_errors
from tests.test_benchmark import finished_run

# Each project's methods, two seeds each.
PROJECTS = {"vision": ["arm", "baseline"], "audio study": ["ogm-ge"]}


def seed_projects(server: Server) -> None:
    store = Store(Settings(home=server.home).resolved_database_url)
    try:
        for project, methods in PROJECTS.items():
            for method in methods:
                for seed in (0, 1):
                    finished_run(store, method, seed, acc=0.8 + 0.01 * seed, shapley=(0.3, 0.1), project=project)
    finally:
        store.dispose()


def methods(driver) -> list[str]:
    """The benchmark table's rows by method (read in one script: the table may be redrawn meanwhile)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#benchmark-table tbody tr')].map(tr => tr.dataset.method).sort()"
    )


def choose(driver, wait: WebDriverWait, dropdown: str, option: str) -> None:
    """Open a dropdown and click the option showing ``option``."""
    wait.until(EC.element_to_be_clickable((By.ID, dropdown))).click()
    xpath = f"//*[@role='option'][.//span[normalize-space()='{option}']]"
    wait.until(EC.element_to_be_clickable((By.XPATH, xpath))).click()


def test_the_benchmark_filters_by_the_project_chosen_and_the_address_keeps_it(server, browser):
    seed_projects(server)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{server.url}/benchmark?dataset=synthetic-shift")
    wait.until(lambda d: methods(d) == ["arm", "baseline", "ogm-ge"])

    choose(browser, wait, "benchmark-project", "vision")
    wait.until(lambda d: methods(d) == ["arm", "baseline"])
    wait.until(lambda d: "project=vision" in d.current_url and "dataset=synthetic-shift" in d.current_url)
    screenshot(browser, "projects-benchmark-filtered")

    browser.get(f"{server.url}/benchmark?dataset=synthetic-shift&project=audio%20study")
    wait.until(lambda d: methods(d) == ["ogm-ge"])
    shown = "const v = document.getElementById('benchmark-project-value'); return v && v.innerText"
    wait.until(lambda d: d.execute_script(shown) == "audio study")
    launchable = browser.execute_script("return document.querySelector('#benchmark-launchers').innerText")
    assert "in project audio study" in launchable
    assert severe_errors(browser) == []
