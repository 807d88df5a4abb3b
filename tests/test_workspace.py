"""The workspace: several charts on the compare page, saved views, the runs table's chosen columns, and what a
compare or runs link gets wrong said on the page. Against a real store (SQLite, and PostgreSQL where the
store's SQL is what is tested)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from dash import html
from sqlalchemy import event

from armscope.config import RunConfig
from dashboard import saved_views
from dashboard.pages import compare, runs
from service import views
from service.db.store import ViewExists, ViewNotFound
from service.errors import InvalidInput
from tests.layout_support import dump, find
from tests.support import FORM_RUN


def add_run(store, records=(), status="succeeded", **config) -> dict:
    """A run with these epoch records, finished as ``status`` (left queued when ``status`` is queued)."""
    run = store.create_run(RunConfig.model_validate({**FORM_RUN, **config}).model_dump(mode="json"), queue="cpu")
    if status != "queued":
        store.claim_run(run["id"], "w")
        for record in records:
            store.add_epoch(run["id"], record)
        if status != "running":
            store.finish_run(run["id"], "w", status)
    return store.get_run(run["id"])


def epochs(*val_accs: float, **per_key) -> list[dict]:
    """A record per value of val_acc, with ``per_key`` lists beside it (val_loss=[...], shapley_a=[...])."""
    records = []
    for i, acc in enumerate(val_accs):
        record = {"epoch": i + 1, "val_acc": acc, "dominant": "a", "elapsed_seconds": i + 1.0, "samples_seen": 100 * (i + 1)}
        record.update({key.replace("_a", ".a").replace("_b", ".b"): values[i] for key, values in per_key.items()})
        records.append(record)
    return records


@contextmanager
def statements(store):
    """Every SQL statement the store sends meanwhile."""
    sent: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", note)


# -- saved views: the service and the store ------------------------------------------------------------------


def test_a_saved_view_is_listed_on_its_page_with_the_link_that_opens_it(store):
    saved = views.save(store, "compare", "  ARM vs  baseline ", "?runs=1,2&metric=val_acc,shapley.*")
    views.save(store, "runs", "running", "status=running")
    assert saved["name"] == "ARM vs baseline" and saved["href"] == "/compare?runs=1,2&metric=val_acc,shapley.*"
    assert [v["name"] for v in views.views(store, "compare")] == ["ARM vs baseline"]
    assert [(v["page"], v["href"]) for v in views.views(store)] == [
        ("compare", "/compare?runs=1,2&metric=val_acc,shapley.*"), ("runs", "/?status=running")]


def test_a_name_taken_on_a_page_is_refused_naming_it_and_the_first_view_is_kept(store):
    views.save(store, "compare", "mine", "?runs=1")
    with pytest.raises(ViewExists, match="a view named 'mine' is already saved on the compare page"):
        views.save(store, "compare", "mine", "?runs=2")
    views.save(store, "runs", "mine", "")  # another page's names are its own
    assert [v["query"] for v in views.views(store, "compare")] == ["runs=1"]


@pytest.mark.parametrize(
    ("page", "name", "query", "field"),
    [("benchmark", "a", "", "page"), ("compare", "   ", "", "name"), ("compare", "x" * 201, "", "name"),
     ("compare", "a", "runs=1#frag", "query"), ("compare", "a", "q=" + "1" * 4000, "query")],
)
def test_a_view_that_cannot_be_saved_is_refused_naming_the_field(store, page, name, query, field):
    with pytest.raises(InvalidInput) as refused:
        views.save(store, page, name, query)
    assert refused.value.problems[0]["loc"] == [field]
    assert store.saved_views() == []


def test_deleting_a_view_forgets_it_and_a_second_delete_says_it_is_gone(store):
    view = views.save(store, "compare", "a", "runs=1")
    views.delete(store, view["id"])
    assert views.views(store, "compare") == []
    with pytest.raises(ViewNotFound, match=f"saved view {view['id']} does not exist"):
        views.delete(store, view["id"])


# -- saved views: the API ------------------------------------------------------------------------------



def test_the_api_saves_lists_and_deletes_views(api):
    made = api.post("/api/v1/views", json={"page": "compare", "name": "paper fig 2", "query": "?runs=1,2"})
    assert made.status_code == 201 and made.json()["href"] == "/compare?runs=1,2"
    assert [v["name"] for v in api.get("/api/v1/views", params={"page": "compare"}).json()] == ["paper fig 2"]
    assert api.get("/api/v1/views", params={"page": "runs"}).json() == []
    assert api.delete(f"/api/v1/views/{made.json()['id']}").status_code == 204
    gone = api.delete(f"/api/v1/views/{made.json()['id']}")
    assert gone.status_code == 404 and "does not exist" in gone.json()["detail"]


def test_the_api_refuses_a_taken_name_with_409_and_an_unknown_page_with_422(api):
    body = {"page": "compare", "name": "fig", "query": ""}
    assert api.post("/api/v1/views", json=body).status_code == 201
    taken = api.post("/api/v1/views", json=body)
    assert taken.status_code == 409 and "'fig' is already saved on the compare page" in taken.json()["detail"]
    unknown = api.post("/api/v1/views", json={**body, "page": "benchmark"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "page"] and "compare, runs" in unknown.json()["detail"][0]["msg"]
    assert api.get("/api/v1/views", params={"page": "nope"}).json()["detail"][0]["loc"] == ["query", "page"]


# -- the runs table's columns: the store's two queries --------------------------------------------------------


def test_best_values_are_one_aggregate_taking_the_direction_each_metric_declares(store):
    a = add_run(store, epochs(0.5, 0.9, 0.7, val_loss=[1.2, 0.4, 0.8], shapley_a=[0.1, 0.3, 0.2]))
    b = add_run(store, epochs(0.6, val_loss=[0.9], shapley_a=[0.05]))
    store.add_epoch(b["id"], {"epoch": 2, "shapley.a": "n/a", "val_loss": True})  # not numbers: skipped
    with statements(store) as sent:
        best = store.best_values([a["id"], b["id"]], {"val_acc": False, "val_loss": True, "shapley.a": False})
    assert len(sent) == 1
    assert best == {a["id"]: {"val_acc": 0.9, "val_loss": 0.4, "shapley.a": 0.3},
                    b["id"]: {"val_acc": 0.6, "val_loss": 0.9, "shapley.a": 0.05}}


def test_last_records_are_each_run_s_last_epoch_in_one_query(store):
    ids = [add_run(store, epochs(*[0.1 * (i + k) for k in range(1, 4)]))["id"] for i in range(5)]
    queued = add_run(store, status="queued")
    with statements(store) as sent:
        last = store.last_records([*ids, queued["id"]])
    assert len(sent) == 1 and set(last) == set(ids)
    assert [last[i]["epoch"] for i in ids] == [3] * 5 and last[ids[1]]["val_acc"] == pytest.approx(0.4)


def test_column_texts_are_parsed_and_what_is_not_a_column_is_named():
    columns, problems = views.parse_columns("lr, method_options.alpha,last:val_acc,,lr,best:shapley.audio,"
                                            "worst:val_acc,last:a\"b")
    assert columns == ["lr", "method_options.alpha", "last:val_acc", "best:shapley.audio"]
    assert problems == [
        "column 'worst:val_acc': 'worst' is not a kind of value; use last:<metric> or best:<metric>",
        "column 'last:a\"b' is not a config field (e.g. lr, method_options.alpha) or a metric's value "
        "(e.g. last:val_acc, best:shapley.audio)",
    ]
    many, left_out = views.parse_columns([f"k{i}" for i in range(views.MAX_COLUMNS + 1)])
    assert len(many) == views.MAX_COLUMNS and left_out == [f"column 'k{views.MAX_COLUMNS}' left out: at most 12 columns"]


def test_a_page_of_runs_reads_its_columns_in_two_queries_and_offers_what_its_runs_hold(store):
    page = [add_run(store, epochs(0.5, 0.8, 0.6, shapley_a=[0.1, 0.3, 0.2]), lr=0.01 * (i + 1)) for i in range(20)]
    columns = ["lr", "method_options.estimator", "last:val_acc", "best:val_acc", "best:shapley.a", "last:nope"]
    with statements(store) as sent:
        values, choices = views.read_columns(store, page, columns)
    assert len(sent) == 2
    assert values[page[1]["id"]] == {"lr": 0.02, "method_options.estimator": "debiased", "last:val_acc": 0.6,
                                     "best:val_acc": 0.8, "best:shapley.a": 0.3}
    assert "lr" in choices and "method_options.alpha" not in choices and "name" not in choices
    assert {"last:val_acc", "best:val_acc", "last:shapley.a", "best:samples_seen"} <= set(choices)
    assert choices.index("last:val_acc") < choices.index("last:shapley.a")  # the declared order


# -- the runs page -------------------------------------------------------------------------------------------


def header_texts(table) -> list[str]:
    (head,) = [part for part in table if isinstance(part, html.Thead)]
    # A sortable column's header is a button holding its label and an arrow.
    return [th.children if isinstance(th.children, str) else th.children.children[0] for th in head.children.children[1:]]


def test_the_runs_table_shows_the_chosen_columns_before_the_creation_time(ctx):
    run = add_run(ctx.store, epochs(0.5, 0.9, 0.7), lr=0.05)
    flt = runs.filters(None, None, None, None, None, None)
    state = runs.view(ctx, None, flt, "-created_at", None, [], None, columns=["lr", "last:val_acc", "best:val_acc"])
    assert header_texts(state["table"])[-4:] == ["lr", "val_acc (last)", "val_acc (best)", "Created"]
    text = dump(state["table"])
    assert '"0.05"' in text and '"70.0%"' in text and '"90.0%"' in text
    assert {"label": "method_options.alpha", "value": "method_options.alpha"} not in state["column_options"]
    assert state["column_options"][:3] == [{"label": "lr", "value": "lr"},
                                           {"label": "val_acc (last)", "value": "last:val_acc"},
                                           {"label": "val_acc (best)", "value": "best:val_acc"}]
    assert run["id"] in [int(r["data-run-id"]) for r in find_rows(state["table"])]


def find_rows(table) -> list:
    (body,) = [part for part in table if isinstance(part, html.Tbody)]
    return [vars(row) for row in body.children]


def test_the_runs_link_holds_filters_sort_and_columns_and_says_what_it_gets_wrong():
    asked = runs.parse_state("?project=paper%201&status=running,zombie&sort=-loss&columns=lr,last:val_acc,worst:x"
                             "&sweep=3&text=a,b")
    assert (asked["project"], asked["status"], asked["sort"], asked["columns"], asked["sweep"], asked["text"]) == (
        "paper 1", ["running"], "-created_at", ["lr", "last:val_acc"], 3, "a,b")
    assert [p.split(" ")[0] for p in asked["problems"]] == ["status='zombie'", "sort='-loss'", "column"]
    assert "Choose from: queued, running" in asked["problems"][0]
    query = runs.state_query(asked)
    assert query == "?sweep=3&project=paper%201&status=running&text=a%2Cb&columns=lr,last:val_acc"
    assert runs.parse_state(query) == {**asked, "problems": []}


def test_the_runs_page_filters_by_the_project_in_its_link_and_offers_every_project(ctx):
    mine = add_run(ctx.store, epochs(0.5), project="paper")
    add_run(ctx.store, epochs(0.5), project="other")
    page = runs.layout(ctx, "?project=paper&columns=lr")
    assert find(page, "runs-project").value == "paper"
    assert [o["value"] for o in find(page, "runs-project").options] == ["other", "paper"]
    shown = [int(r["data-run-id"]) for r in find_rows(find(page, "runs-table").children)]
    assert shown == [mine["id"]] and find(page, "runs-columns").value == ["lr"]
    assert "project paper" in dump(find(page, "runs-table"))


def test_a_run_of_a_sweep_links_to_the_sweep_s_page_and_a_queued_run_shows_its_place(ctx):
    config = RunConfig.model_validate(FORM_RUN).model_dump(mode="json")
    sweep, made = ctx.store.create_sweep({}, [({**config, "seed": s}, "cpu") for s in range(3)])
    table = dump(runs.view(ctx, None, runs.filters(None, None, None, None, None, None), "-created_at", None, [],
                           None)["table"])
    assert f'"href": "/sweeps/{sweep["id"]}"' in table
    assert all(f"queued #{n}" in table for n in (1, 2, 3))


def test_a_wrong_value_in_the_runs_link_is_named_on_the_page(ctx):
    notes = dump(find(runs.layout(ctx, "?status=zombie&sort=nope"), "runs-link-notes"))
    assert "status='zombie' is not a status" in notes and "sort='nope' is not a column to sort by" in notes


# -- the compare page: several charts ------------------------------------------------------------------------


def test_a_compare_link_names_a_chart_per_metric_and_an_old_single_metric_link_still_opens():
    assert compare.parse_view("?runs=1&metric=val_acc,shapley.*")["metrics"] == ["val_acc", "shapley.*"]
    assert compare.parse_view("?runs=1&metric=val_acc&metric=arm_weight.*")["metrics"] == ["val_acc", "arm_weight.*"]
    assert compare.parse_view("?runs=1&metric=val_acc")["metrics"] == ["val_acc"]
    assert compare.parse_view("?runs=1")["metrics"] == ["shapley.*"]
    view = compare.parse_view("?runs=2,1&metric=shapley.*,val_acc,arm_weight.*&x=samples")
    assert compare.view_query(view) == "?runs=2,1&metric=shapley.*,val_acc,arm_weight.*&smooth=0&x=samples" \
                                       "&color=run&group=run"


def test_more_charts_than_the_page_holds_are_left_out_and_named():
    metrics = ",".join(f"m{i}" for i in range(compare.MAX_CHARTS + 2))
    view = compare.parse_view(f"?metric={metrics}")
    assert len(view["metrics"]) == compare.MAX_CHARTS
    assert view["problems"] == [f"At most {compare.MAX_CHARTS} charts: 'm6', 'm7' left out."]


def test_each_chart_draws_its_own_metric_over_the_same_runs(ctx):
    a, b = add_run(ctx.store, epochs(0.5, 0.7, shapley_a=[0.1, 0.2])), add_run(ctx.store, epochs(0.6, 0.8), method="baseline")
    page = compare.layout(ctx, f"?runs={a['id']},{b['id']}&metric=val_acc,shapley.*", "light")
    first, second = find(page, "compare-graph"), find(page, "compare-graph-2")
    assert first.figure["layout"]["title"]["text"] == "Fused accuracy (val)"
    assert {t["meta"][0] for t in first.figure["data"]} == {a["id"], b["id"]}
    assert [t["meta"] for t in second.figure["data"]] == [[a["id"], "a"]]
    assert find(page, {"type": "compare-metric", "index": 1}).value == "shapley.*"
    assert not find(page, {"type": "compare-remove", "index": 0}).hidden  # with two charts, either may go
    summary = dump(find(page, "compare-summary"))
    assert "Fused accuracy (val)" in summary and "Contribution (Shapley) per modality" in summary


def test_adding_removing_and_changing_charts():
    options = [{"label": "acc", "value": "val_acc"}, {"label": "shapley", "value": "shapley.*"}]
    add = compare.edited
    assert add(["shapley.*"], "compare-add", True, {}, "arm_weight.*", options) == ["shapley.*", "arm_weight.*"]
    assert add(["shapley.*"], "compare-add", True, {}, None, options) == ["shapley.*", "val_acc"]  # the next unshown
    assert add(["shapley.*"], "compare-add", False, {}, "val_acc", options) is None  # a re-drawn button: no click
    full = [f"m{i}" for i in range(compare.MAX_CHARTS)]
    assert add(full, "compare-add", True, {}, "val_acc", options) is None
    remove = {"type": "compare-remove", "index": 0}
    assert add(["val_acc", "shapley.*"], remove, True, {}, None, options) == ["shapley.*"]
    assert add(["val_acc"], remove, True, {}, None, options) is None  # the last chart stays
    assert add(["val_acc", "shapley.*"], {"type": "compare-remove", "index": 7}, True, {}, None, options) is None
    pick = {"type": "compare-metric", "index": 1}
    assert add(["val_acc", "shapley.*"], pick, True, {0: "val_acc", 1: "nmi.*"}, None, options) == ["val_acc", "nmi.*"]
    assert add(["val_acc", "shapley.*"], pick, True, {0: "val_acc", 1: "shapley.*"}, None, options) is None


# -- the compare page: what a link gets wrong, said on the page -------------------------------------------------


def test_an_unknown_run_in_a_compare_link_is_named_on_the_page_and_stays_named(ctx):
    run = add_run(ctx.store, epochs(0.5))
    page = compare.layout(ctx, f"?runs={run['id']},99999")
    notes = find(page, "compare-link-notes")  # no callback redraws these: the picker dropping 99999 keeps them
    assert "run 99999 does not exist: it is left out of this comparison" in dump(notes)
    assert "99999" not in dump(find(page, "compare-notes"))


@pytest.mark.parametrize(
    ("link", "said"),
    [
        ("x=wall_time", "x='wall_time' is not an x axis: showing epoch. Choose from: epoch, wall, samples."),
        ("color=seed", "color='seed' is not a colouring: showing run. Choose from: run, method."),
        ("group=all", "group='all' is not a grouping: showing run. Choose from: run, seeds."),
        ("smooth=lots", "smooth='lots' is not a number, so nothing is smoothed: choose from 0 to 0.99."),
        ("smooth=5", "smooth='5' is outside 0 to 0.99: showing 0.99."),
        ("runs=1,abc", "runs: 'abc' is not a run id, so it is left out."),
    ],
)
def test_a_value_the_compare_page_cannot_show_is_named_with_the_choices(link, said):
    assert said in compare.parse_view(f"?{link}")["problems"]


def test_a_metric_no_compared_run_records_is_named_with_what_they_record(ctx):
    run = add_run(ctx.store, epochs(0.5, shapley_a=[0.1]))
    page = compare.layout(ctx, f"?runs={run['id']}&metric=val_accc,ogm_coeff.*,val_acc")
    notes = dump(find(page, "compare-notes"))
    assert "metric 'val_accc' is not a metric these runs record. Choose from: shapley.*, val_acc" in notes
    assert "No compared run records" in notes and "(ogm_coeff.*): its chart is empty" in notes
    assert "'val_acc' is not" not in notes


# -- the compare page: the picker and the numbers --------------------------------------------------------------


def test_the_chosen_runs_are_listed_by_name_with_their_project(ctx):
    runs_ = [add_run(ctx.store, epochs(0.5), name=f"arm-synthetic-shift-long-name-{i}", project="paper") for i in range(9)]
    page = compare.layout(ctx, "?runs=" + ",".join(str(r["id"]) for r in runs_))
    listed = find(page, "compare-selection-list")
    assert [item.children[1].children[0].children for item in listed.children] == [f"#{r['id']} {r['name']}" for r in runs_]
    assert "project paper" in dump(listed)


@pytest.mark.parametrize(
    ("metric", "pair", "text"),
    [
        ("val_acc", (0.64, 0.0097), "64.0% ± 1.0%"),
        ("val_acc", (0.64, None), "64.0%"),
        ("epoch_seconds", (0.6612, 0.0213), "0.6612 s ± 0.0213 s"),
        ("nmi.*", (0.5319, 0.01234), "0.5319 ± 0.0123"),
        ("train_loss", (154.9, 2.14), "154.9 ± 2.1"),
    ],
)
def test_a_mean_and_its_spread_share_one_format_and_unit(metric, pair, text):
    assert compare.value_text(metric, pair) == text


# -- saved views on the pages ------------------------------------------------------------------------------


def test_the_pages_list_their_saved_views_as_links_and_save_what_the_address_bar_holds(ctx):
    assert saved_views.save(ctx, "compare", {"name": "fig", "query": "?runs=1&metric=val_acc", "clicks": 1}) == (
        "success", "Saved the view 'fig'.")
    assert saved_views.save(ctx, "compare", {"name": "fig", "query": "?runs=2", "clicks": 2})[1].startswith(
        "a view named 'fig' is already saved on the compare page")
    link = find(compare.layout(ctx, ""), "compare-view-items").children[0].children[0]
    assert (link.children, link.href) == ("fig", "/compare?runs=1&metric=val_acc")
    assert "None yet" in dump(find(runs.layout(ctx, ""), "runs-view-list"))


class ReadOnly:
    def may_write(self, cookie):
        return False


def test_a_read_only_session_may_not_save_or_delete_views(ctx):
    import flask

    view = views.save(ctx.store, "runs", "kept", "")
    ctx.access = ReadOnly()
    with flask.Flask("t").test_request_context():
        assert saved_views.save(ctx, "runs", {"name": "x", "query": "", "clicks": 1}) == ("danger", saved_views.READ_ONLY)
        assert saved_views.delete(ctx, view["id"]) == ("danger", saved_views.READ_ONLY)
    assert [v["name"] for v in views.views(ctx.store)] == ["kept"]
