"""The dashboard in a real browser: headless Chromium against `armscope serve` (SQLite, embedded worker).

Each test saves a screenshot under test-output/screenshots/ for a person to look at.
"""

from __future__ import annotations

import re

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from armscope.config import RunConfig
from service.db.store import Store
from service.settings import Settings
from tests.browser_support import TINY, Server, css_id, replace_text, screenshot, severe_errors


def option(section: str, field: str) -> dict[str, str]:
    return {"type": "opt", "section": section, "field": field}


def type_into(driver, ident: dict[str, str], text: str) -> None:
    replace_text(driver.find_element(By.CSS_SELECTOR, css_id(ident)), text)


def plotted_runs(driver) -> list[int]:
    return (
        driver.execute_script("""
        const g = document.querySelector('#compare-graph .js-plotly-plot');
        if (!g || !g.data || !document.querySelector('#compare-graph .scatterlayer .trace')) return [];
        return g.data.filter(t => t.showlegend !== false).map(t => (t.meta || [null])[0]);
    """)
        or []
    )


def points_of(driver, run_id: int) -> list[int]:
    """How many points each of the run's traces on the compare graph has."""
    return (
        driver.execute_script(
            """
        const g = document.querySelector('#compare-graph .js-plotly-plot');
        if (!g || !g.data) return [];
        return g.data.filter(t => (t.meta || [null])[0] === arguments[0]).map(t => t.x.length);
    """,
            run_id,
        )
        or []
    )


def test_launch_a_run_from_the_form_and_see_it_finish_on_the_runs_page(server, browser):
    wait = WebDriverWait(browser, 30)
    browser.get(f"{server.url}/launch")
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css_id(option("run", "epochs")))))
    assert browser.find_element(By.ID, "launch-form")
    Select(browser.find_element(By.ID, "launch-dataset")).select_by_value("synthetic-shift")
    Select(browser.find_element(By.ID, "launch-method")).select_by_value("arm")
    samples = css_id(option("dataset", "n_samples"))

    # A value the schema forbids (n_samples >= 10) is flagged in place and blocks the launch.
    type_into(browser, option("dataset", "n_samples"), "5")
    wait.until(lambda d: "is-invalid" in d.find_element(By.CSS_SELECTOR, samples).get_attribute("class"))
    assert browser.find_element(By.ID, "launch-submit").get_attribute("disabled")

    type_into(browser, option("dataset", "n_samples"), "400")
    type_into(browser, option("dataset", "dims"), "8")
    type_into(browser, option("run", "epochs"), "2")
    type_into(browser, option("model", "feature_dim"), "16")
    Select(browser.find_element(By.CSS_SELECTOR, css_id(option("run", "device")))).select_by_value("cpu")
    wait.until(lambda d: "is-invalid" not in d.find_element(By.CSS_SELECTOR, samples).get_attribute("class"))
    wait.until(lambda d: d.find_element(By.ID, "launch-summary").text.startswith("Launches 1 run"))
    wait.until(EC.element_to_be_clickable((By.ID, "launch-submit"))).click()

    wait.until(lambda d: re.search(r"/runs/\d+$", d.current_url))
    run_id = int(browser.current_url.rsplit("/", 1)[1])
    wait.until(EC.presence_of_element_located((By.ID, "run-detail")))
    config = server.api.get(f"/runs/{run_id}").json()["config"]
    assert (config["epochs"], config["dataset_options"]["n_samples"], config["device"]) == (2, 400, "cpu")

    browser.find_element(By.ID, "nav-runs").click()  # client-side navigation; the table updates itself
    row = f"#runs-table tr[data-run-id='{run_id}']"
    # The table re-renders as it updates itself: a row found may be replaced before its text is read.
    WebDriverWait(browser, 90, poll_frequency=0.25, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: (
            "succeeded" in d.find_element(By.CSS_SELECTOR, row).text.lower()
            if d.find_elements(By.CSS_SELECTOR, row)
            else False
        ),
        message=f"run {run_id} never showed as succeeded:\n{server.logs()}",
    )
    screenshot(browser, "test_launch_runs_page")

    browser.find_element(By.CSS_SELECTOR, f"{row} a.run-link").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#run-graph-contribution .scatterlayer .trace"))
    screenshot(browser, "test_launch_run_detail")
    assert severe_errors(browser) == []


def test_compare_view_of_two_runs_holds_both_runs_traces(server, browser):
    first = server.submit({**TINY, "method": "arm", "seed": 0})
    second = server.submit({**TINY, "method": "baseline", "seed": 1})
    for run_id in (first, second):
        server.wait_finished(run_id)
    wait = WebDriverWait(browser, 30)

    browser.get(f"{server.url}/compare?runs={first},{second}")
    wait.until(lambda d: {first, second} <= set(plotted_runs(d)))
    legend = browser.find_element(By.CSS_SELECTOR, "#compare-graph .legend").text
    assert f"#{first}" in legend and f"#{second}" in legend
    screenshot(browser, "test_compare_two_runs")

    # The URL reproduces a view: another metric, smoothing and x axis, one trace per run.
    browser.get(f"{server.url}/compare?runs={first},{second}&metric=val_acc&smooth=0.5&x=samples&color=method")
    wait.until(lambda d: sorted(plotted_runs(d)) == sorted([first, second]))
    assert "samples seen" in browser.find_element(By.ID, "compare-graph").text

    browser.find_element(By.CSS_SELECTOR, "#theme-switch + label, label[for='theme-switch']").click()
    wait.until(lambda d: d.execute_script("return document.documentElement.dataset.bsTheme") == "dark")
    wait.until(lambda d: sorted(plotted_runs(d)) == sorted([first, second]))
    screenshot(browser, "test_compare_two_runs_dark")
    assert severe_errors(browser) == []


def test_compare_draws_the_mean_over_seeds_with_its_band(server, browser):
    ids = [server.submit({**TINY, "method": method, "seed": seed}) for method, seed in
           [("arm", 10), ("arm", 11), ("baseline", 10)]]
    for run_id in ids:
        server.wait_finished(run_id)
    browser.get(f"{server.url}/compare?runs={','.join(map(str, ids))}&metric=val_acc&group=seeds&color=method")
    WebDriverWait(browser, 30).until(lambda d: sorted(plotted_runs(d)) == ["seeds", "seeds"])
    legend = browser.find_element(By.CSS_SELECTOR, "#compare-graph .legend").text
    assert "arm (n=2)" in legend and "baseline (n=1)" in legend
    assert browser.find_elements(By.CSS_SELECTOR, "#compare-graph .scatterlayer .js-fill")
    summary = browser.find_element(By.ID, "compare-summary-table").text
    assert "arm (n=2)" in summary and "±" in summary
    screenshot(browser, "test_compare_mean_over_seeds")
    assert severe_errors(browser) == []


def test_compare_view_follows_a_running_run_without_a_reload(server, browser):
    finished = server.submit({**TINY, "seed": 2})
    server.wait_finished(finished)
    # This test plays the worker of the second run: stored and claimed, never sent to the real worker.
    store = Store(Settings(home=server.home).resolved_database_url)
    config = RunConfig.model_validate({**TINY, "seed": 3}).model_dump(mode="json")
    live = store.create_run(config, queue="cpu")["id"]
    assert store.claim_run(live, "browser-test")

    def report(epoch: int) -> None:
        store.heartbeat(live, "browser-test", {"step": epoch, "total_steps": 4})
        store.add_epoch(live, {"epoch": epoch, "val_acc": 0.2 * epoch, "dominant": "audio"})

    try:
        report(1)
        wait = WebDriverWait(browser, 30)
        browser.get(f"{server.url}/compare?runs={finished},{live}&metric=val_acc")
        wait.until(lambda d: points_of(d, live) == [1] and points_of(d, finished) == [2])
        report(2)
        report(3)
        wait.until(lambda d: points_of(d, live) == [3], message="the compare graph never showed epochs 2 and 3")
        screenshot(browser, "test_compare_live")
        assert severe_errors(browser) == []
    finally:
        store.finish_run(live, "browser-test", "succeeded")
        store.dispose()


def test_clicking_a_column_header_sorts_the_runs_table_by_it(server, browser):
    for seed in (7, 5):
        server.wait_finished(server.submit({**TINY, "seed": seed}))
    # The table redraws itself while it polls, so elements are looked up afresh on every try.
    wait = WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException])
    browser.get(server.url)
    button = "#runs-table button[title='Sort by seed']"

    def seeds(d) -> list[int]:  # the column under the seed's sort button, wherever it stands
        return d.execute_script(
            f"const th = document.querySelector(\"{button}\").closest('th');"
            " const column = [...th.parentElement.children].indexOf(th) + 1;"
            " return [...document.querySelectorAll(`#runs-table tbody tr td:nth-child(${column})`)]"
            ".map(td => +td.textContent)"
        )

    def order(d) -> str:
        return d.execute_script(f"return document.querySelector(\"{button}\").closest('th').getAttribute('aria-sort')")

    def click(d) -> bool:
        d.find_element(By.CSS_SELECTOR, button).click()
        return True

    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, button)))
    wait.until(click)
    wait.until(lambda d: (s := seeds(d)) == sorted(s) and {5, 7} <= set(s) and order(d) == "ascending")
    ascending = seeds(browser)
    wait.until(click)
    wait.until(lambda d: seeds(d) == sorted(ascending, reverse=True) and order(d) == "descending")
    screenshot(browser, "test_runs_sorted_by_seed")
    assert severe_errors(browser) == []


def test_a_run_named_with_html_shows_as_text_in_the_compare_legend_and_hover(server, browser):
    evil = '<a href="http://evil">x</a>'
    run_id = server.submit({**TINY, "name": evil, "seed": 21})
    server.wait_finished(run_id)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{server.url}/compare?runs={run_id}")  # one line per modality: a legend is drawn
    wait.until(lambda d: plotted_runs(d) == [run_id, run_id])
    links = "return document.querySelectorAll(arguments[0]).length"
    assert evil in browser.find_element(By.CSS_SELECTOR, "#compare-graph .legend").text
    assert browser.execute_script(links, "#compare-graph .legend a") == 0

    browser.execute_script(
        "Plotly.Fx.hover(document.querySelector('#compare-graph .js-plotly-plot'), [{curveNumber: 0, pointNumber: 0}])"
    )
    wait.until(lambda d: evil in d.find_element(By.CSS_SELECTOR, "#compare-graph .hoverlayer").text)
    assert browser.execute_script(links, "#compare-graph .hoverlayer a") == 0
    screenshot(browser, "test_compare_html_name_as_text")
    assert severe_errors(browser) == []


def test_a_compare_link_naming_too_many_runs_says_so_on_the_page(server, browser):
    from service.compare import MAX_COMPARED

    count = MAX_COMPARED + 401
    browser.get(f"{server.url}/compare?runs={','.join(map(str, range(1, count + 1)))}")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "compare-refused"))
    refused = browser.find_element(By.ID, "compare-refused").text
    assert f"Too many runs (at most {MAX_COMPARED} compared at once): {count} given." in refused
    screenshot(browser, "test_compare_too_many_runs")
    assert severe_errors(browser) == []


def test_a_plugin_method_is_offered_trained_and_its_declared_metric_charted_on_its_run_page(tmp_path_factory, browser):
    from tests.plugin_support import TOY, plugin_path

    # The served process and its embedded worker find the test-only plugin folder on their path.
    server = Server(tmp_path_factory.mktemp("plugin"), PYTHONPATH=plugin_path(TOY))
    try:
        server.wait_ready()
        declared = server.api.get("/catalog").json()["methods"]["toy-damped"]["metrics"]
        assert [m["key"] for m in declared] == ["toy_grad_scale.{m}"]
        wait = WebDriverWait(browser, 30)
        browser.get(f"{server.url}/launch")
        wait.until(EC.presence_of_element_located((By.ID, "launch-method")))
        offered = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "launch-method")).options]
        assert "toy-damped" in offered

        run_id = server.submit({**TINY, "method": "toy-damped", "method_options": {"damping": 0.25}})
        server.wait_finished(run_id)
        browser.get(f"{server.url}/runs/{run_id}")
        chart = css_id({"index": 0, "type": "run-method-graph"})
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, f"{chart} .scatterlayer .trace")) == 2)
        text = browser.find_element(By.CSS_SELECTOR, chart).text
        assert "Toy: gradient scale" in text and "Toy gradient scale per modality" in text
        values = browser.execute_script(
            "return document.querySelector(arguments[0]).data.map(t => [t.name, t.y]);", f"{chart} .js-plotly-plot"
        )
        assert values == [["audio", [0.25, 0.25]], ["visual", [0.25, 0.25]]]
        screenshot(browser, "test_plugin_method_run_detail")
        assert severe_errors(browser) == []
    finally:
        server.stop()
