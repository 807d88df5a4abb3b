"""Compare `/compare?runs=1,2&metric=shapley.*&smooth=0.6&x=epoch&color=run&group=run`: overlay a metric across runs.

The URL holds the whole view (runs, metric, smoothing, x axis, colouring, each run or mean ± std over
seeds), so a link reproduces it.
The store thins every run to at most ``ctx.compare_points`` epochs, so long runs stay quick to draw.
While any compared run is queued or running the page polls each run's status and epoch (no curves)
and redraws only when one of them moved.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Sequence
from urllib.parse import parse_qs

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate
from pydantic import Field

from dashboard import components as ui
from dashboard import figures as fx
from dashboard.inputs import MAX_IDS, Option, RunId, Text, TooManyRuns, checked, ids_from_csv
from service import seed_sets as ss
from service.compare import MAX_COMPARED
from service.db.store import TERMINAL, RunNotFound

X_OPTIONS = [
    {"label": "epoch", "value": "epoch"},
    {"label": "wall time", "value": "wall"},
    {"label": "samples seen", "value": "samples"},
]
COLOR_OPTIONS = [{"label": "run", "value": "run"}, {"label": "method", "value": "method"}]
COMPARED = "compared at once"
Chosen = Annotated[list[RunId], Field(max_length=MAX_IDS)]
Options = Annotated[list[Option], Field(max_length=MAX_IDS)]
GROUP_OPTIONS = [{"label": "each run", "value": "run"}, {"label": "mean ± std over seeds", "value": "seeds"}]


def parse_view(search: str | None) -> dict[str, Any]:
    """The view a URL asks for, with defaults for whatever it leaves out or gets wrong.

    More than MAX_COMPARED runs are refused, not cut short: the view then holds no runs and
    ``refused`` says why, for the page to show.
    """
    query = parse_qs((search or "").lstrip("?"))
    first = lambda key, default="": (query.get(key) or [default])[0]  # noqa: E731
    return make_view(
        first("runs"),
        first("metric", fx.DEFAULT_METRIC),
        first("smooth", "0"),
        first("x", "epoch"),
        first("color", "run"),
        first("group", "run"),
    )


def make_view(runs: str | list[int], metric: str, smooth: Any, x: str, color: str, group: str) -> dict[str, Any]:
    """A view from a URL's values or the controls' (``runs`` as ``1,2,3`` or as ids), made valid."""
    ids, refused = compared_ids(runs)
    try:
        smoothing = min(max(float(smooth or 0), 0.0), 0.99)
    except ValueError:
        smoothing = 0.0
    return {
        "runs": ids,
        "metric": metric or fx.DEFAULT_METRIC,
        "smooth": 0.0 if math.isnan(smoothing) else smoothing,
        "x": x if x in fx.X_KEYS else "epoch",
        "color": color if color in ("run", "method") else "run",
        "group": group if group in ("run", "seeds") else "run",
        "refused": refused,
    }


def compared_ids(runs: str | list[int]) -> tuple[list[int], str | None]:
    """The distinct ids to compare, or none and why when there are more than MAX_COMPARED."""
    try:
        ids = ids_from_csv(runs, MAX_COMPARED, COMPARED) if isinstance(runs, str) else list(dict.fromkeys(runs))
        if len(ids) > MAX_COMPARED:
            raise TooManyRuns(len(ids), MAX_COMPARED, COMPARED)
    except TooManyRuns as exc:
        return [], str(exc)
    return ids, None


def view_query(view: dict[str, Any]) -> str:
    """The query string that reproduces ``view`` (the same format parse_view reads)."""
    return (
        f"?runs={','.join(str(i) for i in view['runs'])}&metric={view['metric']}"
        f"&smooth={round(float(view['smooth']), 2):g}&x={view['x']}&color={view['color']}&group={view['group']}"
    )


def load(ctx: Any, ids: Sequence[int]) -> tuple[list[dict[str, Any]], list[str]]:
    """The runs' curves, thinned by the store; ids that no longer exist are reported, not fatal.

    One query finds which runs exist; a run deleted between it and the curves' query is left out
    the same way, one retry per such race.
    """
    ids = list(ids)
    if ids:
        found, _ = ctx.store.list_runs(ids=ids, limit=len(ids))
        present = {run["id"] for run in found}
        missing = [str(RunNotFound(i)) for i in ids if i not in present]
        ids = [i for i in ids if i in present]
    else:
        missing = []
    while ids:
        try:
            return ctx.store.compare(ids, points=ctx.compare_points), missing
        except RunNotFound as exc:
            missing.append(str(exc))
            ids = [i for i in ids if i != exc.run_id]
    return [], missing


def progress(ctx: Any, ids: Sequence[int]) -> dict[str, Any]:
    """Each run's status and epoch: all a poll needs to know whether the curves moved, without them."""
    if not ids:
        return {"signature": [], "live": False}
    found, _ = ctx.store.list_runs(ids=list(ids), limit=len(ids))
    return {
        "signature": sorted([r["id"], r["status"], r["progress"]["epoch"]] for r in found),
        "live": any(r["status"] not in TERMINAL for r in found),
    }


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


def summary_table(runs: Sequence[dict[str, Any]], metric: str, group: str) -> Any:
    """Each line's last and best value (unsmoothed), to copy into a paper; mean ± std for sets of seeds."""
    rows = fx.compare_summary(runs, metric, group)
    if not rows:
        return html.P("No values yet.", className="text-body-secondary mb-0")
    percent = fx.is_percent(metric)

    def value(pair: tuple[float, float | None]) -> str:
        mean, deviation = pair
        scale, unit = (100, "%") if percent else (1, "")
        text = f"{scale * mean:.1f}{unit}" if percent else f"{mean:.4g}"
        return text if deviation is None else f"{text} ± {scale * deviation:.2g}"

    seeds = group == "seeds"
    best = "lowest" if ss.lower_is_better(metric) else "best"
    heads = ["set" if seeds else "run", "modality", "runs" if seeds else "last epoch", "last value", f"{best} value"]
    if not seeds:
        heads.append("at epoch")
    sized = any("elements" in row for row in rows)
    if sized:
        heads.append("elements per estimate")
    body = []
    for row in rows:
        cells = [row["label"], row["modality"] or "—", row["n"] if seeds else row["epoch"], value(row["final"]),
                 value(row["best"])]
        if not seeds:
            cells.append(row["best_epoch"])
        if sized:
            cells.append(", ".join(f"{count:,}" for count in row.get("elements", [])) or "—")
        body.append(html.Tr([html.Td(c, className="font-monospace small" if i >= 2 else "") for i, c in enumerate(cells)]))
    return html.Div(
        dbc.Table([html.Thead(html.Tr([html.Th(h) for h in heads])), html.Tbody(body)], size="sm", hover=True,
                  class_name="mb-0", id="compare-summary-table"),
        className="table-responsive",
    )


def run_options(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"label": f"{fx.run_label(r)} ({r['status']})", "value": r["id"]} for r in runs]


def render(ctx: Any, view: dict[str, Any], mode: str | None, moved: dict[str, Any] | None = None) -> dict[str, Any]:
    """Figure, diff table, metric choices and notes for a view: what both the page and its callback show.

    ``moved`` is the runs' progress when the caller has just read it (a poll), so it is not read twice.
    """
    runs, missing = load(ctx, view["runs"])
    records = [rec for run in runs for rec in run["records"]]
    options = fx.metric_options(records)
    if view["metric"] not in {o["value"] for o in options}:
        options.append({"label": fx.metric_label(view["metric"]), "value": view["metric"]})
    figure = fx.compare_figure(runs, view["metric"], view["smooth"], view["x"], view["color"], mode, view["group"])
    notes = [dbc.Alert(m, color="warning", class_name="py-1 small mb-2") for m in missing]
    if view.get("refused"):
        notes.insert(0, dbc.Alert(view["refused"], color="danger", class_name="py-2 mb-2", id="compare-refused"))
    return {
        "progress": moved or progress(ctx, [run["id"] for run in runs]),
        "figure": figure,
        "diff": diff_table(runs),
        "summary": summary_table(runs, view["metric"], view["group"]),
        "metric_options": options,
        "notes": notes,
        "run_options": run_options(runs),
    }


def poll(
    ctx: Any, view: dict[str, Any], mode: str | None, by_timer: bool, last: list[Any] | None
) -> dict[str, Any] | None:
    """What the page shows next; None when the timer fired and no run moved since ``last``."""
    if not by_timer:
        return render(ctx, view, mode)
    moved = progress(ctx, view["runs"])
    return None if moved["signature"] == last else render(ctx, view, mode, moved)


def layout(ctx: Any, search: str | None, mode: str | None = None) -> Any:
    view = parse_view(search)
    shown = render(ctx, view, mode)
    controls = dbc.Card(
        dbc.CardBody(
            [
                dbc.Label("Runs", html_for="compare-runs"),
                dcc.Dropdown(
                    id="compare-runs",
                    options=shown["run_options"],
                    value=view["runs"],
                    multi=True,
                    placeholder="Search runs by name…",
                    className="mb-3",
                ),
                dbc.Label("Metric", html_for="compare-metric"),
                dcc.Dropdown(
                    id="compare-metric",
                    options=shown["metric_options"],
                    value=view["metric"],
                    clearable=False,
                    className="mb-3",
                ),
                dbc.Label("Smoothing (EMA)", html_for="compare-smoothing"),
                dcc.Slider(
                    id="compare-smoothing",
                    min=0,
                    max=0.99,
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
                    "Per-modality metrics: one colour per run (or per set of seeds), one dash style per modality. "
                    "Runs whose configs differ only in their seed form one set. The address bar holds this view: "
                    "copy it to share.",
                    className="text-body-secondary",
                ),
            ]
        ),
        class_name="shadow-sm compare-controls",
    )
    graph = ui.graph("compare-graph", shown["figure"], "armscope-compare", style={"height": "480px"})
    return html.Div(
        [
            html.H2("Compare", className="page-title"),
            html.Div(shown["notes"], id="compare-notes"),
            dbc.Row(
                [
                    dbc.Col(controls, lg=3),
                    dbc.Col(dbc.Card(dbc.CardBody(graph, class_name="p-2"), class_name="shadow-sm"), lg=9),
                ],
                class_name="g-3 mb-3",
            ),
            ui.card("Last and best values (unsmoothed)", html.Div(shown["summary"], id="compare-summary")),
            ui.card("Config fields that differ", html.Div(shown["diff"], id="compare-diff")),
            html.Div(id="compare-url-sink", hidden=True),
            dcc.Store(id="compare-signature", data=shown["progress"]["signature"]),
            dcc.Interval(id="compare-interval", interval=ctx.poll_ms, disabled=not shown["progress"]["live"]),
        ]
    )


def register(app: Dash, ctx: Any) -> None:
    @app.callback(
        Output("compare-graph", "figure"),
        Output("compare-diff", "children"),
        Output("compare-summary", "children"),
        Output("compare-metric", "options"),
        Output("compare-notes", "children"),
        Output("compare-signature", "data"),
        Output("compare-interval", "disabled"),
        Input("compare-runs", "value"),
        Input("compare-metric", "value"),
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
        runs: list[RunId] | None, metric: Text | None, smooth: float | None, x: str | None, color: str | None,
        group: str | None, mode: str | None, _n: Any, last: Any,
    ) -> Any:
        view = make_view(runs or [], metric or "", smooth, x or "", color or "", group or "")
        shown = poll(ctx, view, mode, dash_ctx.triggered_id == "compare-interval", last)
        if shown is None:
            raise PreventUpdate
        live = shown["progress"]
        return (
            shown["figure"], shown["diff"], shown["summary"], shown["metric_options"], shown["notes"],
            live["signature"], not live["live"],
        )

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
        function(runs, metric, smooth, x, color, group) {
            const q = '?runs=' + (runs || []).join(',') + '&metric=' + encodeURIComponent(metric || 'shapley.*')
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
        Input("compare-metric", "value"),
        Input("compare-smoothing", "value"),
        Input("compare-x", "value"),
        Input("compare-color", "value"),
        Input("compare-group", "value"),
        prevent_initial_call=True,
    )
