"""The dashboard's callback logic against a real store (SQLite) and a queue that records what it is sent."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from dash import html
from fastapi.testclient import TestClient
from sqlalchemy import event

from armscope.config import RunConfig
from armscope.plugins import METHODS
from dashboard import actions, components
from dashboard import schema_form as sf
from dashboard.app import create_dash, route
from dashboard.context import Context
from dashboard.pages import compare, launch, run_detail, runs
from server.app import create_app
from service.db.models import Run
from tests.layout_support import dump, find
from tests.support import FORM_RUN as TINY


def make_run(ctx: Context, epochs: int = 0, status: str = "queued", **config) -> dict:
    data = RunConfig.model_validate({**TINY, **config}).model_dump(mode="json")
    run = ctx.store.create_run(data, queue="cpu")
    if status != "queued" or epochs:
        ctx.store.claim_run(run["id"], "w")
        for e in range(1, epochs + 1):
            ctx.store.add_epoch(
                run["id"],
                {
                    "epoch": e,
                    "val_acc": 0.1 * e,
                    "shapley.a": 0.05 * e,
                    "shapley.b": 0.01 * e,
                    "dominant": "a",
                    "elapsed_seconds": e,
                    "samples_seen": 100 * e,
                },
            )
        if status in ("succeeded", "failed", "cancelled"):
            ctx.store.finish_run(run["id"], "w", status)
    return ctx.store.get_run(run["id"])




def opt(section: str, field: str, value) -> tuple[dict, object]:
    return {"type": "opt", "section": section, "field": field}, value


# -- launch form ---------------------------------------------------------------------------


def test_option_fields_follow_the_catalog_schemas():
    fields = {f.name: f for f in launch.section_fields("dataset", "synthetic-shift", "arm", "mlp")}
    assert fields["n_samples"].kind == "integer" and fields["n_samples"].default == 4000
    assert fields["modalities"].kind == "list" and fields["schedule"].kind == "json"
    assert fields["dims"].kind == "json" and fields["noise"].kind == "number"
    method = {f.name: f for f in launch.section_fields("method", "", "arm", "")}
    assert method["estimator"].kind == "enum" and method["estimator"].choices == ["plugin", "debiased", "reference"]
    ogm = {f.name: f for f in launch.section_fields("method", "", "ogm-ge", "")}
    assert ogm["modulation_end"].kind == "integer" and ogm["modulation_end"].nullable
    features = {f.name: f for f in launch.section_fields("dataset", "features", "", "")}
    assert features["root"].required and features["standardize"].kind == "boolean"
    run = [f.name for f in launch.section_fields("run", "", "", "")]
    assert "epochs" in run and "seed" not in run and "dataset_options" not in run
    assert "≥" not in sf.bounds_text(fields["n_samples"]) and ">= 10" in sf.bounds_text(fields["n_samples"])


def test_inputs_are_read_back_as_options():
    fields = {f.name: f for f in launch.section_fields("dataset", "synthetic-shift", "", "")}
    assert sf.parse(fields["dims"], "8") == (8, None)
    assert sf.parse(fields["dims"], "8, 16") == ([8, 16], None)
    assert sf.parse(fields["schedule"], "balanced") == ("balanced", None)
    assert sf.parse(fields["schedule"], '[{"strength": {"audio": 2}}]') == ([{"strength": {"audio": 2}}], None)
    assert sf.parse(fields["schedule"], "[{oops")[1] == "Not valid JSON."
    assert sf.parse(fields["modalities"], "a, b, c") == (["a", "b", "c"], None)
    assert sf.parse(fields["n_samples"], None)[0] is sf.OMIT
    assert sf.shown(fields["modalities"]) == "" and sf.shown(fields["dims"]) == "32"


def test_parse_seeds_accepts_lists_and_ranges():
    assert launch.parse_seeds("0") == ([0], None)
    assert launch.parse_seeds("0, 1, 2") == ([0, 1, 2], None)
    assert launch.parse_seeds("3-5, 1") == ([3, 4, 5, 1], None)
    assert launch.parse_seeds("0..2") == ([0, 1, 2], None)
    assert launch.parse_seeds("x")[1] and launch.parse_seeds("")[1] and launch.parse_seeds("0-500")[1]


def test_plan_of_a_valid_single_run_is_a_run_config_with_the_form_values():
    plan = launch.plan(
        "synthetic-shift",
        "arm",
        "mlp",
        "3",
        False,
        "mine",
        "a, b",
        [
            opt("dataset", "n_samples", 400),
            opt("run", "epochs", 2),
            opt("model", "feature_dim", 16),
            opt("encoder", "hidden", "16, 8"),
            opt("method", "estimator", "reference"),
        ],
    )
    assert plan.ok and isinstance(plan.request, RunConfig)
    config = plan.request
    assert (config.seed, config.epochs, config.name, config.tags) == (3, 2, "mine", ["a", "b"])
    assert config.dataset_options["n_samples"] == 400 and config.method_options["estimator"] == "reference"
    assert config.model_options["encoder"] == {"name": "mlp", "hidden": [16, 8], "dropout": 0.0}
    assert launch.summary_text(plan, False) == "Launches 1 run."


def test_plan_flags_invalid_values_on_their_own_inputs():
    plan = launch.plan(
        "synthetic-shift",
        "arm",
        "mlp",
        "0",
        False,
        None,
        None,
        [opt("dataset", "n_samples", 5), opt("run", "lr", -1), opt("dataset", "schedule", "[{")],
    )
    assert not plan.ok
    assert plan.field_errors == {("dataset", "schedule"): "Not valid JSON."}  # unreadable inputs first
    plan = launch.plan(
        "synthetic-shift", "arm", "mlp", "0", False, None, None, [opt("dataset", "n_samples", 5), opt("run", "lr", -1)]
    )
    assert set(plan.field_errors) == {("dataset", "n_samples"), ("run", "lr")}
    assert "greater than or equal to 10" in plan.field_errors[("dataset", "n_samples")]
    assert launch.summary_text(plan, False).startswith("Fix")
    bad_seed = launch.plan("synthetic-shift", "arm", "mlp", "zero", False, None, None, [])
    assert bad_seed.seeds_error and not bad_seed.ok
    required = launch.plan("features", "arm", "mlp", "0", False, None, None, [opt("dataset", "root", "")])
    assert required.field_errors == {("dataset", "root"): "Required."}


def test_per_modality_encoder_overrides_are_read_as_json_and_checked_in_place():
    override = '{"visual": {"name": "resnet18", "weights": null}}'
    plan = launch.plan("synthetic-shift", "arm", "mlp", "0", False, None, None, [opt("model", "encoders", override)])
    assert plan.ok and plan.request.model_options["encoders"] == {"visual": {"name": "resnet18", "weights": None}}
    typo = '{"visual": {"name": "mlp", "hiden": [8]}}'
    plan = launch.plan("synthetic-shift", "arm", "mlp", "0", False, None, None, [opt("model", "encoders", typo)])
    assert not plan.ok and plan.field_errors == {("model", "encoders"): "visual: unknown option 'hiden'; valid options: hidden, dropout"}


def test_inputs_of_a_schema_being_replaced_are_ignored():
    plan = launch.plan(
        "uci-mfeat",
        "baseline",
        "mlp",
        "0",
        False,
        None,
        None,
        [opt("dataset", "n_samples", 5), opt("method", "estimator", "plugin")],
    )
    assert plan.ok and plan.request.dataset == "uci-mfeat"


def test_seeds_and_compare_methods_make_a_sweep_with_arm_s_control():
    plan = launch.plan("synthetic-shift", "arm", "mlp", "0-2", True, "cmp", None, [opt("run", "epochs", 2)])
    assert plan.ok and plan.runs == 12
    assert [arm.title for arm in plan.request.arms] == ["arm", "baseline", "ogm-ge", "arm (no-reweight)"]
    assert plan.request.seeds == [0, 1, 2]
    assert plan.request.name == "cmp" and "name" not in plan.request.config
    assert launch.summary_text(plan, True) == "Launches a method comparison of 12 runs."


def test_arm_s_control_in_a_comparison_keeps_the_form_s_arm_options():
    items = [opt("run", "epochs", 2), opt("method", "estimator", "reference")]
    plan = launch.plan("synthetic-shift", "arm", "mlp", "0", True, None, None, items)
    control = [c for c in plan.request.configs if c.method_options.get("reweight") is False]
    assert [c.display_name() for c in control] == ["arm-no-reweight-synthetic-shift-s0"]
    assert control[0].method_options["estimator"] == "reference"
    seeds = launch.plan("synthetic-shift", "baseline", "mlp", "1,2", False, None, None, [])
    assert seeds.runs == 2 and seeds.request.methods == ["baseline"]


def test_launching_goes_through_the_api_path_and_lands_on_the_run_or_sweep(ctx):
    single = launch.plan("synthetic-shift", "arm", "mlp", "0", False, None, None, [opt("run", "epochs", 2)])
    href = launch.launch(ctx, single)
    run_id = int(href.rsplit("/", 1)[1])
    assert href == f"/runs/{run_id}" and ctx.queue.sent == [(run_id, "cpu")]
    assert ctx.store.get_run(run_id)["config"]["epochs"] == 2
    sweep = launch.plan("synthetic-shift", "arm", "mlp", "0,1", True, None, None, [])
    href = launch.launch(ctx, sweep)
    assert href.startswith("/sweeps/") and len(ctx.queue.sent) == 1 + 8
    sweep_id = int(href.rsplit("/", 1)[1])
    assert len(ctx.store.list_runs(sweep=sweep_id)[0]) == 8
    assert "&group=seeds&color=method" in dump(runs.layout(ctx, f"?sweep={sweep_id}"))  # its compare link


def test_a_broken_queue_is_reported_and_nothing_is_stored(ctx):
    ctx.queue.broken = True
    plan = launch.plan("synthetic-shift", "arm", "mlp", "0", False, None, None, [])
    with pytest.raises(actions.ActionError, match="not reachable"):
        launch.launch(ctx, plan)
    with pytest.raises(actions.ActionError, match="not reachable"):
        actions.launch_demo(ctx)
    assert ctx.store.list_runs()[0] == []


def test_the_demo_sweep_is_twelve_short_runs_with_arm_s_control(ctx):
    sweep = actions.launch_demo(ctx)
    items, _ = ctx.store.list_runs(sweep=sweep["id"])
    assert len(items) == 12 and {r["method"] for r in items} == {"arm", "baseline", "ogm-ge"}
    assert sorted(r["name"] for r in items if r["name"].startswith("arm-no-reweight")) == [
        f"arm-no-reweight-synthetic-shift-s{seed}" for seed in (0, 1, 2)
    ]
    assert {r["seed"] for r in items} == {0, 1, 2} and {r["progress"]["epochs"] for r in items} == {10}
    assert {r["dataset"] for r in items} == {"synthetic-shift"}


def test_launch_again_prefills_the_form_from_a_stored_run(ctx):
    run = make_run(ctx, method="baseline", seed=4)
    page = dump(launch.layout(ctx, f"?from={run['id']}"))
    assert '"value": "baseline"' in page and '"value": "4"' in page


# -- runs page -----------------------------------------------------------------------------


def many_runs(ctx: Context, n: int) -> None:
    config = RunConfig.model_validate(TINY).model_dump(mode="json")
    ctx.store.create_sweep({}, [({**config, "seed": i}, "cpu") for i in range(n)])


def part(table: list, kind: type):
    """The runs table's head or body (``html.Thead``, ``html.Tbody``) among its children."""
    (found,) = [p for p in table if isinstance(p, kind)]
    return found


def body_rows(table: list) -> list:
    return part(table, html.Tbody).children


def sort_headers(table: list) -> dict[str, html.Th]:
    """Each sortable column's header cell, by the field its sort button's id names."""
    cells = part(table, html.Thead).children.children
    return {th.children.id["field"]: th for th in cells
            if isinstance(getattr(th.children, "id", None), dict) and th.children.id["type"] == "runs-sort-by"}


def column(table: list, field: str) -> list:
    """What the rows show in the column sorted by ``field``: the column its header's sort button names."""
    header = sort_headers(table)[field]
    index = next(i for i, th in enumerate(part(table, html.Thead).children.children) if th is header)
    return [row.children[index].children for row in body_rows(table)]


def test_runs_page_pages_through_the_store_without_loading_every_run(ctx):
    many_runs(ctx, 60)
    flt = runs.filters(None, None, None, None, None, None)
    first = runs.view(ctx, None, flt, "-created_at", None, [], None)
    rows = body_rows(first["table"])
    assert len(rows) == 25 and first["prev_disabled"] and not first["next_disabled"]
    assert column(first["table"], "seed")[:3] == [59, 58, 57]  # newest first
    second = runs.view(ctx, "runs-next", flt, "-created_at", first["paging"], [], first["signature"])
    third = runs.view(ctx, "runs-next", flt, "-created_at", second["paging"], [], second["signature"])
    assert len(body_rows(third["table"])) == 10 and third["next_disabled"] and third["label"] == "Runs 51–60"
    back = runs.view(ctx, "runs-prev", flt, "-created_at", third["paging"], [], third["signature"])
    assert back["label"] == "Runs 26–50"
    # A filter change goes back to the first page.
    filtered = runs.view(
        ctx,
        "runs-status",
        runs.filters(["queued"], None, None, None, None, None),
        "-created_at",
        back["paging"],
        [],
        None,
    )
    assert filtered["paging"]["index"] == 0


def test_runs_page_reads_one_page_of_a_thousand_runs_and_so_does_its_poll(ctx):
    many_runs(ctx, 1000)
    flt = runs.filters(None, None, None, None, None, None)
    loaded: list[int] = []

    def count(run, _context) -> None:
        loaded.append(run.id)

    event.listen(Run, "load", count)  # every run the database hands back
    try:
        state = runs.view(ctx, None, flt, "-created_at", None, [], None)
        polled = runs.view(ctx, "runs-interval", flt, "-created_at", state["paging"], [], state["signature"])
    finally:
        event.remove(Run, "load", count)
    assert polled is None  # nothing changed: the poll sends nothing
    assert len(body_rows(state["table"])) == 25
    assert len(loaded) <= 2 * (ctx.page_size + 1)  # a page (and one more, to know of a next) each time


def test_live_poll_notices_progress_and_only_then_redraws(ctx):
    run = make_run(ctx)
    flt = runs.filters(None, None, None, None, None, None)
    now = datetime.now(timezone.utc)
    state = runs.view(ctx, None, flt, "-created_at", None, [], None, now)
    assert runs.view(ctx, "runs-interval", flt, "-created_at", state["paging"], [], state["signature"], now) is None
    ctx.store.claim_run(run["id"], "w")
    ctx.store.heartbeat(run["id"], "w", {"step": 5, "total_steps": 20})
    changed = runs.view(ctx, "runs-interval", flt, "-created_at", state["paging"], [], state["signature"], now)
    assert changed is not None
    text = dump(body_rows(changed["table"]))
    assert "running" in text and "25%" in text and "ETA" in text


def test_a_header_click_sorts_by_its_column_and_a_second_click_flips_it():
    assert runs.next_sort("-created_at", "seed") == "seed"
    assert runs.next_sort("seed", "seed") == "-seed"
    assert runs.next_sort("-seed", "seed") == "seed"
    assert runs.next_sort("name", "best_val_acc") == "-best_val_acc"  # best first
    assert runs.next_sort("-best_val_acc", "created_at") == "-created_at"  # newest first


def test_the_table_is_sorted_by_the_chosen_column_and_marks_it(ctx):
    for seed in (3, 1, 2):
        make_run(ctx, seed=seed)
    flt = runs.filters(None, None, None, None, None, None)
    state = runs.view(ctx, None, flt, "seed", None, [], None)
    assert column(state["table"], "seed") == [1, 2, 3]
    marks = {field: th.to_plotly_json()["props"]["aria-sort"] for field, th in sort_headers(state["table"]).items()}
    assert marks["seed"] == "ascending" and marks["created_at"] == "none"
    assert len(marks) == 7  # every column but progress, dominant and tags
    flipped = runs.view(ctx, "runs-sort", flt, "-seed", state["paging"], [], state["signature"])
    assert column(flipped["table"], "seed") == [3, 2, 1]


def test_runs_filters_and_empty_states(ctx):
    empty = runs.view(ctx, None, runs.filters(None, None, None, None, None, None), "-created_at", None, [], None)
    assert empty["table_hidden"] and "demo-sweep" in dump(empty["empty"])
    make_run(ctx, method="baseline", tags=["paper"])
    make_run(ctx, method="arm")
    by_method = runs.view(
        ctx, None, runs.filters(None, "baseline", None, None, None, None), "-created_at", None, [], None
    )
    assert len(body_rows(by_method["table"])) == 1
    by_tag = runs.view(ctx, None, runs.filters(None, None, None, "paper", None, None), "-created_at", None, [], None)
    assert len(body_rows(by_tag["table"])) == 1
    nothing = runs.view(ctx, None, runs.filters(None, None, None, None, "zzz", None), "-created_at", None, [], None)
    assert "No runs match" in dump(nothing["empty"])
    assert runs.sweep_from("?sweep=12") == 12 and runs.sweep_from("") is None


def test_selection_keeps_other_pages_and_builds_the_compare_link():
    assert runs.selection([5, 4, 3], [True, False, True], [9, 4]) == [9, 5, 3]
    assert runs.compare_href([9, 3, 5]) == "/compare?runs=3,5,9"
    assert runs.compare_href([2, 1], over_seeds=True) == "/compare?runs=1,2&group=seeds&color=method"


def test_cancel_retry_delete_report_each_run_and_refusals(ctx):
    queued, running = make_run(ctx), make_run(ctx, status="running")
    color, message = actions.perform(ctx, "cancel", [queued["id"]])
    assert color == "success" and ctx.store.get_run(queued["id"])["status"] == "cancelled"
    color, message = actions.perform(ctx, "retry", [queued["id"]])
    assert color == "success" and ctx.queue.sent == [(queued["id"], "cpu")]
    color, message = actions.perform(ctx, "delete", [running["id"], queued["id"]])
    assert color == "warning" and "cancel it before deleting it" in message and f"#{queued['id']}" in message
    assert [r["id"] for r in ctx.store.list_runs()[0]] == [running["id"]]
    color, message = actions.perform(ctx, "retry", [running["id"]])
    assert color == "danger" and "only failed or cancelled runs can be retried" in message


class FakeAccess:
    """Token auth on, with one write session (cookie ``w``) and one read session (``r``)."""

    def may_write(self, cookie):
        return cookie == "w"


def test_with_token_auth_only_a_write_session_may_change_runs(ctx):
    import flask

    run = make_run(ctx)
    plan = launch.plan("synthetic-shift", "arm", "mlp", "0", False, None, None, [])
    ctx.access = FakeAccess()
    server = flask.Flask("t")
    with server.test_request_context(headers={"Cookie": "armscope_session=r"}):
        assert not actions.may_write(ctx)
        assert actions.perform(ctx, "delete", [run["id"]]) == ("danger", actions.READ_ONLY)
        with pytest.raises(actions.ActionError, match="may only read"):
            launch.launch(ctx, plan)
    with server.test_request_context(headers={"Cookie": "armscope_session=w"}):
        assert actions.may_write(ctx)
        assert actions.perform(ctx, "cancel", [run["id"]])[0] == "success"
    assert ctx.store.get_run(run["id"])["status"] == "cancelled" and ctx.queue.sent == []


# -- run detail ------------------------------------------------------------------------------


def test_run_detail_poll_fetches_only_new_epochs_and_events(ctx):
    run = make_run(ctx, epochs=2, status="running")
    records, events = ctx.store.metrics(run["id"]), ctx.store.events(run["id"])
    cursor = run_detail.initial_cursor(run, records, events)
    quiet = run_detail.poll(ctx, run["id"], cursor)
    assert quiet["records"] is None and quiet["events"] is None and not quiet["changed"] and not quiet["stop"]
    ctx.store.add_epoch(run["id"], {"epoch": 3, "val_acc": 0.5, "dominant": "b"})
    ctx.store.add_event(run["id"], {"epoch": 3, "kind": "dominance_switch", "message": "switched from a to b"})
    fresh = run_detail.poll(ctx, run["id"], quiet["cursor"])
    assert [r["epoch"] for r in fresh["records"]] == [3] and not fresh["replace"]
    assert [e["kind"] for e in fresh["events"]] == ["dominance_switch"] and fresh["changed"]
    ctx.store.finish_run(run["id"], "w", "succeeded")
    done = run_detail.poll(ctx, run["id"], fresh["cursor"])
    assert done["changed"] and done["stop"] and done["records"] is None


def test_run_detail_reloads_everything_after_a_resume(ctx):
    run = make_run(ctx, epochs=3, status="running")
    cursor = run_detail.initial_cursor(run, ctx.store.metrics(run["id"]), [])
    ctx.store.requeue_run(run["id"], "w")
    ctx.store.discard_after(run["id"], 1)
    ctx.store.claim_run(run["id"], "w2")
    result = run_detail.poll(ctx, run["id"], cursor)
    assert result["replace"] and [r["epoch"] for r in result["records"]] == [1]


def test_run_detail_layout_draws_every_chart_and_handles_missing_runs(ctx):
    run = make_run(ctx, epochs=3, status="succeeded")
    page = run_detail.layout(ctx, run["id"], "dark")
    text = dump(page)
    assert page.id == "run-detail"
    for name in run_detail.GRAPHS:
        assert f"run-graph-{name}" in text
    assert f"/api/v1/runs/{run['id']}/metrics.csv" in text
    assert "does not exist" in dump(run_detail.layout(ctx, 999))
    figs = run_detail.build_figures(ctx.store.metrics(run["id"]), [], "light", run["method"])
    assert len(figs["contribution"].data) == 4


# -- compare ---------------------------------------------------------------------------------


def test_compare_url_round_trips_the_view():
    view = compare.parse_view("?runs=3,1,3,x&metric=val_acc&smooth=0.6&x=wall&color=method&group=seeds")
    assert view == {"runs": [3, 1], "metrics": ["val_acc"], "smooth": 0.6, "x": "wall", "color": "method",
                    "group": "seeds", "refused": None, "problems": ["runs: 'x' is not a run id, so it is left out."]}
    assert compare.parse_view(compare.view_query(view)) == {**view, "problems": []}
    defaults = compare.parse_view("?runs=1&smooth=lots&x=nope&group=all")
    assert {k: v for k, v in defaults.items() if k != "problems"} == {
        "runs": [1], "metrics": ["shapley.*"], "smooth": 0.0, "x": "epoch", "color": "run", "group": "run",
        "refused": None}


def test_compare_render_uses_the_store_downsampling_and_reports_missing_runs(ctx):
    ctx.compare_points = 5
    a, b = make_run(ctx, epochs=20, status="succeeded"), make_run(ctx, epochs=3, status="succeeded", method="baseline")
    shown = compare.render(
        ctx,
        {"runs": [a["id"], 999, b["id"]], "metrics": ["shapley.*"], "smooth": 0.0, "x": "epoch", "color": "run",
         "group": "run"},
        "light",
    )
    data = find(shown["charts"][0], "compare-graph").figure["data"]
    assert {t["meta"][0] for t in data} == {a["id"], b["id"]} and len(data) == 4
    assert max(len(t["x"]) for t in data) == 5  # 20 epochs thinned to 5 points by the store
    assert "run 999 does not exist" in dump(shown["notes"])
    assert "compare-summary-table" in dump(shown["summary"]) and "last value" in dump(shown["summary"])
    assert "method" in dump(shown["diff"])
    assert shown["metric_options"][0]["value"] == "shapley.*"


def test_compare_polls_while_a_run_is_live_and_redraws_only_when_one_moved(ctx):
    done, live = make_run(ctx, epochs=3, status="succeeded"), make_run(ctx, epochs=1, status="running")
    view = {"runs": [done["id"], live["id"]], "metrics": ["val_acc"], "smooth": 0.0, "x": "epoch", "color": "run",
            "group": "run"}
    shown = compare.render(ctx, view, "light")
    assert shown["progress"]["live"]
    assert compare.poll(ctx, view, "light", True, shown["progress"]["signature"]) is None
    ctx.store.add_epoch(live["id"], {"epoch": 2, "val_acc": 0.2, "dominant": "a"})
    moved = compare.poll(ctx, view, "light", True, shown["progress"]["signature"])
    assert moved is not None
    drawn = find(moved["charts"][0], "compare-graph").figure["data"]
    assert [len(t["x"]) for t in drawn if t["meta"][0] == live["id"]] == [2]
    ctx.store.finish_run(live["id"], "w", "succeeded")
    finished = compare.poll(ctx, view, "light", True, moved["progress"]["signature"])
    assert finished is not None and not finished["progress"]["live"]


def test_compare_of_finished_runs_does_not_poll(ctx):
    a, b = make_run(ctx, epochs=2, status="succeeded"), make_run(ctx, epochs=2, status="failed")
    page = compare.layout(ctx, f"?runs={a['id']},{b['id']}", "light")
    assert find(page, "compare-interval").disabled
    live = make_run(ctx, epochs=1, status="running")
    assert not find(compare.layout(ctx, f"?runs={a['id']},{live['id']}", "light"), "compare-interval").disabled


# -- the app and its mount ---------------------------------------------------------------------


def test_routes_render_each_page(ctx):
    make_run(ctx, epochs=1, status="succeeded")
    for path, marker in [
        ("/", "runs-table"),
        ("/launch", "launch-form"),
        ("/runs/1", "run-detail"),
        ("/compare", "compare-graph"),
        ("/benchmark", "benchmark-table"),
        ("/nope", "Page not found"),
    ]:
        assert marker in dump(route(ctx, path, "", "light")), path


@pytest.mark.service
def test_every_page_callback_is_registered(ctx):
    app = create_dash(ctx)
    outputs = " ".join(app.callback_map)
    for target in (
        "page.children",
        "runs-table.children",
        "compare-charts.children",
        "benchmark-table.children",
        "run-graph-accuracy.figure",
        "launch-submit.disabled",
        "run-records.data",
    ):
        assert target in outputs, target


@pytest.mark.service
def test_the_dashboard_is_served_beside_the_api(ctx):
    app = create_app(ctx.settings, ctx.store, ctx.queue)
    with TestClient(app) as client:
        page = client.get("/compare?runs=1")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert client.get("/api/v1/health").json()["status"] == "ok"
        assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200
        missing = client.get("/api/v1/nope")
        assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
        assert "1-bootstrap" in page.text  # the vendored stylesheet: no CDN needed
        body = {
            "output": "..page.children...nav-runs.active...nav-launch.active...nav-compare.active..."
            "nav-benchmark.active..",
            "outputs": [{"id": "page", "property": "children"}]
            + [{"id": f"nav-{n}", "property": "active"} for n in ("runs", "launch", "compare", "benchmark")],
            "inputs": [
                {"id": "url", "property": "pathname", "value": "/launch"},
                {"id": "url", "property": "search", "value": ""},
            ],
            "state": [{"id": "theme", "property": "data", "value": "light"}],
            "changedPropIds": ["url.pathname"],
        }
        answer = client.post("/_dash-update-component", json=body)
        assert answer.status_code == 200, answer.text
        assert "launch-form" in answer.text and answer.json()["response"]["nav-launch"]["active"] is True


def test_every_catalog_entry_gets_a_form_and_its_defaults_read_back_as_valid_options():
    cat = launch.catalog()
    for section, registry in (("dataset", "datasets"), ("method", "methods"), ("encoder", "encoders")):
        for name in cat[registry]:
            args = {"dataset": "", "method": "", "encoder": "", section: name}
            fields = launch.section_fields(section, args["dataset"], args["method"], args["encoder"])
            dump(sf.render(section, fields))  # the form serialises
            shown = {f.name: sf.shown(f) for f in fields}
            options, errors = sf.collect(fields, shown)
            assert not {k: v for k, v in errors.items() if v != "Required."}, (section, name, errors)


def test_a_running_run_shows_a_method_pass_in_progress_beside_its_epoch():
    progress = {"epoch": 2, "epochs": 5, "fraction": 0.3, "eta_seconds": 12.0, "phase": "prototypes 3/9"}
    _, caption = components.progress_cell({"status": "running", "progress": progress}).children
    assert caption.children == "epoch 2/5 · prototypes 3/9 · ETA 12s"


def test_the_compare_summary_of_a_lens_estimate_has_a_column_of_element_counts():
    records = [{"epoch": 1, "nmi.audio": 0.01, "nmi.visual": 0.02, "lens_elements": 51200}]
    table = dump(compare.summary_table([{"id": 1, "name": "a", "config": {}, "records": records}], ["nmi.*"], "run"))
    assert "elements per estimate" in table and "51,200" in table


@pytest.mark.parametrize("method", sorted(METHODS.names()))
def test_every_method_s_options_are_a_form_with_help_text_and_its_defaults_launch(method):
    fields = launch.section_fields("method", "synthetic-shift", method, "mlp")
    assert all(f.description for f in fields), [f.name for f in fields if not f.description]
    assert launch.plan("synthetic-shift", method, "mlp", "0", False, None, None, [opt("run", "epochs", 1)]).ok
