"""Compare `/compare?runs=1,2&metric=val_acc,shapley.*&smooth=0.6&x=epoch&color=run&group=run`: a workspace of
charts over the same runs, each chart with its own metric, added and removed on the page.

The URL holds the whole view (runs, each chart's metric, smoothing, x axis, colouring, each run or mean ± std
over seeds), so a link reproduces it and a saved view is a link; a link with one ``metric`` (as links were
before charts could be added) opens one chart, and ``metric`` may also be repeated. A value the page cannot
show (``x=wall_time``, a metric no compared run records, a run that does not exist) is named on the page with
the choices, never dropped in silence.
The store thins every run to at most ``ctx.compare_points`` epochs, so long runs stay quick to draw.
While any compared run is queued or running the page polls each run's status and epoch (no curves)
and redraws only when one of them moved.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Sequence
from urllib.parse import parse_qs, quote

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate
from pydantic import Field

from dashboard import components as ui
from dashboard import figures as fx
from dashboard import saved_views
from dashboard import theme as th
from dashboard.inputs import MAX_IDS, MAX_TEXT, Option, RunId, Text, TooManyRuns, checked, id_from_text, ids_from_csv
from service import seed_sets as ss
from service.catalog import metric_of
from service.compare import MAX_COMPARED
from service.db.store import TERMINAL, RunNotFound

X_OPTIONS = [
    {"label": "epoch", "value": "epoch"},
    {"label": "wall time", "value": "wall"},
    {"label": "samples seen", "value": "samples"},
]
COLOR_OPTIONS = [{"label": "run", "value": "run"}, {"label": "method", "value": "method"}]
GROUP_OPTIONS = [{"label": "each run", "value": "run"}, {"label": "mean ± std over seeds", "value": "seeds"}]
# Each choice a URL makes: its options, its default, and what a value of it is (for the page's notes).
CHOICES = {
    "x": (X_OPTIONS, "epoch", "an x axis"),
    "color": (COLOR_OPTIONS, "run", "a colouring"),
    "group": (GROUP_OPTIONS, "run", "a grouping"),
}
COMPARED = "compared at once"
MAX_CHARTS = 6
MAX_SMOOTHING = 0.99
Chosen = Annotated[list[RunId], Field(max_length=MAX_IDS)]
Options = Annotated[list[Option], Field(max_length=MAX_IDS)]
Metrics = Annotated[list[Text], Field(max_length=MAX_CHARTS)]
MetricOptions = Annotated[list[dict[str, Text]], Field(max_length=1000)]
Clicks = Annotated[list[int | None], Field(max_length=MAX_CHARTS)]
Picked = Annotated[list[Text | None], Field(max_length=MAX_CHARTS)]
REMOVE = {"type": "compare-remove", "index": ALL}
CHART_METRIC = {"type": "compare-metric", "index": ALL}


# -- the view a URL asks for ---------------------------------------------------------------------


def parse_view(search: str | None) -> dict[str, Any]:
    """The view a URL asks for, with defaults for whatever it leaves out, and ``problems``: what it got wrong.

    More than MAX_COMPARED runs are refused, not cut short: the view then holds no runs and
    ``refused`` says why, for the page to show.
    """
    query = parse_qs((search or "").lstrip("?"))
    first = lambda key, default="": (query.get(key) or [default])[0]  # noqa: E731
    metrics = [m for value in query.get("metric", []) for m in value.split(",")]
    return make_view(first("runs"), metrics, first("smooth"), first("x"), first("color"), first("group"))


def make_view(
    runs: str | list[int], metrics: Sequence[str], smooth: Any, x: str, color: str, group: str
) -> dict[str, Any]:
    """A view from a URL's values or the controls' (``runs`` as ``1,2,3`` or as ids), made valid: an empty
    value takes its default, a wrong one too and adds a problem naming it and the choices."""
    ids, refused, problems = compared_ids(runs)
    charts, chart_problems = chart_metrics(metrics)
    smoothing, smooth_problem = smoothing_of(smooth)
    view: dict[str, Any] = {"runs": ids, "metrics": charts, "smooth": smoothing}
    for name, value in (("x", x), ("color", color), ("group", group)):
        view[name], problem = choice(name, value)
        problems += [problem] if problem else []
    return {**view, "refused": refused, "problems": problems + chart_problems + ([smooth_problem] if smooth_problem else [])}


def compared_ids(runs: str | list[int]) -> tuple[list[int], str | None, list[str]]:
    """The distinct ids to compare, or none and why when there are more than MAX_COMPARED; and a problem
    for each part of a link's ``runs`` that is no run id (the first few)."""
    problems = stray_ids(runs) if isinstance(runs, str) else []
    try:
        ids = ids_from_csv(runs, MAX_COMPARED, COMPARED) if isinstance(runs, str) else list(dict.fromkeys(runs))
        if len(ids) > MAX_COMPARED:
            raise TooManyRuns(len(ids), MAX_COMPARED, COMPARED)
    except TooManyRuns as exc:
        return [], str(exc), problems
    return ids, None, problems


def stray_ids(text: str, most: int = 3) -> list[str]:
    """'runs: 'x' is not a run id' for the first ``most`` parts of ``1,x,2`` that are not ids; one pass."""
    strays = []
    for part in (p.strip() for p in text.split(",")):
        if part and id_from_text(part) is None:
            strays.append(f"runs: {quoted(part)} is not a run id, so it is left out.")
            if len(strays) == most:
                break
    return strays


def chart_metrics(metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """Each chart's metric, in order (the default chart when none is given), and what was left out and why."""
    given = [m.strip() for m in metrics if m and m.strip()]
    long = [m for m in given if len(m) > MAX_TEXT]
    problems = [f"metric {quoted(m)} is longer than {MAX_TEXT} characters, so it is left out." for m in long[:3]]
    charts = [m for m in given if len(m) <= MAX_TEXT]
    if len(charts) > MAX_CHARTS:
        extra = charts[MAX_CHARTS:]
        named = ", ".join(quoted(m) for m in extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        problems.append(f"At most {MAX_CHARTS} charts: {named} left out.")
    return charts[:MAX_CHARTS] or [fx.DEFAULT_METRIC], problems


def smoothing_of(smooth: Any) -> tuple[float, str | None]:
    """The EMA smoothing asked for, and a problem when it is not a number from 0 to MAX_SMOOTHING."""
    if smooth is None or smooth == "":
        return 0.0, None
    try:
        value = float(smooth)
    except (TypeError, ValueError):
        value = math.nan
    if math.isnan(value):
        return 0.0, f"smooth={quoted(smooth)} is not a number, so nothing is smoothed: choose from 0 to {MAX_SMOOTHING}."
    clamped = min(max(value, 0.0), MAX_SMOOTHING)
    if clamped != value:
        return clamped, f"smooth={quoted(smooth)} is outside 0 to {MAX_SMOOTHING}: showing {clamped:g}."
    return value, None


def choice(name: str, value: str) -> tuple[str, str | None]:
    """``value`` when it is one of ``name``'s choices; else the default, and a problem naming both."""
    options, default, what = CHOICES[name]
    values = [o["value"] for o in options]
    if not value or value in values:
        return value or default, None
    return default, f"{name}={quoted(value)} is not {what}: showing {default}. Choose from: {', '.join(values)}."


def quoted(value: Any) -> str:
    """A value from a URL as a note quotes it: in quotes, cut short."""
    text = str(value)
    return repr(text if len(text) <= 60 else text[:60] + "…")


def view_query(view: dict[str, Any]) -> str:
    """The query string that reproduces ``view`` (the same format parse_view reads)."""
    metrics = ",".join(quote(m, safe="*!~'()") for m in view["metrics"])
    return (
        f"?runs={','.join(str(i) for i in view['runs'])}&metric={metrics}"
        f"&smooth={round(float(view['smooth']), 2):g}&x={view['x']}&color={view['color']}&group={view['group']}"
    )


# -- reading the runs --------------------------------------------------------------------------------


def load(ctx: Any, ids: Sequence[int]) -> tuple[list[dict[str, Any]], list[str]]:
    """The runs' curves, thinned by the store; ids that no longer exist are reported, not fatal.

    One query finds which runs exist; a run deleted between it and the curves' query is left out
    the same way, one retry per such race.
    """
    ids = list(ids)
    if ids:
        found, _ = ctx.store.list_runs(ids=ids, limit=len(ids))
        present = {run["id"] for run in found}
        missing = [missing_note(i) for i in ids if i not in present]
        ids = [i for i in ids if i in present]
    else:
        missing = []
    while ids:
        try:
            return ctx.store.compare(ids, points=ctx.compare_points), missing
        except RunNotFound as exc:
            missing.append(missing_note(exc.run_id))
            ids = [i for i in ids if i != exc.run_id]
    return [], missing


def missing_note(run_id: int) -> str:
    return f"{RunNotFound(run_id)}: it is left out of this comparison (deleted, or a wrong id in the link)."


def progress(ctx: Any, ids: Sequence[int]) -> dict[str, Any]:
    """Each run's status and epoch: all a poll needs to know whether the curves moved, without them."""
    if not ids:
        return {"signature": [], "live": False}
    found, _ = ctx.store.list_runs(ids=list(ids), limit=len(ids))
    return {
        "signature": sorted([r["id"], r["status"], r["progress"]["epoch"]] for r in found),
        "live": any(r["status"] not in TERMINAL for r in found),
    }


def held(records: Sequence[dict[str, Any]], metric: str) -> bool:
    """Whether any record holds ``metric`` (a key, or a family's ``prefix.*``)."""
    if metric.endswith(".*"):
        prefix = metric[:-1]
        return any(k.startswith(prefix) for r in records for k in r)
    return any(metric in r for r in records)


def metric_problems(metrics: Sequence[str], records: Sequence[dict[str, Any]], options: Sequence[dict[str, str]]) -> list[str]:
    """A note for each chart's metric that no compared run records (judged once some run has epochs)."""
    if not records:
        return []
    choices = ", ".join(o["value"] for o in options[:12]) + (", …" if len(options) > 12 else "")
    notes = []
    for metric in dict.fromkeys(metrics):
        if held(records, metric):
            continue
        if metric_of(metric) is None:
            notes.append(f"metric {quoted(metric)} is not a metric these runs record. Choose from: {choices}.")
        else:
            notes.append(f"No compared run records {fx.metric_label(metric)} ({metric}): its chart is empty.")
    return notes


# -- what the page shows ----------------------------------------------------------------------------------


def diff_table(runs: Sequence[dict[str, Any]]) -> Any:
    if len(runs) < 2:
        return html.P("Pick two or more runs to see how their configs differ.", className="text-body-secondary mb-0")
    keys, rows = ss.config_diff([r["config"] for r in runs])
    if not keys:
        return html.P("These runs share one config (apart from their names).", className="text-body-secondary mb-0")
    head = html.Thead(html.Tr([html.Th("run")] + [html.Th(k, className="font-monospace small") for k in keys]))
    body = html.Tbody(
        [
            html.Tr(
                [html.Td(dcc.Link(fx.run_label(run), href=f"/runs/{run['id']}"), className="text-nowrap")]
                + [html.Td(values[k], className="font-monospace small") for k in keys]
            )
            for run, values in zip(runs, rows)
        ]
    )
    return html.Div(
        dbc.Table([head, body], size="sm", hover=True, class_name="mb-0", id="compare-diff-table"),
        className="table-responsive",
    )


def value_text(metric: str, pair: tuple[float, float | None]) -> str:
    """``64.0% ± 1.0%``, ``0.66 s ± 0.02 s``, ``0.5319 ± 0.0123``: the spread in the mean's format and unit."""
    mean, deviation = pair
    declared = metric_of(metric)
    if declared is not None and declared.unit == "fraction":
        text, spread = f"{100 * mean:.1f}%", None if deviation is None else f"{100 * deviation:.1f}%"
    else:
        unit = f" {declared.unit}" if declared is not None and declared.unit not in ("", "numbers") else ""
        text = f"{mean:.4g}"
        if deviation is None:
            spread = None
        elif "e" in text:
            text, spread = f"{mean:.3e}", f"{deviation:.3e}"
        else:
            decimals = len(text.partition(".")[2])
            spread = f"{deviation:.{decimals}f}"
        text += unit
        spread = None if spread is None else spread + unit
    return text if spread is None else f"{text} ± {spread}"


def summary_table(runs: Sequence[dict[str, Any]], metrics: Sequence[str], group: str) -> Any:
    """Each line's last and best value (unsmoothed) of each chart's metric, to copy into a paper; mean ± std
    for sets of seeds. A metric column when there are several charts."""
    metrics = list(dict.fromkeys(metrics))
    rows = [(metric, row) for metric in metrics for row in fx.compare_summary(runs, metric, group)]
    if not rows:
        return html.P("No values yet.", className="text-body-secondary mb-0")
    seeds = group == "seeds"
    several = len(metrics) > 1
    best = "best" if several else ("lowest" if ss.lower_is_better(metrics[0]) else "best")
    heads = (["metric"] if several else []) + ["set" if seeds else "run", "modality",
                                               "runs" if seeds else "last epoch", "last value", f"{best} value"]
    if not seeds:
        heads.append("at epoch")
    sized = any("elements" in row for _, row in rows)
    if sized:
        heads.append("elements per estimate")
    body = []
    for metric, row in rows:
        cells = ([fx.metric_label(metric)] if several else []) + [
            row["label"], row["modality"] or "—", row["n"] if seeds else row["epoch"],
            value_text(metric, row["final"]), value_text(metric, row["best"]),
        ]
        if not seeds:
            cells.append(row["best_epoch"])
        if sized:
            cells.append(", ".join(f"{count:,}" for count in row.get("elements", [])) or "—")
        first_number = 3 if several else 2
        body.append(html.Tr([html.Td(c, className="font-monospace small" if i >= first_number else "")
                             for i, c in enumerate(cells)]))
    return html.Div(
        dbc.Table([html.Thead(html.Tr([html.Th(h) for h in heads])), html.Tbody(body)], size="sm", hover=True,
                  class_name="mb-0", id="compare-summary-table"),
        className="table-responsive",
    )


def run_options(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"label": f"{fx.run_label(r)} ({r['status']})", "value": r["id"]} for r in runs]


def selection(runs: Sequence[dict[str, Any]], view: dict[str, Any]) -> Any:
    """The chosen runs by name (the picker itself only has room for the first), each with its method, seed,
    status and project; with its line's colour where each run has one."""
    if not runs:
        return html.Small("No runs chosen yet.", className="text-body-secondary")
    coloured = view["color"] == "run" and view["group"] == "run"
    items = []
    for index, run in enumerate(runs):
        swatch = html.Span(className="d-inline-block rounded-circle me-2 flex-shrink-0",
                           style={"width": "0.7rem", "height": "0.7rem", "background": th.run_color(index)})
        details = [run.get("method") or "", f"seed {run.get('seed')}", run.get("status") or ""]
        if run.get("project"):
            details.append(f"project {run['project']}")
        items.append(
            html.Li(
                [
                    swatch if coloured else None,
                    html.Div([
                        dcc.Link(fx.run_label(run), href=f"/runs/{run['id']}", className="run-link fw-semibold"),
                        html.Div(" · ".join(d for d in details if d), className="text-body-secondary"),
                    ], className="text-break"),
                ],
                className="d-flex align-items-baseline mb-1",
                **{"data-run-id": str(run["id"])},
            )
        )
    return html.Ul(items, className="list-unstyled small mb-0", id="compare-selection-list")


def graph_id(index: int) -> str:
    """The first chart keeps the id the page's single chart always had."""
    return "compare-graph" if index == 0 else f"compare-graph-{index + 1}"


def chart_figure(runs: Sequence[dict[str, Any]], metric: str, view: dict[str, Any], mode: str | None, count: int) -> Any:
    figure = fx.compare_figure(runs, metric, view["smooth"], view["x"], view["color"], mode, view["group"])
    if count > 1:  # half a row each: shorter, the legend below the plot instead of beside it
        figure["layout"].update(height=400, legend={"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"})
        figure["layout"]["margin"] = {"l": 60, "r": 16, "t": 40, "b": 40}
    return figure


def charts(runs: Sequence[dict[str, Any]], view: dict[str, Any], mode: str | None, options: list[dict[str, str]]) -> list[Any]:
    """A card per chart: its metric's dropdown, a button to remove it (while there are others), its graph."""
    count = len(view["metrics"])
    cards = []
    for index, metric in enumerate(view["metrics"]):
        header = html.Div(
            [
                dcc.Dropdown(id={"type": "compare-metric", "index": index}, options=options, value=metric,
                             clearable=False, className="flex-grow-1"),
                html.Button("×", id={"type": "compare-remove", "index": index}, n_clicks=0, hidden=count == 1,
                            className="btn btn-sm btn-outline-secondary ms-2", title="Remove this chart",
                            **{"aria-label": f"Remove the chart of {metric}"}),
            ],
            className="d-flex align-items-center mb-1 compare-chart-head",
        )
        graph = ui.graph(graph_id(index), chart_figure(runs, metric, view, mode, count), f"armscope-compare-{index + 1}",
                         style={"height": "480px" if count == 1 else "400px"})
        card = dbc.Card(dbc.CardBody([header, graph], class_name="p-2"), class_name="shadow-sm h-100")
        width = "col-12" if count == 1 else "col-12 col-xl-6"
        cards.append(html.Div(card, className=f"{width} compare-chart", **{"data-metric": metric}))
    return cards


def render(ctx: Any, view: dict[str, Any], mode: str | None, moved: dict[str, Any] | None = None) -> dict[str, Any]:
    """Charts, tables, metric choices, selection and notes for a view: what both the page and its callback show.

    ``moved`` is the runs' progress when the caller has just read it (a poll), so it is not read twice.
    """
    runs, missing = load(ctx, view["runs"])
    records = [rec for run in runs for rec in run["records"]]
    options = fx.metric_options(records)
    offered = {o["value"] for o in options}
    options += [{"label": fx.metric_label(m), "value": m} for m in dict.fromkeys(view["metrics"]) if m not in offered]
    problems = metric_problems(view["metrics"], records, fx.metric_options(records))
    return {
        "progress": moved or progress(ctx, [run["id"] for run in runs]),
        "charts": charts(runs, view, mode, options),
        "diff": diff_table(runs),
        "summary": summary_table(runs, view["metrics"], view["group"]),
        "metric_options": options,
        "notes": [*refusal(view), *warnings(missing), *warnings(problems)],
        "missing": missing,
        "problems": problems,
        "run_options": run_options(runs),
        "selection": selection(runs, view),
        "full": len(view["metrics"]) >= MAX_CHARTS,
    }


def warnings(messages: Sequence[str], dismissable: bool = False) -> list[dbc.Alert]:
    return [dbc.Alert(m, color="warning", class_name="py-1 small mb-2", dismissable=dismissable) for m in messages]


def refusal(view: dict[str, Any]) -> list[dbc.Alert]:
    if not view.get("refused"):
        return []
    return [dbc.Alert(view["refused"], color="danger", class_name="py-2 mb-2", id="compare-refused")]


def poll(
    ctx: Any, view: dict[str, Any], mode: str | None, by_timer: bool, last: list[Any] | None
) -> dict[str, Any] | None:
    """What the page shows next; None when the timer fired and no run moved since ``last``."""
    if not by_timer:
        return render(ctx, view, mode)
    moved = progress(ctx, view["runs"])
    return None if moved["signature"] == last else render(ctx, view, mode, moved)


def edited(
    metrics: list[str], trigger: Any, clicked: bool, picked: dict[int, str | None], added: str | None,
    options: Sequence[dict[str, str]],
) -> list[str] | None:
    """The charts' metrics after a click or a pick; None when nothing changed.

    ``trigger`` is what fired: the add button, a chart's remove button (``{"type": "compare-remove",
    "index": i}``) or a chart's metric dropdown; ``picked`` is every chart's dropdown value by index.
    A re-drawn button fires with no click (``clicked`` false): that is not a click.
    """
    if trigger == "compare-add":
        if not clicked or len(metrics) >= MAX_CHARTS:
            return None
        unused = [o["value"] for o in options if o["value"] not in metrics]
        new = added or (unused[0] if unused else fx.DEFAULT_METRIC)
        return [*metrics, new]
    if isinstance(trigger, dict) and trigger.get("type") == "compare-remove":
        index = trigger.get("index")
        if not clicked or len(metrics) < 2 or not isinstance(index, int) or not 0 <= index < len(metrics):
            return None
        return [m for i, m in enumerate(metrics) if i != index]
    if isinstance(trigger, dict) and trigger.get("type") == "compare-metric":
        changed = [picked.get(i) or m for i, m in enumerate(metrics)]
        return changed if changed != metrics else None
    return None


def chart_indices(inputs_list: Sequence[Any]) -> list[int | None]:
    """The index of each chart's dropdown among a callback's inputs (the third), in the order of their values."""
    dropdowns = inputs_list[2] if len(inputs_list) > 2 and isinstance(inputs_list[2], list) else []
    indices = []
    for item in dropdowns:
        ident = item.get("id") if isinstance(item, dict) else None
        index = ident.get("index") if isinstance(ident, dict) else None
        indices.append(index if isinstance(index, int) and not isinstance(index, bool) else None)
    return indices


def controls(view: dict[str, Any], shown: dict[str, Any]) -> dbc.Card:
    return dbc.Card(
        dbc.CardBody(
            [
                dbc.Label("Runs", html_for="compare-runs"),
                dcc.Dropdown(
                    id="compare-runs",
                    options=shown["run_options"],
                    value=view["runs"],
                    multi=True,
                    placeholder="Search runs by name…",
                    className="mb-2",
                ),
                html.Div(shown["selection"], id="compare-selection", className="mb-3 compare-selection"),
                dbc.Label("Add a chart", html_for="compare-add-metric"),
                html.Div(
                    [
                        dcc.Dropdown(id="compare-add-metric", options=shown["metric_options"], placeholder="Metric…",
                                     className="flex-grow-1"),
                        dbc.Button("Add", id="compare-add", n_clicks=0, size="sm", color="primary", outline=True,
                                   class_name="ms-2", disabled=shown["full"]),
                    ],
                    className="d-flex align-items-center mb-3",
                ),
                dbc.Label("Smoothing (EMA)", html_for="compare-smoothing"),
                dcc.Slider(
                    id="compare-smoothing",
                    min=0,
                    max=MAX_SMOOTHING,
                    step=0.01,
                    value=view["smooth"],
                    marks={0: "0", 0.5: "0.5", 0.9: "0.9"},
                    tooltip={"placement": "bottom"},
                    className="mb-3",
                ),
                dbc.Label("x axis"),
                dbc.RadioItems(id="compare-x", options=X_OPTIONS, value=view["x"], inline=True, class_name="mb-3"),
                dbc.Label("Colour by"),
                dbc.RadioItems(
                    id="compare-color", options=COLOR_OPTIONS, value=view["color"], inline=True, class_name="mb-3"
                ),
                dbc.Label("Show"),
                dbc.RadioItems(
                    id="compare-group", options=GROUP_OPTIONS, value=view["group"], inline=True, class_name="mb-3"
                ),
                html.Small(
                    f"Up to {MAX_CHARTS} charts, each with its own metric. Per-modality metrics: one colour per run "
                    "(or per set of seeds), one dash style per modality. Runs whose configs differ only in their seed "
                    "form one set. The address bar holds this view: copy it to share, or save it below.",
                    className="text-body-secondary",
                ),
            ]
        ),
        class_name="shadow-sm compare-controls mb-3",
    )


def layout(ctx: Any, search: str | None, mode: str | None = None) -> Any:
    view = parse_view(search)
    shown = render(ctx, view, mode)
    # What the link got wrong stays on the page: the picker drops ids it has no run for as soon as it draws,
    # and the redraw that follows would take a note of them away with it.
    link_notes = warnings([*shown["missing"], *view["problems"]], dismissable=True)
    live_notes = [*refusal(view), *warnings(shown["problems"])]
    return html.Div(
        [
            html.H2("Compare", className="page-title"),
            html.Div(link_notes, id="compare-link-notes"),
            html.Div(live_notes, id="compare-notes"),
            dbc.Row(
                [
                    dbc.Col([controls(view, shown), saved_views.panel(ctx, "compare")], lg=3),
                    dbc.Col(dbc.Row(shown["charts"], id="compare-charts", class_name="g-3"), lg=9),
                ],
                class_name="g-3 mb-3",
            ),
            ui.card("Last and best values (unsmoothed)", html.Div(shown["summary"], id="compare-summary")),
            ui.card("Config fields that differ", html.Div(shown["diff"], id="compare-diff")),
            html.Div(id="compare-url-sink", hidden=True),
            dcc.Store(id="compare-metrics", data=view["metrics"]),
            dcc.Store(id="compare-signature", data=shown["progress"]["signature"]),
            dcc.Interval(id="compare-interval", interval=ctx.poll_ms, disabled=not shown["progress"]["live"]),
        ]
    )


def register(app: Dash, ctx: Any) -> None:
    @app.callback(
        Output("compare-charts", "children"),
        Output("compare-diff", "children"),
        Output("compare-summary", "children"),
        Output("compare-add-metric", "options"),
        Output("compare-notes", "children"),
        Output("compare-selection", "children"),
        Output("compare-add", "disabled"),
        Output("compare-signature", "data"),
        Output("compare-interval", "disabled"),
        Input("compare-runs", "value"),
        Input("compare-metrics", "data"),
        Input("compare-smoothing", "value"),
        Input("compare-x", "value"),
        Input("compare-color", "value"),
        Input("compare-group", "value"),
        Input("theme", "data"),
        Input("compare-interval", "n_intervals"),
        State("compare-signature", "data"),
        prevent_initial_call=True,
    )
    @checked
    def redraw(
        runs: Chosen | None, metrics: Metrics | None, smooth: float | None, x: Text | None, color: Text | None,
        group: Text | None, mode: str | None, _n: Any, last: Any,
    ) -> Any:
        view = make_view(runs or [], metrics or [], smooth, x or "", color or "", group or "")
        shown = poll(ctx, view, mode, dash_ctx.triggered_id == "compare-interval", last)
        if shown is None:
            raise PreventUpdate
        live = shown["progress"]
        return (
            shown["charts"], shown["diff"], shown["summary"], shown["metric_options"], shown["notes"],
            shown["selection"], shown["full"], live["signature"], not live["live"],
        )

    @app.callback(
        Output("compare-metrics", "data"),
        Output("compare-add-metric", "value"),
        Input("compare-add", "n_clicks"),
        Input(REMOVE, "n_clicks"),
        Input(CHART_METRIC, "value"),
        State("compare-add-metric", "value"),
        State("compare-add-metric", "options"),
        State("compare-metrics", "data"),
        prevent_initial_call=True,
    )
    @checked
    def edit_charts(
        _add: int | None, _removes: Clicks | None, values: Picked | None, added: Text | None,
        options: MetricOptions | None, metrics: Metrics | None,
    ) -> Any:
        triggered = dash_ctx.triggered[0] if dash_ctx.triggered else {}
        picked = dict(zip(chart_indices(dash_ctx.inputs_list), values or []))
        current = list(metrics or [fx.DEFAULT_METRIC])
        changed = edited(current, dash_ctx.triggered_id, bool(triggered.get("value")), picked, added, options or [])
        if changed is None:
            raise PreventUpdate
        return changed, None if dash_ctx.triggered_id == "compare-add" else no_update

    @app.callback(
        Output("compare-runs", "options"),
        Input("compare-runs", "search_value"),
        State("compare-runs", "value"),
        State("compare-runs", "options"),
        prevent_initial_call=True,
    )
    @checked
    def search(text: Text | None, chosen: Chosen | None, options: Options | None) -> Any:
        """Suggest runs by name from the store (20 at a time): never a list of every run."""
        if not text:
            raise PreventUpdate
        wanted = set(chosen or [])
        keep = [o for o in options or [] if o["value"] in wanted]
        found, _ = ctx.store.list_runs(text=text, limit=20)
        seen = {o["value"] for o in keep}
        return keep + [
            {"label": f"{fx.run_label(r)} ({r['status']})", "value": r["id"]} for r in found if r["id"] not in seen
        ]

    # Keep the address bar in step with the view without a page load (replaceState: no history spam).
    app.clientside_callback(
        """
        function(runs, metrics, smooth, x, color, group) {
            const charts = (metrics && metrics.length ? metrics : ['shapley.*']).map(encodeURIComponent).join(',');
            const q = '?runs=' + (runs || []).join(',') + '&metric=' + charts
                + '&smooth=' + Math.round((smooth || 0) * 100) / 100 + '&x=' + (x || 'epoch')
                + '&color=' + (color || 'run') + '&group=' + (group || 'run');
            if (window.location.pathname === '/compare' && window.location.search !== q) {
                window.history.replaceState(window.history.state, '', '/compare' + q);
            }
            return '';
        }
        """,
        Output("compare-url-sink", "children"),
        Input("compare-runs", "value"),
        Input("compare-metrics", "data"),
        Input("compare-smoothing", "value"),
        Input("compare-x", "value"),
        Input("compare-color", "value"),
        Input("compare-group", "value"),
        prevent_initial_call=True,
    )
    saved_views.register(app, ctx, "compare")
