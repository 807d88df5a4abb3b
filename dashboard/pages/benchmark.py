"""Benchmark `/benchmark?dataset=synthetic-shift&encoder=mlp&sort=-val_acc`: every method on one data set.

A row per set of succeeded runs that differ only in their seed (``service.benchmark``), as mean ±
std over the seeds: fused accuracy, each modality's masked accuracy and Shapley share, both
imbalances and the cost. Two charts set the fused accuracy against the imbalance and against the
time an epoch takes, and the methods with no run on the data set yet can be launched from the page
as a seed sweep with their defaults. The URL holds the view (data set, encoder, project, sort), so a
link reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import parse_qs

import dash_bootstrap_components as dbc
from dash import ALL, MATCH, Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate

from armscope.config import RunConfig
from dashboard import actions
from dashboard import components as ui
from dashboard import figures as fx
from dashboard.context import Context
from dashboard.inputs import BadInput, Text, checked
from dashboard.pages.launch import parse_seeds
from dashboard.pages.runs import compare_href
from service.benchmark import benchmark
from service.catalog import catalog
from service.errors import InvalidInput
from service.runs import projects
from service.sweeps import SweepSpec

SORT_BY = {"type": "benchmark-sort-by", "column": ALL}
DEFAULT_SORT = "-val_acc"
DEFAULT_SEEDS = "0-1"


@dataclass(frozen=True)
class Column:
    """A column of the table: its header, the row figure it shows (and sorts by) and how it is written."""

    header: str
    key: str
    kind: str  # text | runs | percent | number | seconds | count


def columns(modalities: Sequence[str]) -> list[Column]:
    """The table's columns for a data set whose runs log these modalities."""
    per_modality = [
        column
        for m in modalities
        for column in (Column(f"{m} acc.", f"masked.{m}", "percent"), Column(f"{m} share", f"share.{m}", "percent"))
    ]
    return [
        Column("Set", "label", "text"),
        Column("Runs", "runs", "runs"),
        Column("Fused acc.", "val_acc", "percent"),
        *per_modality,
        Column("Imbalance", "imbalance", "number"),
        Column("BB imbalance", "bb_imbalance", "number"),
        Column("Epoch time", "epoch_seconds", "seconds"),
        Column("Parameters", "parameters", "count"),
        Column("FLOPs/sample", "flops_per_sample", "count"),
    ]


def best_first(key: str) -> bool:
    """Whether a column's first click sorts largest first: the accuracies and the run count (more is better);
    the imbalances, shares and costs sort smallest first."""
    return key in ("runs", "val_acc") or key.startswith("masked.")


def parse_view(search: str | None) -> dict[str, Any]:
    """The data set, encoder and project (None: any) and sort a URL asks for; the engine's default data set when
    it names none."""
    query = parse_qs((search or "").lstrip("?"))
    first = lambda key: (query.get(key) or [""])[0]  # noqa: E731
    return {
        "dataset": first("dataset") or RunConfig.model_fields["dataset"].default,
        "encoder": first("encoder") or None,
        "project": first("project") or None,
        "sort": first("sort") or DEFAULT_SORT,
    }


# -- the table ---------------------------------------------------------------------------


def figure_of(row: dict[str, Any], key: str) -> dict[str, Any]:
    """The {"mean", "std", "n"} a column shows for a row (``masked.<m>`` and ``share.<m>`` by modality)."""
    family, dot, modality = key.partition(".")
    return row[family][modality] if dot else row[key]


def sort_value(row: dict[str, Any], key: str) -> Any:
    """What a row is ordered by in a column: its label, its run count, else its mean (None: no value)."""
    if key == "label":
        return row["label"].casefold()
    if key == "runs":
        return len(row["runs"])
    return figure_of(row, key)["mean"]


def shown_sort(sort: str, table_columns: Sequence[Column]) -> str:
    """``sort`` when it names a column of this table, else the default (best fused accuracy first)."""
    return sort if sort.lstrip("-") in {c.key for c in table_columns} else DEFAULT_SORT


def sort_rows(rows: Sequence[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """The rows in ``sort``'s order (``-`` for descending); rows without a value come last either way."""
    key = sort.lstrip("-")
    valued = [row for row in rows if sort_value(row, key) is not None]
    valued.sort(key=lambda row: sort_value(row, key), reverse=sort.startswith("-"))
    return valued + [row for row in rows if sort_value(row, key) is None]


def si(value: float) -> str:
    """A count in three significant digits with an SI prefix: 1.23k, 45.6M."""
    for prefix in ("", "k", "M", "G", "T"):
        if abs(value) < 999.5:
            return f"{value:.3g}{prefix}"
        value /= 1000
    return f"{value:.3g}P"


WRITERS = {
    "percent": (ui.percent, lambda s: f"{100 * s:.1f}"),
    "number": (lambda v: f"{v:.3g}", lambda s: f"{s:.2g}"),
    "seconds": (ui.duration, ui.duration),
    "count": (si, si),
}


def figure_text(figure: dict[str, Any], kind: str) -> str:
    """``mean ± std`` as the column writes it; the mean alone below two runs, a dash when no run logged it."""
    if figure["mean"] is None:
        return "—"
    mean, spread = WRITERS[kind]
    return mean(figure["mean"]) + (f" ± {spread(figure['std'])}" if figure["std"] is not None else "")


def cell(row: dict[str, Any], column: Column) -> html.Td:
    if column.kind == "text":
        return html.Td(dcc.Link(row["label"], href=compare_href(row["runs"], over_seeds=True), className="run-link"))
    if column.kind == "runs":
        seeds = ", ".join(str(s) for s in row["seeds"])
        seeds_note = html.Div(f"seeds {seeds}", className="small text-body-secondary")
        return html.Td([html.Span(f"n={len(row['runs'])}"), seeds_note], className="text-nowrap")
    text = figure_text(figure_of(row, column.key), column.kind)
    return html.Td(text, className="text-end font-monospace text-nowrap")


def table_children(rows: Sequence[dict[str, Any]], table_columns: Sequence[Column], sort: str) -> list[Any]:
    head = html.Thead(
        html.Tr([ui.sort_header(c.header, {**SORT_BY, "column": c.key}, c.key, sort) for c in table_columns])
    )
    body = html.Tbody(
        [
            html.Tr([cell(row, c) for c in table_columns], className="benchmark-row", **{"data-method": row["method"]})
            for row in sort_rows(rows, sort)
        ]
    )
    return [head, body]


# -- launching the methods without runs --------------------------------------------------------


def launcher(method: str, summary: str) -> dbc.ListGroupItem:
    """A method with no run yet: its seeds, a button that launches them, and where the answer shows."""
    seeds = dbc.InputGroup(
        [
            dbc.InputGroupText("Seeds"),
            dbc.Input(id={"type": "benchmark-seeds", "method": method}, value=DEFAULT_SEEDS),
            dbc.Button("Launch", id={"type": "benchmark-launch", "method": method}, color="primary", n_clicks=0),
        ],
        size="sm",
    )
    return dbc.ListGroupItem(
        dbc.Row(
            [
                dbc.Col(
                    [html.Div(method, className="fw-semibold"), html.Small(summary, className="text-body-secondary")],
                    md=5,
                ),
                dbc.Col(seeds, md=3),
                dbc.Col(html.Div(id={"type": "benchmark-launched", "method": method}), md=4),
            ],
            class_name="g-2 align-items-center",
        ),
        class_name="benchmark-launcher",
    )


def where(dataset: str, encoder: str | None, project: str | None = None) -> str:
    """'on <data set>', 'with the <encoder> encoder' and 'in project <p>' when the view names them."""
    return f"on {dataset}" + (f" with the {encoder} encoder" if encoder else "") + (
        f" in project {project}" if project else "")


def launchers(methods: Sequence[str], dataset: str, encoder: str | None, project: str | None = None) -> Any:
    if not methods:
        everything = f"Every method has finished runs {where(dataset, encoder, project)}."
        return html.P(everything, className="text-body-secondary mb-0")
    entries = catalog()["methods"]
    note = html.P(
        f"Launch a seed sweep of a method {where(dataset, encoder, project)}, every other setting at its default.",
        className="text-body-secondary small",
    )
    return [note, dbc.ListGroup([launcher(m, entries[m]["summary"]) for m in methods], flush=True)]


def sweep_spec(
    method: str, dataset: str, encoder: str | None, seeds: list[int], project: str | None = None
) -> SweepSpec:
    """A seed sweep of ``method`` on ``dataset`` (with ``encoder`` as the default encoder, in ``project``, when
    given), else defaults."""
    config: dict[str, Any] = {"dataset": dataset, "method": method}
    if encoder:
        config["model_options"] = {"encoder": {"name": encoder}}
    if project:
        config["project"] = project
    return SweepSpec(config=config, methods=[method], seeds=seeds, name=f"benchmark: {method} on {dataset}")


def launch(
    ctx: Context, method: str, dataset: str | None, encoder: str | None, seeds_text: str | None,
    project: str | None = None,
) -> tuple[Any, bool]:
    """Launch a method's seeds on the page's data set; what to show beside its button, and whether the seeds are bad."""
    if not dataset:
        return html.Small("Pick a data set first.", className="text-danger"), False
    seeds, problem = parse_seeds(seeds_text)
    if problem:
        return html.Small(problem, className="text-danger"), True
    try:
        sweep = actions.launch_sweep(ctx, sweep_spec(method, dataset, encoder, seeds, project))
    except actions.ActionError as exc:
        return html.Small(str(exc), className="text-danger"), False
    count = len(sweep["runs"])
    link = dcc.Link(f"sweep {sweep['id']}", href=f"/sweeps/{sweep['id']}", className="benchmark-sweep-link")
    return html.Small(["Launched ", link, f": {count} run{'s' if count != 1 else ''} queued."]), False


# -- the page ------------------------------------------------------------------------------


def render(ctx: Context, view: dict[str, Any], mode: str | None) -> dict[str, Any]:
    """Everything the page shows for a view: what both the layout and its callback draw."""
    try:
        table = benchmark(ctx.store, view["dataset"], view["encoder"], view.get("project"))
    except InvalidInput as exc:
        return refused(actions.describe(exc))
    table_columns = columns(table["modalities"])
    sort = shown_sort(view["sort"], table_columns)
    rows = table["rows"]
    empty = (
        None
        if rows
        else ui.empty_state(
            f"No finished runs {where(table['dataset'], table['encoder'], table['project'])} yet",
            "A row appears here for each method once its runs succeed: launch some below.",
            icon="▦",
        )
    )
    return {
        "notes": None,
        "empty": empty,
        "table": table_children(rows, table_columns, sort) if rows else [],
        "table_hidden": not rows,
        "imbalance": fx.benchmark_figure(rows, "imbalance", "imbalance", mode),
        "cost": fx.benchmark_figure(rows, "epoch_seconds", "seconds per epoch", mode),
        "charts_hidden": not rows,
        "launchers": launchers(table["without_runs"], table["dataset"], table["encoder"], table["project"]),
        "sort": sort,
    }


def refused(message: str) -> dict[str, Any]:
    """The page for a data set or encoder the catalog does not have: why, and nothing else."""
    note = dbc.Alert(message, color="danger", class_name="py-2", id="benchmark-refused")
    return {
        "notes": note,
        "empty": None,
        "table": [],
        "table_hidden": True,
        "imbalance": fx.empty_figure(message).to_dict(),
        "cost": fx.empty_figure(message).to_dict(),
        "charts_hidden": True,
        "launchers": html.P("Choose a data set and an encoder the catalog has to launch methods.",
                            className="text-body-secondary mb-0"),
        "sort": DEFAULT_SORT,
    }


def choice(label: str, ident: str, names: Sequence[str], value: str | None, **kwargs: Any) -> dbc.Col:
    """A labelled dropdown of the catalog's ``names``; a value from the URL that is not one of them shows as none."""
    return dbc.Col(
        [
            dbc.Label(label, html_for=ident),
            dcc.Dropdown(
                id=ident,
                options=[{"label": n, "value": n} for n in names],
                value=value if value in names else None,
                **kwargs,
            ),
        ],
        md=3,
    )


def project_choice(ctx: Context, value: str | None) -> dbc.Col:
    """The project filter: every project in use, and the URL's even when no run carries it yet."""
    names = projects(ctx.store)
    if value and value not in names:
        names = sorted([*names, value])
    return choice("Project", "benchmark-project", names, value, placeholder="any")


def chart(ident: str, figure: Any) -> dbc.Col:
    """A chart in a card, half the page wide; its PNG download is named after it."""
    graph = ui.graph(ident, figure, f"armscope-{ident.removesuffix('-graph')}", style={"height": "400px"})
    body = dbc.CardBody(graph, class_name="p-2")
    return dbc.Col(dbc.Card(body, class_name="shadow-sm"), lg=6)


def layout(ctx: Context, search: str | None, mode: str | None = None) -> Any:
    view = parse_view(search)
    shown = render(ctx, view, mode)
    cat = catalog()
    controls = dbc.Row(
        [
            choice("Data set", "benchmark-dataset", list(cat["datasets"]), view["dataset"], clearable=False),
            choice("Encoder", "benchmark-encoder", list(cat["encoders"]), view["encoder"], placeholder="any"),
            project_choice(ctx, view["project"]),
            dbc.Col(
                html.Small(
                    "A row per set of succeeded runs that differ only in their seed: mean ± std over the seeds "
                    "(the mean alone for one run). Click a column header to sort by it, a set to compare its runs. "
                    "The address bar holds this view: copy it to share.",
                    className="text-body-secondary",
                ),
                md=3,
                class_name="d-flex align-items-end",
            ),
        ],
        class_name="g-3 mb-3",
    )
    return html.Div(
        [
            html.H2("Benchmark", className="page-title"),
            controls,
            html.Div(shown["notes"], id="benchmark-notes"),
            html.Div(shown["empty"], id="benchmark-empty"),
            html.Div(
                dbc.Table(shown["table"], id="benchmark-table", hover=True, size="sm", class_name="align-middle mb-0"),
                className="table-responsive mb-3",
                id="benchmark-table-wrap",
                hidden=shown["table_hidden"],
            ),
            html.Div(
                dbc.Row(
                    [
                        chart("benchmark-imbalance-graph", shown["imbalance"]),
                        chart("benchmark-cost-graph", shown["cost"]),
                    ],
                    class_name="g-3 mb-3",
                ),
                id="benchmark-charts",
                hidden=shown["charts_hidden"],
            ),
            ui.card("Methods without runs", html.Div(shown["launchers"], id="benchmark-launchers")),
            html.Div(id="benchmark-url-sink", hidden=True),
            dcc.Store(id="benchmark-sort", data=shown["sort"]),
            dcc.Store(id="benchmark-shown-sort", data=shown["sort"]),
        ]
    )


def register(app: Dash, ctx: Context) -> None:
    @app.callback(
        Output("benchmark-notes", "children"),
        Output("benchmark-empty", "children"),
        Output("benchmark-table", "children"),
        Output("benchmark-table-wrap", "hidden"),
        Output("benchmark-imbalance-graph", "figure"),
        Output("benchmark-cost-graph", "figure"),
        Output("benchmark-charts", "hidden"),
        Output("benchmark-launchers", "children"),
        Output("benchmark-shown-sort", "data"),
        Input("benchmark-dataset", "value"),
        Input("benchmark-encoder", "value"),
        Input("benchmark-project", "value"),
        Input("benchmark-sort", "data"),
        Input("theme", "data"),
        prevent_initial_call=True,
    )
    @checked
    def redraw(
        dataset: Text | None, encoder: Text | None, project: Text | None, sort: Text | None, mode: str | None
    ) -> Any:
        if not dataset:
            raise PreventUpdate
        view = {"dataset": dataset, "encoder": encoder or None, "project": project or None, "sort": sort or DEFAULT_SORT}
        shown = render(ctx, view, mode)
        # The launchers stay as they are (with what each launch answered) unless the data set, encoder or project
        # changed.
        new_view = dash_ctx.triggered_id in ("benchmark-dataset", "benchmark-encoder", "benchmark-project")
        return (
            shown["notes"], shown["empty"], shown["table"], shown["table_hidden"], shown["imbalance"], shown["cost"],
            shown["charts_hidden"], shown["launchers"] if new_view else no_update, shown["sort"],
        )

    @app.callback(
        Output("benchmark-sort", "data"),
        Input(SORT_BY, "n_clicks"),
        State("benchmark-shown-sort", "data"),
        prevent_initial_call=True,
    )
    @checked
    def sort_by_header(_clicks: Any, sort: Text | None) -> Any:
        # A re-drawn header (every redraw of the table) arrives with n_clicks 0: not a click.
        trigger = dash_ctx.triggered_id
        if not isinstance(trigger, dict) or not dash_ctx.triggered[0].get("value"):
            raise PreventUpdate
        column = str(trigger["column"])
        return ui.next_sort(sort or DEFAULT_SORT, column, best_first(column))

    @app.callback(
        Output({"type": "benchmark-launched", "method": MATCH}, "children"),
        Output({"type": "benchmark-seeds", "method": MATCH}, "invalid"),
        Input({"type": "benchmark-launch", "method": MATCH}, "n_clicks"),
        State({"type": "benchmark-seeds", "method": MATCH}, "value"),
        State("benchmark-dataset", "value"),
        State("benchmark-encoder", "value"),
        State("benchmark-project", "value"),
        prevent_initial_call=True,
    )
    @checked
    def launch_method(
        n_clicks: int | None, seeds: Text | None, dataset: Text | None, encoder: Text | None, project: Text | None
    ) -> Any:
        if not n_clicks:
            raise PreventUpdate
        method = dash_ctx.inputs_list[0]["id"]["method"]  # the button's; the guard has checked it is a plain value
        if method not in catalog()["methods"]:
            raise BadInput(f"method: unknown method {str(method)[:40]!r}")
        return launch(ctx, method, dataset, encoder or None, seeds, project or None)

    # Keep the address bar in step with the view without a page load (replaceState: no history spam).
    app.clientside_callback(
        """
        function(dataset, encoder, project, sort) {
            const parts = [['dataset', dataset], ['encoder', encoder], ['project', project], ['sort', sort]]
                .filter(([, value]) => value)
                .map(([key, value]) => key + '=' + encodeURIComponent(value));
            const q = parts.length ? '?' + parts.join('&') : '';
            if (window.location.pathname === '/benchmark' && window.location.search !== q) {
                window.history.replaceState(window.history.state, '', '/benchmark' + q);
            }
            return '';
        }
        """,
        Output("benchmark-url-sink", "children"),
        Input("benchmark-dataset", "value"),
        Input("benchmark-encoder", "value"),
        Input("benchmark-project", "value"),
        Input("benchmark-shown-sort", "data"),
        prevent_initial_call=True,
    )
