"""The workspace in a real browser: several charts on the compare page, saved views, the runs table's columns.

The finished runs are written straight into the server's database (no training), so the pages have their
curves at once. Each test saves screenshots under test-output/screenshots/.
"""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from armscope.config import RunConfig
from service.db.store import Store
from service.settings import Settings
from tests.browser_support import Server, css_id, replace_text, screenshot, severe_errors


def finished(server: Server, method: str, seed: int, acc: float, **config) -> int:
    """A succeeded run of three epochs in the server's database."""
    store = Store(Settings(home=server.home).resolved_database_url)
    try:
        data = RunConfig(method=method, seed=seed, epochs=3, dataset="synthetic-shift", **config).model_dump(mode="json")
        run_id = store.create_run(data, queue="cpu")["id"]
        store.claim_run(run_id, "w")
        for epoch in (1, 2, 3):
            store.add_epoch(run_id, {
                "epoch": epoch, "val_acc": acc - 0.1 * (3 - epoch), "val_loss": 1.0 / epoch, "dominant": "audio",
                "shapley.audio": 0.3, "shapley.visual": 0.1 * epoch, "elapsed_seconds": 2.0 * epoch,
                "samples_seen": 100 * epoch,
            })
        store.finish_run(run_id, "w", "succeeded")
        return run_id
    finally:
        store.dispose()


def charts(driver) -> list[dict]:
    """Each chart on the compare page, in order: its metric and how many lines it drew (one script: the page
    redraws live, so elements found one by one may be replaced meanwhile)."""
    return driver.execute_script("""
        return [...document.querySelectorAll('#compare-charts .compare-chart')].map(col => {
            const g = col.querySelector('.js-plotly-plot');
            return {metric: col.dataset.metric,
                    lines: g && g.data ? g.data.filter(t => t.showlegend !== false).length : 0};
        });
    """)


def metrics_in_url(driver) -> list[str]:
    return driver.execute_script(
        "return (new URLSearchParams(window.location.search).get('metric') || '').split(',')")


def test_several_charts_each_with_its_own_metric_added_and_removed_and_kept_in_the_url(server, browser):
    first, second = finished(server, "arm", 0, 0.8), finished(server, "baseline", 0, 0.7)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{server.url}/compare?runs={first},{second}&metric=val_acc,shapley.*")
    wait.until(lambda d: charts(d) == [{"metric": "val_acc", "lines": 2}, {"metric": "shapley.*", "lines": 4}])
    screenshot(browser, "test_workspace_two_charts")

    browser.find_element(By.ID, "compare-add").click()  # no metric picked: the first one not shown yet
    wait.until(lambda d: len(charts(d)) == 3 and charts(d)[2]["lines"] > 0)
    third = charts(browser)[2]["metric"]
    assert third not in ("val_acc", "shapley.*")
    wait.until(lambda d: metrics_in_url(d) == ["val_acc", "shapley.*", third])
    screenshot(browser, "test_workspace_three_charts")

    browser.find_element(By.CSS_SELECTOR, css_id({"type": "compare-remove", "index": 0})).click()
    wait.until(lambda d: [c["metric"] for c in charts(d)] == ["shapley.*", third])
    wait.until(lambda d: metrics_in_url(d) == ["shapley.*", third])
    assert severe_errors(browser) == []


def test_a_saved_view_reopens_the_charts_and_a_taken_name_is_refused(server, browser):
    first, second = finished(server, "arm", 1, 0.85), finished(server, "ogm", 1, 0.75)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{server.url}/compare?runs={first},{second}&metric=val_loss,shapley.*&x=samples")
    wait.until(lambda d: [c["lines"] for c in charts(d)] == [2, 4])
    for attempt in range(2):
        replace_text(browser.find_element(By.ID, "compare-view-name"), "loss and shares")
        # Clicked in the page: a pointer click at the bottom of the window may land on a chart still drawing.
        save = browser.find_element(By.ID, "compare-view-save")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", save)
        expected = "Saved the view 'loss and shares'." if attempt == 0 else "is already saved on the compare page"
        wait.until(lambda d, text=expected: text in d.find_element(By.ID, "compare-view-message").text)
    links = browser.find_elements(By.CSS_SELECTOR, "#compare-view-items a.saved-view-link")
    assert [link.text for link in links] == ["loss and shares"]
    screenshot(browser, "test_workspace_saved_view")

    browser.get(f"{server.url}/compare")  # an empty compare page: one chart, no runs
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#compare-view-items a.saved-view-link"))
    saved = browser.find_element(By.CSS_SELECTOR, "#compare-view-items a.saved-view-link")
    # Clicked in the page: the charts above it still settle, so a pointer click at its place may land on another.
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", saved)
    wait.until(lambda d: [(c["metric"], c["lines"]) for c in charts(d)] == [("val_loss", 2), ("shapley.*", 4)])
    assert f"runs={first},{second}" in browser.current_url and "x=samples" in browser.current_url
    assert "samples seen" in browser.find_element(By.ID, "compare-graph").text
    screenshot(browser, "test_workspace_saved_view_opened")
    assert severe_errors(browser) == []


def test_a_compare_link_s_unknown_run_and_values_are_named_on_the_page(server, browser):
    run = finished(server, "arm", 2, 0.8)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{server.url}/compare?runs={run},99999&x=wall_time&metric=val_acc,val_accc")
    wait.until(lambda d: charts(d) and charts(d)[0]["lines"] == 1)
    notes = lambda d: d.find_element(By.ID, "compare-link-notes").text + d.find_element(By.ID, "compare-notes").text  # noqa: E731
    for said in ("run 99999 does not exist", "x='wall_time' is not an x axis", "'val_accc' is not a metric"):
        wait.until(lambda d, said=said: said in notes(d))
    selected = browser.find_element(By.ID, "compare-selection-list").text
    assert f"#{run} arm-synthetic-shift-s2" in selected
    screenshot(browser, "test_workspace_compare_link_problems")


def test_the_runs_table_shows_chosen_columns_from_its_link(server, browser):
    run = finished(server, "arm", 3, 0.9, lr=0.05, project="paper")
    wait = WebDriverWait(browser, 30)
    browser.get(f"{server.url}/?project=paper&columns=lr,last:val_acc,best:val_loss")
    row = f"#runs-table tr[data-run-id='{run}']"
    cells = """
        const row = document.querySelector(arguments[0]);
        if (!row) return null;
        const heads = [...document.querySelectorAll('#runs-table thead th.chosen-col')].map(th => th.textContent);
        return [heads, [...row.querySelectorAll('td.chosen-col')].map(td => td.innerText)];
    """
    wait.until(lambda d: d.execute_script(cells, row) == [
        ["lr", "val_acc (last)", "val_loss (best)"], ["0.05", "90.0%", "0.3333"]])
    assert browser.execute_script("return document.querySelectorAll('#runs-table tbody tr').length") == 1
    screenshot(browser, "test_workspace_runs_columns")
    assert severe_errors(browser) == []
