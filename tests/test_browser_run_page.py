"""The run page in a real browser: its environment, its notes and tags edited and saved, a failed run's page.

Each test saves a screenshot under test-output/screenshots/ for a person to look at.
"""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser_support import TINY, replace_text, screenshot, severe_errors
from tests.service_support import wait_for


def click(driver, element) -> None:
    """Click where a person would: the element scrolled (at once: Bootstrap scrolls smoothly) to the middle of the
    window, clear of the sticky navbar."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
    element.click()


def test_a_run_page_shows_its_environment_and_saves_notes_and_tags_edited_in_place(server, browser):
    run_id = server.submit({**TINY, "device": "auto"})
    server.wait_finished(run_id)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{server.url}/runs/{run_id}")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#run-graph-contribution .scatterlayer .trace"))

    click(browser, browser.find_element(By.LINK_TEXT, "Environment"))
    table = wait.until(EC.visibility_of_element_located((By.ID, "run-environment-table"))).text
    assert "cpu (config: auto)" in table and "torch 2" in table and "peak memory" in table

    click(browser, browser.find_element(By.ID, "run-edit-toggle"))
    wait.until(EC.visibility_of_element_located((By.ID, "run-notes-input")))
    replace_text(browser.find_element(By.ID, "run-notes-input"), "visual lags from epoch 1; try OGM next")
    replace_text(browser.find_element(By.ID, "run-tags-input"), "baseline-check, ks")
    click(browser, browser.find_element(By.ID, "run-save"))
    wait.until(lambda d: d.find_elements(By.ID, "run-save-result") and d.find_element(By.ID, "run-save-result").text)
    shown = browser.execute_script(
        "return [document.getElementById('run-save-result').textContent,"
        " document.getElementById('run-notes').textContent, document.getElementById('run-tags').textContent]"
    )
    assert shown == ["Saved.", "visual lags from epoch 1; try OGM next", "baseline-checkks"]
    run = server.api.get(f"/runs/{run_id}").json()
    assert (run["notes"], run["tags"]) == ("visual lags from epoch 1; try OGM next", ["baseline-check", "ks"])
    screenshot(browser, "test_run_page_environment_and_notes")
    assert severe_errors(browser) == []


def test_a_run_that_failed_before_its_first_epoch_shows_its_error_and_no_empty_charts(server, browser, tmp_path):
    run_id = server.submit({**TINY, "dataset": "features", "dataset_options": {"root": str(tmp_path)}})
    wait_for(lambda: server.api.get(f"/runs/{run_id}").json()["status"] == "failed", 90, f"run {run_id} to fail")
    browser.get(f"{server.url}/runs/{run_id}")
    WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.ID, "run-no-epochs-text")))
    page = browser.execute_script(
        "const charts = document.getElementById('run-charts');"
        "return [getComputedStyle(charts).display, document.getElementById('run-no-epochs-text').textContent,"
        " document.getElementById('run-error').textContent,"
        " document.querySelectorAll('#run-charts .js-plotly-plot').length]"
    )
    display, note, error, graphs = page
    assert display == "none" and "failed before completing an epoch" in note
    assert "train.npz: file not found" in error and "This run failed" in error
    assert graphs > 0  # kept on the page, hidden, for a retry's epochs to be drawn into
    screenshot(browser, "test_run_page_failed_before_an_epoch")
    assert severe_errors(browser) == []
