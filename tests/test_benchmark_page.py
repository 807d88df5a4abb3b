"""The benchmark page's logic against a real store (SQLite) and a queue that records what it is sent."""

from __future__ import annotations

import pytest
from dash import dcc, html

from dashboard import components as ui
from dashboard import figures as fx
from dashboard.context import Context
from dashboard.pages import benchmark
from tests.test_benchmark import finished_run

pytestmark = pytest.mark.unit


@pytest.fixture
def three_methods(ctx) -> dict[str, list[int]]:
    """baseline and arm over seeds 0 and 1, ogm-ge over seed 0: each method's run ids."""
    return {
        "baseline": [finished_run(ctx.store, "baseline", s, acc=a, shapley=sh)
                     for s, a, sh in [(0, 0.80, (0.3, 0.1)), (1, 0.90, (0.3, 0.3))]],
        "arm": [finished_run(ctx.store, "arm", s, acc=a, shapley=(0.4, 0.2)) for s, a in [(0, 0.70), (1, 0.74)]],
        "ogm-ge": [finished_run(ctx.store, "ogm-ge", 0, acc=0.95, shapley=(0.2, 0.2))],
    }


def shown(ctx: Context, search: str = "") -> dict:
    return benchmark.render(ctx, benchmark.parse_view(search), "light")


def text_of(component) -> str:
    """The text a component shows, its children's joined."""
    if component is None:
        return ""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return " ".join(text_of(c) for c in component)
    return text_of(getattr(component, "children", None))


def head_and_body(table: list) -> tuple[list, list]:
    (head,) = [part for part in table if isinstance(part, html.Thead)]
    (body,) = [part for part in table if isinstance(part, html.Tbody)]
    return head.children.children, body.children


def cells(table: list) -> list[dict[str, str]]:
    """Each row as {column key: the text of its cell}, keyed by the sort button in the column's header."""
    headers, rows = head_and_body(table)
    keys = [th.children.id["column"] for th in headers]
    return [dict(zip(keys, (text_of(td) for td in row.children))) for row in rows]


def offered(component) -> list[str]:
    """The methods a part of the page has a launch button for."""
    if isinstance(component, (list, tuple)):
        return [method for child in component for method in offered(child)]
    ident = getattr(component, "id", None)
    if isinstance(ident, dict) and ident.get("type") == "benchmark-launch":
        return [ident["method"]]
    children = getattr(component, "children", None)
    return offered(children) if children is not None and not isinstance(children, str) else []


def methods(table: list) -> list[str]:
    return [row.to_plotly_json()["props"]["data-method"] for row in head_and_body(table)[1]]


def test_a_url_names_the_data_set_encoder_project_and_sort_with_defaults_for_what_it_leaves_out():
    assert benchmark.parse_view("") == {"dataset": "synthetic-shift", "encoder": None, "project": None,
                                        "sort": "-val_acc"}
    view = benchmark.parse_view("?dataset=uci-mfeat&encoder=mlp&project=ablations&sort=bb_imbalance")
    assert view == {"dataset": "uci-mfeat", "encoder": "mlp", "project": "ablations", "sort": "bb_imbalance"}


def test_a_row_per_method_best_fused_accuracy_first_each_figure_as_mean_and_std(ctx, three_methods):
    page = shown(ctx)
    assert methods(page["table"]) == ["ogm-ge", "baseline", "arm"] and page["empty"] is None
    rows = {row["label"]: row for row in cells(page["table"])}
    baseline = rows["baseline (n=2)"]
    assert "n=2" in baseline["runs"] and "seeds 0, 1" in baseline["runs"]
    assert baseline["val_acc"] == "85.0% ± 7.1"
    assert baseline["masked.visual"] == "45.0% ± 7.1"
    assert baseline["share.audio"] == "62.5% ± 17.7"  # 0.3/0.4 and 0.3/0.6 of the Shapley sum
    assert baseline["bb_imbalance"] == "0.1 ± 0.14"
    assert baseline["epoch_seconds"] == "3.0s ± 0.0s"
    assert baseline["parameters"] == "100 ± 0" and baseline["flops_per_sample"] == "40 ± 0"
    assert rows["ogm-ge (n=1)"]["val_acc"] == "95.0%"  # one run: no spread
    assert list(rows["arm (n=2)"]) == [
        "label", "runs", "val_acc", "masked.audio", "share.audio", "masked.visual", "share.visual",
        "imbalance", "bb_imbalance", "epoch_seconds", "parameters", "flops_per_sample",
    ]


def test_each_row_links_to_the_compare_view_of_its_runs_over_seeds(ctx, three_methods):
    _, rows = head_and_body(shown(ctx)["table"])
    links = [row.children[0].children for row in rows]
    assert all(isinstance(link, dcc.Link) for link in links)
    ids = ",".join(map(str, three_methods["baseline"]))
    assert f"/compare?runs={ids}&group=seeds&color=method" in [link.href for link in links]


def test_the_table_sorts_by_the_column_the_url_names_and_marks_it(ctx, three_methods):
    ascending = shown(ctx, "?sort=val_acc")
    assert methods(ascending["table"]) == ["arm", "baseline", "ogm-ge"] and ascending["sort"] == "val_acc"
    headers, _ = head_and_body(ascending["table"])
    marks = {th.children.id["column"]: th.to_plotly_json()["props"]["aria-sort"] for th in headers}
    assert marks["val_acc"] == "ascending" and marks["label"] == "none"
    assert methods(shown(ctx, "?sort=-bb_imbalance")["table"]) == ["arm", "baseline", "ogm-ge"]  # 0.2, 0.1, 0
    assert methods(shown(ctx, "?sort=-label")["table"]) == ["ogm-ge", "baseline", "arm"]
    assert methods(shown(ctx, "?sort=-runs")["table"])[-1] == "ogm-ge"
    unknown = shown(ctx, "?sort=password")
    assert unknown["sort"] == "-val_acc" and methods(unknown["table"]) == ["ogm-ge", "baseline", "arm"]


def test_rows_without_a_value_come_last_whichever_way_the_column_is_sorted():
    def row(label: str, mean: float | None) -> dict:
        return {"label": label, "runs": [1], "imbalance": {"mean": mean, "std": None, "n": 1}}

    rows = [row("a", None), row("b", 0.2), row("c", 0.1)]
    assert [r["label"] for r in benchmark.sort_rows(rows, "imbalance")] == ["c", "b", "a"]
    assert [r["label"] for r in benchmark.sort_rows(rows, "-imbalance")] == ["b", "c", "a"]


def test_a_header_click_sorts_by_its_column_best_first_for_accuracies_and_a_second_click_flips_it():
    first = lambda current, column: ui.next_sort(current, column, benchmark.best_first(column))  # noqa: E731
    assert first("-val_acc", "val_acc") == "val_acc"
    assert first("val_acc", "val_acc") == "-val_acc"
    assert first("-val_acc", "masked.audio") == "-masked.audio"
    assert first("-val_acc", "imbalance") == "imbalance"  # least imbalanced first
    assert first("-val_acc", "epoch_seconds") == "epoch_seconds"  # cheapest first


def test_both_charts_draw_a_point_per_row_with_error_bars_coloured_by_method(ctx, three_methods):
    page = shown(ctx)
    for figure in (page["imbalance"], page["cost"]):
        traces = figure["data"]
        assert [t["name"] for t in traces] == ["baseline", "arm", "ogm-ge"]
        assert sum(len(t["x"]) for t in traces) == 3
        assert sorted(label for t in traces for label in t["text"]) == ["arm (n=2)", "baseline (n=2)", "ogm-ge (n=1)"]
        baseline = traces[0]
        assert baseline["y"] == [pytest.approx(0.85)] and baseline["error_y"]["array"] == [pytest.approx(0.0707107)]
        assert baseline["marker"]["color"] == fx.th.method_color("baseline")
    assert page["cost"]["data"][0]["x"] == [pytest.approx(3.0)]


def test_chart_labels_from_data_are_plain_text():
    row = {"label": "<b>x</b>", "method": "<i>m</i>", "runs": [1],
           "val_acc": {"mean": 0.5, "std": None, "n": 1}, "imbalance": {"mean": 0.1, "std": None, "n": 1}}
    (trace,) = fx.benchmark_figure([row], "imbalance", "imbalance")["data"]
    assert trace["text"] == ["&lt;b&gt;x&lt;/b&gt;"] and trace["name"] == "&lt;i&gt;m&lt;/i&gt;"


def test_the_methods_without_runs_are_offered_for_launch(ctx, three_methods):
    launchable = offered(shown(ctx)["launchers"])
    assert "unimodal" in launchable and "ogm" in launchable and len(launchable) == len(set(launchable))
    assert not {"arm", "baseline", "ogm-ge"} & set(launchable)


def test_launching_a_method_stores_and_queues_a_seed_sweep_of_it_on_the_data_set(ctx):
    answer, bad_seeds = benchmark.launch(ctx, "unimodal", "synthetic-shift", "resnet18", "0-2")
    assert not bad_seeds
    (link,) = [c for c in answer.children if isinstance(c, dcc.Link)]
    sweep = int(link.href.removeprefix("/sweeps/"))
    runs, _ = ctx.store.list_runs(sweep=sweep)
    assert sorted(r["seed"] for r in runs) == [0, 1, 2] and "3 runs queued" in text_of(answer)
    assert {(r["method"], r["dataset"]) for r in runs} == {("unimodal", "synthetic-shift")}
    assert {r["config"]["model_options"]["encoder"]["name"] for r in runs} == {"resnet18"}
    assert sorted(run_id for run_id, _ in ctx.queue.sent) == sorted(r["id"] for r in runs)
    benchmark.launch(ctx, "pmr", "uci-mfeat", None, benchmark.DEFAULT_SEEDS)
    pmr, _ = ctx.store.list_runs(method="pmr")
    assert sorted(r["seed"] for r in pmr) == [0, 1] and {r["dataset"] for r in pmr} == {"uci-mfeat"}
    assert {r["config"]["epochs"] for r in pmr} == {10}  # every other setting at its default


def test_bad_seeds_are_an_inline_error_and_launch_nothing(ctx):
    answer, bad_seeds = benchmark.launch(ctx, "unimodal", "synthetic-shift", None, "zero, one")
    assert bad_seeds and "Write seeds like 0, 1, 2" in text_of(answer) and answer.className == "text-danger"
    assert ctx.store.list_runs()[0] == [] and ctx.queue.sent == []


def test_a_config_the_service_refuses_is_an_inline_error_naming_the_field(ctx):
    answer, bad_seeds = benchmark.launch(ctx, "unimodal", "features", None, "0")
    assert not bad_seeds and "dataset_options.root" in text_of(answer) and answer.className == "text-danger"
    ctx.queue.broken = True
    answer, _ = benchmark.launch(ctx, "unimodal", "synthetic-shift", None, "0")
    assert "not reachable" in text_of(answer)
    assert ctx.store.list_runs()[0] == []


def test_a_data_set_without_finished_runs_says_so_and_still_offers_every_method(ctx):
    finished_run(ctx.store, "arm", 0, acc=0.8, shapley=(0.3, 0.1), status="failed")
    page = shown(ctx)
    assert page["table_hidden"] and page["charts_hidden"]
    assert "No finished runs on synthetic-shift yet" in text_of(page["empty"])
    assert "arm" in offered(page["launchers"])
    assert "with the resnet18 encoder yet" in text_of(shown(ctx, "?encoder=resnet18")["empty"])


def test_an_unknown_data_set_or_encoder_in_the_url_says_so_naming_the_choices(ctx):
    page = shown(ctx, "?dataset=nope")
    note = text_of(page["notes"])
    assert "unknown data set 'nope'; choose from:" in note and "synthetic-shift" in note
    assert page["table_hidden"] and page["charts_hidden"]
    assert "unknown encoder 'vit'" in text_of(shown(ctx, "?encoder=vit")["notes"])
    layout = benchmark.layout(ctx, "?dataset=%3Cb%3Enope", "light")
    assert "unknown data set '<b>nope'" in text_of(layout)  # as text: Dash shows children literally
