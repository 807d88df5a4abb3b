"""A sweep read back (store, service) and its page `/sweeps/<id>`, against a real store and a recording queue."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from dashboard.app import is_page, route
from dashboard.pages import sweep as page
from server.app import create_app
from service import sweeps
from service.db.store import SweepNotFound
from service.errors import InvalidInput
from service.sweeps import SweepSpec
from tests.layout_support import dump, find
from tests.support import FORM_RUN
from tests.test_dashboard_hostile import ORIGIN, callback_request

SEARCH = {"lr": {"values": [0.01, 0.1]}, "method_options.alpha": {"log_range": [0.1, 10, 3]}}


def launch(store, queue, **fields):
    spec = SweepSpec(**{"config": FORM_RUN, "methods": ["ogm"], "seeds": [0], "search": SEARCH, **fields})
    return sweeps.submit(store, queue, spec)


def finish(store, run_id: int, **record) -> None:
    """The run trains one epoch that logs ``record``, and succeeds."""
    store.claim_run(run_id, "w")
    store.add_epoch(run_id, {"epoch": 1, **record})
    store.finish_run(run_id, "w", "succeeded")



# -- the store and the service --------------------------------------------------------------------


def test_a_stored_sweep_is_read_back_with_its_spec_and_its_runs_by_status(store, ctx):
    sweep = launch(store, ctx.queue)
    finish(store, sweep["runs"][0]["id"], val_acc=0.5)
    record = store.get_sweep(sweep["id"])
    assert record["spec"]["search"]["lr"] == {"values": [0.01, 0.1], "range": None, "log_range": None}
    assert record["counts"] == {"queued": 5, "succeeded": 1} and record["run_count"] == 6
    assert [s["id"] for s in store.list_sweeps()] == [sweep["id"]]
    with pytest.raises(SweepNotFound, match="sweep 999 does not exist"):
        store.get_sweep(999)


def test_each_run_has_its_swept_values_and_final_metric_and_the_best_run_is_named(ctx):
    sweep = launch(ctx.store, ctx.queue)
    runs = sweep["runs"]
    for run, acc in zip(runs, (0.5, 0.9, 0.7)):
        finish(ctx.store, run["id"], val_acc=acc, val_loss=acc)
    view = sweeps.get(ctx.store, sweep["id"])
    assert view["swept"] == ["lr", "method_options.alpha"]
    assert [r["swept"] for r in view["runs"][:2]] == [{"lr": 0.01, "method_options.alpha": 0.1},
                                                      {"lr": 0.01, "method_options.alpha": 1.0}]
    assert [r["final"] for r in view["runs"]] == [0.5, 0.9, 0.7, None, None, None]
    assert view["best"] == runs[1]["id"] and view["metrics"][0] == "val_acc"
    lowest = sweeps.get(ctx.store, sweep["id"], "val_loss")  # declared lower is better
    assert lowest["best"] == runs[0]["id"] and lowest["lower_is_better"]


def test_an_unknown_metric_is_refused_by_the_service(ctx):
    sweep = launch(ctx.store, ctx.queue)
    finish(ctx.store, sweep["runs"][0]["id"], val_acc=0.5)
    with pytest.raises(InvalidInput) as caught:
        sweeps.get(ctx.store, sweep["id"], "val_accc")
    assert caught.value.problems[0]["loc"] == ["metric"] and "did you mean 'val_acc'?" in str(caught.value)


def test_a_comparison_s_control_is_told_from_its_method_by_its_options(ctx):
    spec = SweepSpec(config={**FORM_RUN, "method": "arm"}, methods=["arm"], seeds=[0, 1], compare=True)
    sweep = sweeps.submit(ctx.store, ctx.queue, spec)
    view = sweeps.get(ctx.store, sweep["id"])
    assert view["swept"] == ["method", "seed"]
    assert {r["swept"]["method"] for r in view["runs"]} == {"arm", "baseline", "ogm-ge", "arm (no-reweight)"}


# -- the page -------------------------------------------------------------------------------------


def test_the_page_lives_at_the_sweep_s_address():
    assert is_page("/sweeps/3") and not is_page("/sweeps/x") and not is_page("/sweeps")


def test_the_page_shows_what_was_swept_the_best_run_and_every_run(ctx):
    sweep = launch(ctx.store, ctx.queue, name="lr x alpha")
    best = sweep["runs"][2]
    finish(ctx.store, sweep["runs"][0]["id"], val_acc=0.5)
    finish(ctx.store, best["id"], val_acc=0.8)
    layout = route(ctx, f"/sweeps/{sweep['id']}", "", "light")
    text = dump(layout)
    assert "lr x alpha" in text and "0.1 to 10, 3 values on a log scale" in text and "0.01, 0.1" in text
    assert f"/runs/{best['id']}" in dump(find(layout, "sweep-best")) and "80.0%" in dump(find(layout, "sweep-best"))
    table = dump(find(layout, "sweep-runs-table"))
    assert all(f'"data-run-id": "{r["id"]}"' in table for r in sweep["runs"]) and "table-success" in table
    assert find(layout, "sweep-interval").disabled is False  # runs still queued: the page polls


def test_the_plot_has_an_axis_per_swept_field_and_one_for_the_metric(ctx):
    sweep = launch(ctx.store, ctx.queue)
    for run, acc in zip(sweep["runs"], (0.5, 0.9, 0.7, 0.6)):
        finish(ctx.store, run["id"], val_acc=acc)
    figure = page.parcoords_figure(sweeps.get(ctx.store, sweep["id"]))
    (trace,) = figure.data
    assert trace.type == "parcoords"
    lr, alpha, acc = trace.dimensions
    assert (lr.label, list(lr.values)) == ("lr", [0.01, 0.01, 0.01, 0.1])
    assert alpha.label == "method_options.alpha (log)" and list(alpha.ticktext) == ["0.1", "1", "10"]
    assert [round(v, 9) for v in alpha.values] == [-1, 0, 1, -1] and list(acc.values) == [0.5, 0.9, 0.7, 0.6]
    assert "4 of 6 runs" in figure.layout.title.text


def test_categories_such_as_methods_are_labelled_axes():
    axis = page.dimension("method", ["arm", "baseline", "arm", None])
    assert list(axis["ticktext"]) == ["arm", "baseline", "—"] and axis["values"] == [0, 1, 0, 2]
    assert page.dimension("lr", [0.1, 0.01], log=True)["values"] == [math.log10(0.1), math.log10(0.01)]


def test_a_sweep_without_finished_runs_says_so_instead_of_an_empty_plot(ctx):
    sweep = launch(ctx.store, ctx.queue)
    figure = page.parcoords_figure(sweeps.get(ctx.store, sweep["id"]))
    assert "No run of this sweep has a final" in figure.layout.annotations[0].text


def test_the_metric_comes_from_the_url_and_an_unknown_one_is_said_on_the_page(ctx):
    sweep = launch(ctx.store, ctx.queue)
    finish(ctx.store, sweep["runs"][0]["id"], val_acc=0.5, val_loss=1.5)
    chosen = route(ctx, f"/sweeps/{sweep['id']}", "?metric=val_loss", None)
    assert find(chosen, "sweep-metric").value == "val_loss" and find(chosen, "sweep-notes").children == []
    unknown = route(ctx, f"/sweeps/{sweep['id']}", "?metric=wall_time", None)
    note = dump(find(unknown, "sweep-notes"))
    assert "unknown metric 'wall_time'" in note and "Showing" in note
    assert find(unknown, "sweep-metric").value == "val_acc"


def test_an_unknown_sweep_is_a_not_found_page(ctx):
    assert "Sweep not found" in dump(route(ctx, "/sweeps/42", "", None))


def test_the_page_redraws_when_a_run_moves_and_stops_polling_when_all_are_done(ctx):
    sweep = launch(ctx.store, ctx.queue, search={"lr": {"values": [0.01]}})
    (run,) = sweep["runs"]
    live = page.progress(ctx, sweep["id"])
    assert live["live"]
    finish(ctx.store, run["id"], val_acc=0.7)
    done = page.progress(ctx, sweep["id"])
    assert done["signature"] != live["signature"] and not done["live"]
    view, note = page.load(ctx, sweep["id"], "val_acc")
    assert view["best"] == run["id"] and note is None


@pytest.mark.service
def test_choosing_another_metric_redraws_the_plot_through_the_dashboard_s_callback(ctx):
    sweep = launch(ctx.store, ctx.queue)
    finish(ctx.store, sweep["runs"][0]["id"], val_acc=0.5, val_loss=1.5)
    app = create_app(ctx.settings, ctx.store, ctx.queue)
    with TestClient(app) as client:
        body = callback_request(app, "sweep-parcoords.figure", {
            "sweep-metric.value": "val_loss", "theme.data": "dark", "sweep-id.data": sweep["id"],
            "sweep-signature.data": []})
        answer = client.post("/_dash-update-component", json=body, headers=ORIGIN)
    assert answer.status_code == 200, answer.text
    figure = answer.json()["response"]["sweep-parcoords"]["figure"]
    assert figure["data"][0]["dimensions"][-1]["values"] == [1.5]
    assert figure["data"][0]["line"]["reversescale"] is True  # lower is better: the bright end is the lowest loss
