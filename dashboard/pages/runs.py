"""Runs `/`: one page of runs at a time (keyset paging), filters, chosen columns, selection, compare,
cancel/retry/delete, saved views.

The URL holds the view (``?project=p&status=running&columns=lr,last:val_acc&sort=-best_val_acc``...), kept in
step as the controls change, so a link or a saved view reopens it; what a URL gets wrong is named on the page.
A column is a config field (``lr``, ``method_options.alpha``) or a metric's last or best value
(``last:val_acc``, ``best:shapley.audio``), read for the page's runs only, in two queries.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Annotated, Any, Sequence
from urllib.parse import parse_qs, quote

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate
from pydantic import Field

from dashboard import actions, saved_views
from dashboard import components as ui
from dashboard.context import Context
from dashboard.inputs import (
    MAX_IDS,
    MAX_TEXT,
    RUN_IDS,
    BadInput,
    Paging,
    Pending,
    RunId,
    Selection,
    Text,
    check,
    checked,
    id_from_text,
)
from service import views
from service.catalog import catalog, metric_of
from service.compare import MAX_COMPARED
from service.db.store import SORTABLE
from service.errors import InvalidInput
from service.runs import STATUSES, list_runs, projects

CHECK = {"type": "run-check", "index": ALL}
Statuses = Annotated[list[str], Field(max_length=len(STATUSES))]
SORT_BY = {"type": "runs-sort-by", "field": ALL}
DEFAULT_SORT = "-created_at"
# Column header and the store field it sorts by (None: not sortable).
HEADERS = [
    ("Run", "name"),
    ("Status", "status"),
    ("Progress", None),
    ("Method", "method"),
    ("Data set", "dataset"),
    ("Seed", "seed"),
    ("Best acc.", "best_val_acc"),
    ("Dominant", None),
    ("Tags", None),
    ("Created", "created_at"),
]
# Fields whose first click sorts largest (newest, best) first.
DESCENDING_FIRST = {"created_at", "best_val_acc"}
Columns = Annotated[list[Text], Field(max_length=views.MAX_COLUMNS)]
# The URL's keys, in the order the address bar lists them (the same order the page's script writes).
URL_KEYS = ("sweep", "project", "status", "method", "dataset", "tag", "text", "sort", "columns")


def sweep_from(search: str | None) -> int | None:
    return id_from_text((parse_qs((search or "").lstrip("?")).get("sweep") or [""])[0])


def parse_state(search: str | None) -> dict[str, Any]:
    """The view a URL asks for (filters, sort, columns), and ``problems``: what it holds that the page
    cannot show (an unknown status, sort or column), each named with the choices."""
    query = parse_qs((search or "").lstrip("?"))
    first = lambda key: (query.get(key) or [""])[0].strip()  # noqa: E731
    problems = []
    statuses = [part.strip() for part in first("status").split(",") if part.strip()]
    unknown = [part for part in statuses if part not in STATUSES]
    if unknown:
        problems.append(f"status={', '.join(map(repr, unknown[:5]))[:200]} is not a status, so it is left out. "
                        f"Choose from: {', '.join(STATUSES)}.")
    sort = first("sort") or DEFAULT_SORT
    if sort.lstrip("-") not in SORTABLE:
        problems.append(f"sort={sort[:60]!r} is not a column to sort by: showing the newest first. "
                        f"Choose from: {', '.join(SORTABLE)} (a leading - sorts descending).")
        sort = DEFAULT_SORT
    columns, column_problems = views.parse_columns(first("columns")[:4000])
    return {
        "sweep": id_from_text(first("sweep")),
        **{key: first(key)[:MAX_TEXT] or None for key in ("project", "method", "dataset", "tag", "text")},
        "status": [part for part in statuses if part in STATUSES],
        "sort": sort,
        "columns": columns,
        "problems": problems + column_problems,
    }


def state_query(state: dict[str, Any]) -> str:
    """The query string of a view (what parse_state reads; what the page's script writes as it changes)."""
    parts = []
    for key in URL_KEYS:
        value = state.get(key)
        if key == "sort" and value == DEFAULT_SORT:
            continue
        if isinstance(value, list):
            value = ",".join(quote(str(v), safe="*!~'():") for v in value)
        elif value is not None:
            value = quote(str(value), safe="*!~'():")
        if value:
            parts.append(f"{key}={value}")
    return "?" + "&".join(parts) if parts else ""


def filters(
    status: Sequence[str] | None,
    method: str | None,
    dataset: str | None,
    tag: str | None,
    text: str | None,
    sweep: int | None,
    project: str | None = None,
) -> dict[str, Any]:
    return {
        "status": list(status or []) or None,
        "method": method or None,
        "dataset": dataset or None,
        "tag": (tag or "").strip() or None,
        "text": (text or "").strip() or None,
        "sweep": sweep,
        "project": project or None,
    }


def fetch(ctx: Context, flt: dict[str, Any], sort: str, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page from the store (LIMIT page_size, keyset cursor): never all runs.

    The filters, the sort and the cursor come back from the browser; the service's refusal of any
    (InvalidInput naming it) is the request's fault.
    """
    try:
        return list_runs(ctx.store, **flt, sort=sort or DEFAULT_SORT, cursor=cursor, limit=ctx.page_size)
    except InvalidInput as exc:
        raise BadInput(str(exc)) from None


def signature(items: Sequence[dict[str, Any]], next_cursor: str | None, now: datetime) -> str:
    """Changes when anything the table shows changes (the minute too, for the 'created' column)."""
    keys = ("id", "name", "status", "tags", "best_val_acc", "dominant", "error", "cancel_requested", "queue_position")
    rows = [[r.get(k) for k in keys] + [r["progress"]["step"], r["progress"]["epoch"]] for r in items]
    raw = json.dumps([rows, next_cursor, now.strftime("%Y%m%d%H%M")], default=str)
    return hashlib.sha1(raw.encode()).hexdigest()


def run_details(run: dict[str, Any]) -> list[Any]:
    """What sits under a run's name: its id, its sweep (a link to the sweep's page) and its project."""
    parts: list[Any] = [f"#{run['id']}"]
    if run.get("sweep_id"):
        parts += [" · ", dcc.Link(f"sweep {run['sweep_id']}", href=f"/sweeps/{run['sweep_id']}", className="sweep-link")]
    if run.get("project"):
        parts.append(f" · project {run['project']}")
    return parts


def progress(run: dict[str, Any]) -> Any:
    """The progress cell; a queued run says where it is in its queue (1 is next)."""
    position = run.get("queue_position")
    if run["status"] != "queued" or not position:
        return ui.progress_cell(run)
    p = run["progress"]
    waiting = "waiting for a worker" if p["epoch"] == 0 else f"re-queued at epoch {p['epoch']}/{p['epochs']}"
    return html.Small([html.Span(f"queued #{position}", className="fw-semibold queue-position"), f" · {waiting}"],
                      className="text-body-secondary", title=f"{position - 1} queued runs of its queue go before it")


def cell_text(column: str, value: Any) -> str:
    """A chosen column's cell: a fraction as a percentage, another number to 4 digits, a config value as JSON."""
    if value is None:
        return "—"
    kind, colon, key = column.rpartition(":")
    if not colon:
        return value if isinstance(value, str) else json.dumps(value)
    declared = metric_of(key)
    return f"{100 * value:.1f}%" if declared is not None and declared.unit == "fraction" else f"{value:.4g}"


def row(
    run: dict[str, Any], selected: bool, now: datetime, columns: Sequence[str] = (), values: dict[str, Any] | None = None
) -> html.Tr:
    tags = [dbc.Badge(t, color="light", text_color="dark", class_name="me-1 border tag-badge") for t in run["tags"]]
    chosen = [html.Td(cell_text(c, (values or {}).get(c)), className="font-monospace small text-nowrap chosen-col")
              for c in columns]
    return html.Tr(
        [
            html.Td(dbc.Checkbox(id={"type": "run-check", "index": run["id"]}, value=selected, class_name="m-0")),
            html.Td(
                [
                    dcc.Link(run["name"], href=f"/runs/{run['id']}", className="fw-semibold run-link"),
                    html.Div(run_details(run), className="small text-body-secondary"),
                ]
            ),
            html.Td(ui.status_badge(run["status"], run.get("cancel_requested", False))),
            html.Td(progress(run), className="progress-col"),
            html.Td(run["method"]),
            html.Td(run["dataset"]),
            html.Td(run["seed"], className="text-end"),
            html.Td(ui.percent(run.get("best_val_acc")), className="text-end font-monospace"),
            html.Td(run.get("dominant") or "—"),
            html.Td(tags),
            *chosen,
            html.Td(
                ui.ago(run.get("created_at"), now), title=str(run.get("created_at") or ""), className="text-nowrap"
            ),
        ],
        className=f"run-row status-{run['status']}",
        **{"data-run-id": str(run["id"])},
    )


def next_sort(current: str, field: str) -> str:
    """Clicking a column's header: sort by it, or flip its direction if it is the sort already."""
    return ui.next_sort(current, field, field in DESCENDING_FIRST)


def header_cell(label: str, field: str | None, sort: str) -> html.Th:
    if field is None:
        return html.Th(label)
    return ui.sort_header(label, {"type": "runs-sort-by", "field": field}, field, sort)


def table_children(
    items: Sequence[dict[str, Any]], selected: Sequence[int], now: datetime, sort: str = DEFAULT_SORT,
    columns: Sequence[str] = (), values: dict[int, dict[str, Any]] | None = None,
) -> list[Any]:
    """The table's head and body; ``columns`` (chosen by the user) go before the creation time."""
    chosen = set(selected or [])
    heads = [header_cell(label, field, sort) for label, field in HEADERS]
    heads[-1:-1] = [html.Th(views.column_label(c), title=c, className="chosen-col") for c in columns]
    every = bool(items) and all(r["id"] in chosen for r in items)
    head = html.Thead(
        html.Tr(
            [
                html.Th(
                    dbc.Checkbox(id="runs-check-all", value=every, class_name="m-0"),
                    style={"width": "2rem"},
                    title="Select every run on this page",
                )
            ]
            + heads
        )
    )
    values = values or {}
    return [head, html.Tbody([row(r, r["id"] in chosen, now, columns, values.get(r["id"])) for r in items])]


def view(
    ctx: Context,
    trigger: str | None,
    flt: dict[str, Any],
    sort: str,
    paging: dict[str, Any] | None,
    selected: Sequence[int],
    last_signature: str | None,
    now: datetime | None = None,
    *,
    columns: Sequence[str] = (),
) -> dict[str, Any] | None:
    """The table's next state; None when nothing changed since ``last_signature`` (the poll then sends nothing)."""
    now = now or datetime.now(timezone.utc)
    paging = dict(paging or {"cursors": [None], "index": 0, "next": None})
    if paging["index"] >= len(paging["cursors"]):
        raise BadInput("paging.index: past the pages seen")
    if trigger == "runs-next" and paging.get("next"):
        paging["cursors"] = paging["cursors"][: paging["index"] + 1] + [paging["next"]]
        paging["index"] += 1
    elif trigger == "runs-prev" and paging["index"] > 0:
        paging["index"] -= 1
    elif trigger not in ("runs-interval", "runs-refresh", "runs-columns", None):
        paging = {"cursors": [None], "index": 0, "next": None}  # a filter changed: back to the first page
    items, next_cursor = fetch(ctx, flt, sort, paging["cursors"][paging["index"]])
    if not items and paging["index"] > 0:  # the page emptied (deletes): show the first page
        paging = {"cursors": [None], "index": 0, "next": None}
        items, next_cursor = fetch(ctx, flt, sort, None)
    paging["next"] = next_cursor
    sig = signature(items, next_cursor, now) + str(paging["index"]) + sort + ",".join(columns)
    if trigger == "runs-interval" and sig == last_signature:
        return None
    filtered = any(v for v in flt.values())
    if items:
        empty = None
    elif filtered:
        empty = ui.empty_state("No runs match these filters", "Clear the search or pick other filters.", icon="⌕")
    else:
        empty = ui.empty_state(
            "No runs yet",
            ui.demo_explainer(),
            ui.demo_button(),
            dbc.Button("Open the launch form", href="/launch", color="secondary", outline=True),
        )
    first, last = paging["index"] * ctx.page_size + 1, paging["index"] * ctx.page_size + len(items)
    values, choices = views.read_columns(ctx.store, items, columns) if items else ({}, [])
    return {
        "table": table_children(items, selected, now, sort or DEFAULT_SORT, columns, values) if items else [],
        "column_options": column_options(choices, columns),
        "paging": paging,
        "signature": sig,
        "prev_disabled": paging["index"] == 0,
        "next_disabled": next_cursor is None,
        "label": f"Runs {first}–{last}" if items else "",
        "empty": empty,
        "table_hidden": not items,
    }


def column_options(choices: Sequence[str], columns: Sequence[str]) -> list[dict[str, str]]:
    """The columns dropdown's options: the chosen columns (kept, whether or not this page has them) and what
    the page's runs offer."""
    return [{"label": views.column_label(c), "value": c} for c in dict.fromkeys([*columns, *choices])]


def selection(visible: Sequence[int], checked: Sequence[bool], selected: Sequence[int]) -> list[int]:
    """Selected ids after the visible checkboxes changed (selections on other pages are kept)."""
    seen = set(visible)
    keep = [i for i in (selected or []) if i not in seen]
    return keep + [i for i, on in zip(visible, checked) if on]


def selection_label(chosen: Sequence[int]) -> str:
    if not chosen:
        return "Select runs to compare or act on them."
    shown = ", ".join(f"#{i}" for i in sorted(chosen)[:12]) + ("…" if len(chosen) > 12 else "")
    note = f" (compare takes at most {MAX_COMPARED})" if len(chosen) > MAX_COMPARED else ""
    return f"{len(chosen)} selected: {shown}{note}"


def compare_href(selected: Sequence[int], over_seeds: bool = False) -> str:
    """The compare view of these runs; a sweep's opens on each method's mean over its seeds."""
    view = "&group=seeds&color=method" if over_seeds else ""
    return "/compare?runs=" + ",".join(str(i) for i in sorted(selected)) + view


def toolbar(ctx: Context, asked: dict[str, Any]) -> dbc.Row:
    """The filters, set as the URL asks; a value the lists do not hold (a project no run has yet, a method
    whose plugin is not installed) is offered too, so it shows and filters rather than vanishing."""
    cat = catalog()

    def option(names: Sequence[str], asked_for: str | None = None) -> list[dict[str, str]]:
        return [{"label": n, "value": n} for n in dict.fromkeys([*names, *([asked_for] if asked_for else [])])]

    return dbc.Row(
        [
            dbc.Col(dbc.Input(id="runs-search", type="search", placeholder="Search names and notes", debounce=400,
                              value=asked["text"] or ""), md=4, lg=3),
            dbc.Col(dcc.Dropdown(id="runs-project", options=option(projects(ctx.store), asked["project"]),
                                 value=asked["project"], placeholder="Project"), md=4, lg=2),
            dbc.Col(dcc.Dropdown(id="runs-status", options=option(STATUSES), multi=True, placeholder="Status",
                                 value=asked["status"]), md=4, lg=2),
            dbc.Col(dcc.Dropdown(id="runs-method", options=option(cat["methods"], asked["method"]),
                                 value=asked["method"], placeholder="Method"), md=4, lg=2),
            dbc.Col(dcc.Dropdown(id="runs-dataset", options=option(cat["datasets"], asked["dataset"]),
                                 value=asked["dataset"], placeholder="Data set"), md=4, lg=2),
            dbc.Col(dbc.Input(id="runs-tag", placeholder="Tag", debounce=400, value=asked["tag"] or ""), md=4, lg=1),
        ],
        class_name="g-2 mb-3 runs-toolbar",
    )


def layout(ctx: Context, search: str | None = None) -> Any:
    asked = parse_state(search)
    sweep = asked["sweep"]
    flt = filters(asked["status"], asked["method"], asked["dataset"], asked["tag"], asked["text"], sweep,
                  asked["project"])
    state = view(ctx, None, flt, asked["sort"], None, [], None, columns=asked["columns"])
    assert state is not None
    link_notes = [dbc.Alert(m, color="warning", class_name="py-1 small mb-2", dismissable=True)
                  for m in asked["problems"]]
    sweep_note = (
        dbc.Alert(
            [
                html.Span(f"Showing the runs of sweep {sweep}. "),
                dcc.Link("Open the sweep's page", href=f"/sweeps/{sweep}", className="alert-link"),
                html.Span(" · "),
                dcc.Link(
                    "Compare all of them",
                    href=compare_href(_sweep_ids(ctx, sweep), over_seeds=True),
                    className="alert-link",
                ),
                html.Span(" · "),
                dcc.Link("Show all runs", href="/", className="alert-link"),
            ],
            color="info",
            class_name="py-2",
        )
        if sweep is not None
        else None
    )
    workspace = dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Columns", html_for="runs-columns", class_name="small mb-1"),
                    dcc.Dropdown(id="runs-columns", options=state["column_options"], value=asked["columns"],
                                 multi=True, placeholder="Add columns: config fields (lr, method_options.alpha…) or "
                                 "metrics' last and best values"),
                ],
                md=8,
            ),
            dbc.Col(saved_views.panel(ctx, "runs"), md=4),
        ],
        class_name="g-2 mb-3",
    )
    buttons = html.Div(
        [
            dbc.Button("Compare", id="runs-compare", color="primary", href=compare_href([]), disabled=True, size="sm"),
            dbc.Button("Cancel", id="runs-cancel", color="warning", outline=True, disabled=True, size="sm", n_clicks=0),
            dbc.Button("Retry", id="runs-retry", color="secondary", outline=True, disabled=True, size="sm", n_clicks=0),
            dbc.Button("Delete", id="runs-delete", color="danger", outline=True, disabled=True, size="sm", n_clicks=0),
            html.Span(
                "Select runs to compare or act on them.",
                id="runs-selection-label",
                className="small text-body-secondary ms-2",
            ),
        ],
        className="d-flex gap-2 align-items-center flex-wrap mb-2",
    )
    confirm = ui.confirm_modal("runs", "Keep them")
    pager = html.Div(
        [
            ui.action_button("‹ Newer", "runs-prev", "secondary", state["prev_disabled"]),
            html.Span(state["label"], id="runs-page-label", className="small text-body-secondary mx-2"),
            ui.action_button("Older ›", "runs-next", "secondary", state["next_disabled"]),
        ],
        className="d-flex align-items-center justify-content-end mt-2",
        id="runs-pager",
        hidden=state["table_hidden"],
    )
    return html.Div(
        [
            html.Div(
                [
                    html.H2("Runs", className="page-title mb-0"),
                    dbc.Button("+ Launch", href="/launch", color="primary", size="sm"),
                ],
                className="d-flex justify-content-between align-items-center mb-3",
            ),
            html.Div(link_notes, id="runs-link-notes"),
            sweep_note,
            toolbar(ctx, asked),
            workspace,
            buttons,
            html.Div(id="runs-message"),
            html.Div(state["empty"], id="runs-empty"),
            html.Div(
                dbc.Table(state["table"], id="runs-table", hover=True, size="sm", class_name="align-middle mb-0"),
                className="table-responsive runs-table-wrap",
                id="runs-table-wrap",
                hidden=state["table_hidden"],
            ),
            pager,
            confirm,
            dcc.Store(id="runs-sweep", data=sweep),
            dcc.Store(id="runs-sort", data=asked["sort"]),
            html.Div(id="runs-url-sink", hidden=True),
            dcc.Store(id="runs-paging", data=state["paging"]),
            dcc.Store(id="runs-signature", data=state["signature"]),
            dcc.Store(id="runs-selected", data=[]),
            dcc.Store(id="runs-pending", data=None),
            dcc.Store(id="runs-refresh", data=0),
            dcc.Interval(id="runs-interval", interval=ctx.poll_ms),
        ]
    )


def _sweep_ids(ctx: Context, sweep: int | None) -> list[int]:
    if sweep is None:
        return []
    items, _ = ctx.store.list_runs(sweep=sweep, limit=200)
    return [r["id"] for r in items]


def register(app: Dash, ctx: Context) -> None:
    @app.callback(
        Output("runs-table", "children"),
        Output("runs-paging", "data"),
        Output("runs-signature", "data"),
        Output("runs-prev", "disabled"),
        Output("runs-next", "disabled"),
        Output("runs-page-label", "children"),
        Output("runs-empty", "children"),
        Output("runs-table-wrap", "hidden"),
        Output("runs-pager", "hidden"),
        Output("runs-columns", "options"),
        Input("runs-interval", "n_intervals"),
        Input("runs-prev", "n_clicks"),
        Input("runs-next", "n_clicks"),
        Input("runs-refresh", "data"),
        Input("runs-search", "value"),
        Input("runs-status", "value"),
        Input("runs-method", "value"),
        Input("runs-dataset", "value"),
        Input("runs-tag", "value"),
        Input("runs-sort", "data"),
        Input("runs-project", "value"),
        Input("runs-columns", "value"),
        State("runs-sweep", "data"),
        State("runs-paging", "data"),
        State("runs-selected", "data"),
        State("runs-signature", "data"),
        prevent_initial_call=True,
    )
    @checked
    def refresh(
        _n: Any,
        _p: Any,
        _x: Any,
        _r: Any,
        text: Text | None,
        status: Statuses | None,
        method: Text | None,
        dataset: Text | None,
        tag: Text | None,
        sort: Text | None,
        project: Text | None,
        columns: Columns | None,
        sweep: RunId | None,
        paging: Paging | None,
        selected: Selection | None,
        sig: str | None,
    ) -> Any:
        flt = filters(status, method, dataset, tag, text, sweep, project)
        chosen, _ = views.parse_columns(columns or [])
        state = view(ctx, dash_ctx.triggered_id, flt, sort or DEFAULT_SORT, paging, selected or [], sig, columns=chosen)
        if state is None:
            raise PreventUpdate
        return (
            state["table"],
            state["paging"],
            state["signature"],
            state["prev_disabled"],
            state["next_disabled"],
            state["label"],
            state["empty"],
            state["table_hidden"],
            state["table_hidden"],
            state["column_options"],
        )

    # Keep the address bar in step with the view without a page load (replaceState: no history spam). The
    # keys in URL_KEYS' order, ':' and ',' left readable, as state_query writes them.
    app.clientside_callback(
        """
        function(sweep, project, status, method, dataset, tag, text, sort, columns) {
            const enc = (v) => encodeURIComponent(String(v)).replace(/%3A/g, ':');
            const values = {sweep, project, status, method, dataset, tag, text,
                            sort: sort === '-created_at' ? null : sort, columns};
            const parts = [];
            for (const key of ['sweep', 'project', 'status', 'method', 'dataset', 'tag', 'text', 'sort', 'columns']) {
                const v = values[key];
                const shown = Array.isArray(v) ? v.map(enc).join(',') : (v === null || v === undefined ? '' : enc(v));
                if (shown) { parts.push(key + '=' + shown); }
            }
            const q = parts.length ? '?' + parts.join('&') : '';
            if (window.location.pathname === '/' && window.location.search !== q) {
                window.history.replaceState(window.history.state, '', '/' + q);
            }
            return '';
        }
        """,
        Output("runs-url-sink", "children"),
        Input("runs-sweep", "data"),
        Input("runs-project", "value"),
        Input("runs-status", "value"),
        Input("runs-method", "value"),
        Input("runs-dataset", "value"),
        Input("runs-tag", "value"),
        Input("runs-search", "value"),
        Input("runs-sort", "data"),
        Input("runs-columns", "value"),
        prevent_initial_call=True,
    )
    saved_views.register(app, ctx, "runs")

    @app.callback(
        Output("runs-sort", "data"), Input(SORT_BY, "n_clicks"), State("runs-sort", "data"), prevent_initial_call=True
    )
    @checked
    def sort_by_header(_clicks: Any, sort: Text | None) -> Any:
        # A re-drawn header (every poll that changed the table) arrives with n_clicks 0: not a click.
        trigger = dash_ctx.triggered_id
        if not isinstance(trigger, dict) or not dash_ctx.triggered[0].get("value"):
            raise PreventUpdate
        return next_sort(sort or DEFAULT_SORT, str(trigger["field"]))

    @app.callback(
        Output(CHECK, "value"), Input("runs-check-all", "value"), State(CHECK, "value"), prevent_initial_call=True
    )
    @checked
    def check_all(on: bool | None, _values: Any) -> Any:
        return [bool(on)] * len(dash_ctx.outputs_list)

    @app.callback(
        Output("runs-selected", "data"),
        Output("runs-compare", "href"),
        Output("runs-compare", "disabled"),
        Output("runs-cancel", "disabled"),
        Output("runs-retry", "disabled"),
        Output("runs-delete", "disabled"),
        Output("runs-selection-label", "children"),
        Input(CHECK, "value"),
        State("runs-selected", "data"),
    )
    @checked
    def selected_changed(ticks: list[bool | None] | None, selected: Selection | None) -> Any:
        visible = check(RUN_IDS, [item["id"]["index"] for item in dash_ctx.inputs_list[0]], "run-check index")
        chosen = selection(visible, ticks or [], selected or [])
        if len(chosen) > MAX_IDS:
            refused = f"At most {MAX_IDS} runs can be selected at once: untick some before ticking more."
            return no_update, no_update, no_update, no_update, no_update, no_update, refused
        none = not chosen
        href = compare_href(chosen) if len(chosen) <= MAX_COMPARED else no_update
        return chosen, href, none or len(chosen) > MAX_COMPARED, none, none, none, selection_label(chosen)

    @app.callback(
        Output("runs-confirm", "is_open"),
        Output("runs-confirm-body", "children"),
        Output("runs-pending", "data"),
        Input("runs-cancel", "n_clicks"),
        Input("runs-retry", "n_clicks"),
        Input("runs-delete", "n_clicks"),
        Input("runs-confirm-no", "n_clicks"),
        State("runs-selected", "data"),
        prevent_initial_call=True,
    )
    @checked
    def ask(_c: Any, _r: Any, _d: Any, _no: Any, selected: Selection | None) -> Any:
        trigger = dash_ctx.triggered_id
        if trigger not in ("runs-cancel", "runs-retry", "runs-delete") or not selected:
            return False, no_update, None
        action = trigger.split("-", 1)[1]
        ids = ", ".join(f"#{i}" for i in sorted(selected))
        text = {
            "cancel": f"Cancel {ids}? Queued runs stop at once; running runs stop at their next batch.",
            "retry": f"Re-queue {ids}? Failed or cancelled runs resume from their last checkpoint.",
            "delete": f"Delete {ids} with their metrics, events and files? This cannot be undone.",
        }[action]
        return True, text, {"action": action, "ids": sorted(selected)}

    @app.callback(
        Output("runs-message", "children"),
        Output("runs-refresh", "data"),
        Output("runs-confirm", "is_open", allow_duplicate=True),
        Output("runs-selected", "data", allow_duplicate=True),
        Input("runs-confirm-ok", "n_clicks"),
        State("runs-pending", "data"),
        State("runs-refresh", "data"),
        State("runs-selected", "data"),
        prevent_initial_call=True,
    )
    @checked
    def confirmed(n: int | None, pending: Pending | None, token: int | None, selected: Selection | None) -> Any:
        if not n or not pending:
            raise PreventUpdate
        color, message = actions.perform(ctx, pending["action"], pending["ids"])
        if pending["action"] == "delete" and color != "danger":
            gone = set(pending["ids"])
            selected = [i for i in selected or [] if i not in gone]
        alert = dbc.Alert(message, color=color, dismissable=True, duration=8000, class_name="py-2")
        return alert, (token or 0) + 1, False, selected
