"""External runs in the dashboard: their own keys charted, and no action that only trained runs have."""

from __future__ import annotations

from dashboard import figures as fx
from dashboard.pages import launch, run_detail
from service.catalog import metrics_of
from tests.layout_support import dump, find, walk

KEY = "20261130-abcdef123456"
RECORDS = [
    {"epoch": 1, "val_acc": 0.5, "val_acc.audio": 0.3, "val_acc.visual": 0.4, "lr": 0.1,
     "grad_cos.audio": 0.2, "grad_cos.visual": -0.1, "phase": "warm-up"},
    {"epoch": 2, "val_acc": 0.6, "val_acc.audio": 0.35, "val_acc.visual": 0.45, "lr": 0.05,
     "grad_cos.audio": 0.3, "grad_cos.visual": 0.0},
]


def external_run(ctx, records=RECORDS, status="running"):
    run, _ = ctx.store.create_external_run(KEY, name="my-avnet", config={"lr": 0.1}, dataset="external", seed=0,
                                           epochs=0, tags=[])
    ctx.store.log_external(run["id"], KEY, records)
    if status != "running":
        ctx.store.finish_external(run["id"], KEY, status, "Traceback ...\nValueError: boom" if status == "failed" else None)
    return ctx.store.get_run(run["id"])


def test_keys_nothing_declares_are_grouped_by_family_with_a_line_per_modality():
    families = fx.undeclared_families(RECORDS, metrics_of("external"))
    assert families == {"lr": ["lr"], "grad_cos": ["grad_cos.audio", "grad_cos.visual"]}


def test_each_undeclared_family_gets_a_chart_of_its_own_saying_the_script_logged_it():
    figures = fx.logged_figures(RECORDS, metrics_of("external"))
    assert [f.layout.title.text for f in figures] == ["lr (logged by the script)", "grad_cos (logged by the script)"]
    assert [t.name for t in figures[1].data] == ["audio", "visual"]
    assert list(figures[1].data[0].y) == [0.2, 0.3]


def test_the_standard_keys_of_an_external_run_draw_on_the_engine_charts(ctx):
    run = external_run(ctx)
    figures = run_detail.build_figures(ctx.store.metrics(run["id"]), [], None, run["method"])
    accuracy = figures["accuracy"]
    assert {t.name for t in accuracy.data} >= {"audio", "visual"}
    assert len(figures["method"]) == 2


def test_an_external_run_page_offers_neither_launch_again_nor_retry(ctx):
    run = external_run(ctx, status="failed")
    page = run_detail.layout(ctx, run["id"])
    assert "Launch again" not in dump(page)
    assert find(page, "run-retry").disabled is True
    assert "external: its own script" in dump(page) and "ValueError: boom" in dump(page)


def test_launch_again_from_an_external_run_starts_from_the_defaults(ctx):
    run = external_run(ctx)
    assert launch._prefill(ctx, f"?from={run['id']}") == {}


def test_the_contribution_stack_leaves_out_epochs_where_a_part_was_not_measured():
    records = [{"epoch": 1, "val_acc": 0.5, "shapley.audio": 0.1, "shapley.visual": 0.2},
               {"epoch": 2, "val_acc": 0.6},
               {"epoch": 3, "val_acc": 0.7, "shapley.audio": 0.2, "shapley.visual": 0.3}]
    from armscope.metrics import CHARTS

    (stack,) = [c for c in CHARTS if c.style == "stack"]
    figure = fx.chart_figure(stack, records, None, metrics_of("external"))
    assert all(list(trace.x) == [1, 3] for trace in figure.data)


def test_an_external_run_page_leaves_off_the_engine_charts_it_logged_nothing_for(ctx):
    run = external_run(ctx)
    page = run_detail.layout(ctx, run["id"])
    hidden = [c for c in walk(page) if (getattr(c, "style", None) or {}).get("display") == "none"]
    graphs = {c.id for h in hidden for c in walk(h) if str(getattr(c, "id", "")).startswith("run-graph-")}
    assert graphs == {f"run-graph-{g}" for g in run_detail.GRAPHS} - {"run-graph-accuracy"}  # it logged accuracies



def test_the_stat_tiles_show_the_last_value_logged_of_each_measure(ctx):
    run = external_run(ctx, records=[{"epoch": 1, "val_acc": 0.5, "dominant": "audio", "imbalance": 0.25},
                                     {"epoch": 2, "val_acc": 0.6}])
    tiles = dump(run_detail.stats(run, ctx.store.metrics(run["id"])))
    assert '"audio"' in tiles and '"0.25"' in tiles and '"60.0%"' in tiles


def test_an_external_run_compares_beside_a_trained_one(ctx):
    from dashboard.pages import compare
    from tests.test_dashboard_callbacks import make_run

    trained = make_run(ctx, epochs=2, status="succeeded")
    external = external_run(ctx)
    page = dump(compare.layout(ctx, f"?runs={trained['id']},{external['id']}&metric=val_acc"))
    assert "my-avnet" in page and trained["name"] in page
