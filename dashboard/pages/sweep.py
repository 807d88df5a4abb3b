"""A sweep `/sweeps/<id>?metric=val_acc`: what was swept, a parallel-coordinates plot of the swept fields against
a final metric, the best run by it, and every run with its swept values and final value.

The metric is in the URL. While any of the sweep's runs is queued or running the page polls the runs' status
and epoch (one query) and redraws only when one moved.
"""

from __future__ import annotations

import math
from typing import Any, Sequence
from urllib.parse import parse_qs

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate

from dashboard import components as ui
from dashboard import figures as fx
from dashboard import theme as th
from dashboard.context import Context
from dashboard.inputs import RunId, Text, checked
from service import search as sr
from service import sweeps
from service.compare import MAX_COMPARED
from service.db.store import TERMINAL, SweepNotFound
from service.errors import InvalidInput

MAX_TICKS = 12  # labelled values on a parallel-coordinates axis


def parse_metric(search: str | None) -> str:
    """The metric a URL asks for (``?metric=val_loss``), else the headline metric."""
    return (parse_qs((search or "").lstrip("?")).get("metric") or [sweeps.DEFAULT_METRIC])[0]


def load(ctx: Context, sweep_id: int, metric: str) -> tuple[dict[str, Any], str | None]:
    """The sweep as the service reads it, and a note when the metric asked for is unknown (the headline
    metric is shown instead). SweepNotFound for an unknown sweep."""
    try:
        return sweeps.get(ctx.store, sweep_id, metric), None
    except InvalidInput as exc:
        note = f"{exc.problems[0]['msg']}. Showing {fx.metric_label(sweeps.DEFAULT_METRIC)} instead."
        return sweeps.get(ctx.store, sweep_id), note


def progress(ctx: Context, sweep_id: int) -> dict[str, Any]:
    """Each run's status and epoch: all a poll needs to know whether anything moved."""
    runs, _ = ctx.store.list_runs(sweep=sweep_id, limit=sweeps.MAX_RUNS_LIMIT)
    return {
        "signature": sorted([r["id"], r["status"], r["progress"]["epoch"]] for r in runs),
        "live": any(r["status"] not in TERMINAL for r in runs),
    }


# -- figures and tables -------------------------------------------------------------------------


def log_fields(view: dict[str, Any]) -> set[str]:
    """The searched fields given as log ranges: their axes are drawn on a log scale."""
    search = view["spec"].get("search") or {}
    return {path for path, axis in search.items() if isinstance(axis, dict) and axis.get("log_range")}


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def dimension(name: str, values: Sequence[Any], log: bool = False) -> dict[str, Any]:
    """One parallel-coordinates axis: numbers as they are (log10 of them, ticked with the values, on a log
    scale), anything else (method names, booleans, a field a method lacks) as labelled categories."""
    if _numeric(values) and not (log and min(values) <= 0):
        if not log:
            return {"label": fx.plain(name), "values": list(values)}
        ticks = sorted(set(values))
        ticks = ticks[:: max(1, math.ceil(len(ticks) / MAX_TICKS))]
        return {"label": fx.plain(f"{name} (log)"), "values": [math.log10(v) for v in values],
                "tickvals": [math.log10(v) for v in ticks], "ticktext": [sr.label(v) for v in ticks]}
    labels = [sr.label(v) if v is not None else "—" for v in values]
    categories = sorted(set(labels))
    code = {c: i for i, c in enumerate(categories)}
    return {"label": fx.plain(name), "values": [code[c] for c in labels], "tickvals": list(range(len(categories))),
            "ticktext": [fx.plain(c) for c in categories], "range": [-0.5, len(categories) - 0.5]}


def parcoords_figure(view: dict[str, Any], mode: str | None = None) -> go.Figure:
    """The swept fields and the final metric of every run that has one, a line per run, coloured by the metric
    (the best end of the scale bright, whichever way the metric is better)."""
    metric = fx.metric_label(view["metric"])
    rows = [r for r in view["runs"] if r["final"] is not None]
    if not rows:
        return fx.empty_figure(f"No run of this sweep has a final {metric} yet.", mode, height=420)
    logs = log_fields(view)
    dims = [dimension(field, [r["swept"].get(field) for r in rows], field in logs) for field in view["swept"]]
    finals = [r["final"] for r in rows]
    dims.append({"label": fx.plain(metric), "values": finals})
    line = {"color": finals, "colorscale": "Viridis", "reversescale": view["lower_is_better"], "showscale": True,
            "colorbar": {"title": {"text": fx.plain(metric), "side": "right"}, "thickness": 12}}
    fig = go.Figure(go.Parcoords(line=line, dimensions=dims, labelangle=0, labelside="top"))
    title = f"{len(rows)} of {len(view['runs'])} runs: swept fields against the final {metric}"
    fig.update_layout(template=th.template(mode), title=fx.plain(title), height=420,
                      margin={"l": 70, "r": 40, "t": 90, "b": 30})
    return fig


def final_text(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    return ui.percent(value) if fx.is_percent(metric) else f"{value:.4g}"


def runs_table(view: dict[str, Any]) -> Any:
    """Every run, best first by the final metric (runs without one last), the best marked."""
    metric = view["metric"]
    direction = 1 if view["lower_is_better"] else -1
    ordered = sorted(view["runs"], key=lambda r: (r["final"] is None, direction * (r["final"] or 0), r["id"]))
    head = ["run", "status", *view["swept"], fx.metric_label(metric)]
    body = [
        html.Tr(
            [
                html.Td(dcc.Link(fx.run_label(run), href=f"/runs/{run['id']}", className="run-link"),
                        className="text-nowrap"),
                html.Td(html.Div([ui.status_badge(run["status"], run["cancel_requested"]), ui.progress_cell(run)],
                                 className="d-flex gap-2 align-items-center")),
                *[html.Td(_cell(run["swept"].get(f)), className="font-monospace small") for f in view["swept"]],
                html.Td(final_text(run["final"], metric), className="font-monospace small"),
            ],
            className="table-success" if run["id"] == view["best"] else None,
            **{"data-run-id": str(run["id"])},
        )
        for run in ordered
    ]
    return html.Div(
        dbc.Table([html.Thead(html.Tr([html.Th(h, className="text-nowrap") for h in head])), html.Tbody(body)],
                  size="sm", hover=True, class_name="mb-0 align-middle", id="sweep-runs-table"),
        className="table-responsive",
    )


def _cell(value: Any) -> str:
    return "—" if value is None else sr.label(value)


def best_card(view: dict[str, Any]) -> Any:
    """The best run by the metric, linking to its page, with its swept values."""
    metric = fx.metric_label(view["metric"])
    best = next((r for r in view["runs"] if r["id"] == view["best"]), None)
    if best is None:
        return html.P(f"No run has a final {metric} yet.", className="text-body-secondary mb-0", id="sweep-best")
    values = [html.Li([html.Span(f"{field}: ", className="text-body-secondary"), _cell(best["swept"].get(field))])
              for field in view["swept"]]
    return html.Div(
        [
            html.Div(dcc.Link(fx.run_label(best), href=f"/runs/{best['id']}", className="fs-5 fw-semibold")),
            html.Div([f"{'lowest' if view['lower_is_better'] else 'highest'} final {metric}: ",
                      html.Strong(final_text(best["final"], view["metric"]))], className="mb-2"),
            html.Ul(values, className="list-unstyled small mb-0 font-monospace"),
        ],
        id="sweep-best",
    )


def spec_summary(view: dict[str, Any]) -> Any:
    """What was swept: the methods, seeds, each searched field's values and the strategy; the runs by status."""
    spec = view["spec"]
    items = [("methods", ", ".join(spec.get("methods") or []) + (" + compared methods" if spec.get("compare") else "")),
             ("seeds", ", ".join(map(str, spec.get("seeds") or [])))]
    for path, axis in (spec.get("search") or {}).items():
        items.append((path, sr.Axis.model_validate(axis).describe()))
    if spec.get("search"):
        strategy = spec.get("strategy", "grid")
        if strategy == "random":
            strategy += f", {spec.get('samples')} draws (search seed {spec.get('search_seed', 0)})"
        items.append(("strategy", strategy))
    counts = ", ".join(f"{n} {status}" for status, n in sorted(view["counts"].items()))
    items.append(("runs", f"{view['run_count']} ({counts})" if counts else "0"))
    if view.get("project"):
        items.append(("project", view["project"]))
    return dbc.Table(
        html.Tbody([html.Tr([html.Th(k, className="fw-normal text-body-secondary text-nowrap"),
                             html.Td(v, className="font-monospace small")]) for k, v in items]),
        size="sm", borderless=True, class_name="mb-0", id="sweep-spec",
    )


def links(view: dict[str, Any]) -> Any:
    ids = [r["id"] for r in view["runs"]]
    parts = [dbc.Button("Its runs in the table", href=f"/?sweep={view['id']}", color="secondary", outline=True,
                        size="sm")]
    if 0 < len(ids) <= MAX_COMPARED:
        href = f"/compare?runs={','.join(map(str, ids))}&metric={view['metric']}&group=seeds&color=method"
        parts.append(dbc.Button("Compare their curves", href=href, color="secondary", outline=True, size="sm"))
    return html.Div(parts, className="d-flex gap-2 flex-wrap", id="sweep-links")


def metric_options(view: dict[str, Any]) -> list[dict[str, str]]:
    keys = view["metrics"] if view["metric"] in view["metrics"] else [view["metric"], *view["metrics"]]
    return [{"label": f"{fx.metric_label(k)} ({k})" if fx.metric_label(k) != k else k, "value": k} for k in keys]


def notes(note: str | None) -> list[Any]:
    return [dbc.Alert(note, color="warning", class_name="py-2 small mb-2", id="sweep-metric-note")] if note else []


# -- page ------------------------------------------------------------------------------------------


def layout(ctx: Context, sweep_id: int, search: str | None = None, mode: str | None = None) -> Any:
    try:
        view, note = load(ctx, sweep_id, parse_metric(search))
    except SweepNotFound:
        return ui.empty_state("Sweep not found", f"There is no sweep {sweep_id}.",
                              dbc.Button("Go to the runs", href="/", color="primary"), icon="?")
    live = progress(ctx, sweep_id)
    title = view["name"] or "Sweep"
    chooser = html.Div(
        [
            dbc.Label("Final metric", html_for="sweep-metric", class_name="mb-1 small"),
            dcc.Dropdown(id="sweep-metric", options=metric_options(view), value=view["metric"], clearable=False),
        ],
        className="sweep-metric-choice",
    )
    return html.Div(
        [
            html.H2([title, html.Small(f" #{view['id']}", className="text-body-secondary")], className="page-title"),
            html.Div(notes(note), id="sweep-notes"),
            dbc.Row(
                [
                    dbc.Col(ui.card("What was swept", [html.Div(spec_summary(view), id="sweep-spec-box"), links(view)]),
                            lg=4),
                    dbc.Col(
                        [
                            ui.card("Best run", html.Div(best_card(view), id="sweep-best-box")),
                            dbc.Card(dbc.CardBody([chooser, ui.graph("sweep-parcoords", parcoords_figure(view, mode),
                                                                     f"armscope-sweep-{sweep_id}",
                                                                     style={"height": "440px"})], class_name="p-2"),
                                     class_name="shadow-sm mb-3"),
                        ],
                        lg=8,
                    ),
                ],
                class_name="g-3",
            ),
            ui.card("Runs", html.Div(runs_table(view), id="sweep-runs")),
            dcc.Store(id="sweep-id", data=sweep_id),
            dcc.Store(id="sweep-signature", data=live["signature"]),
            dcc.Interval(id="sweep-interval", interval=ctx.poll_ms, disabled=not live["live"]),
            html.Div(id="sweep-url-sink", hidden=True),
        ],
        id="sweep-page",
    )


def register(app: Dash, ctx: Context) -> None:
    @app.callback(
        Output("sweep-parcoords", "figure"),
        Output("sweep-runs", "children"),
        Output("sweep-best-box", "children"),
        Output("sweep-spec-box", "children"),
        Output("sweep-notes", "children"),
        Output("sweep-signature", "data"),
        Output("sweep-interval", "disabled"),
        Input("sweep-metric", "value"),
        Input("theme", "data"),
        Input("sweep-interval", "n_intervals"),
        State("sweep-id", "data"),
        State("sweep-signature", "data"),
        prevent_initial_call=True,
    )
    @checked
    def redraw(metric: Text | None, mode: str | None, _n: Any, sweep_id: RunId, last: Any) -> Any:
        live = progress(ctx, sweep_id)
        if dash_ctx.triggered_id == "sweep-interval" and live["signature"] == last:
            raise PreventUpdate
        try:
            view, note = load(ctx, sweep_id, metric or sweeps.DEFAULT_METRIC)
        except SweepNotFound:
            raise PreventUpdate from None
        return (parcoords_figure(view, mode), runs_table(view), best_card(view), spec_summary(view), notes(note),
                live["signature"], not live["live"])

    # Keep the address bar in step with the chosen metric without a page load (replaceState: no history spam).
    app.clientside_callback(
        """
        function(metric, sweepId) {
            const path = '/sweeps/' + sweepId;
            const q = '?metric=' + encodeURIComponent(metric || 'val_acc');
            if (window.location.pathname === path && window.location.search !== q) {
                window.history.replaceState(window.history.state, '', path + q);
            }
            return '';
        }
        """,
        Output("sweep-url-sink", "children"),
        Input("sweep-metric", "value"),
        State("sweep-id", "data"),
        prevent_initial_call=True,
    )
