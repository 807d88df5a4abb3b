"""Runs `/`: one page of runs at a time (keyset paging), filters, selection, compare, cancel/retry/delete."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Annotated, Any, Sequence
from urllib.parse import parse_qs

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate
from pydantic import Field

from dashboard import actions
from dashboard import components as ui
from dashboard.context import Context
from dashboard.inputs import (
    MAX_IDS,
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
from service.catalog import catalog
from service.compare import MAX_COMPARED
from service.errors import InvalidInput
from service.runs import STATUSES, list_runs

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


def sweep_from(search: str | None) -> int | None:
    return id_from_text((parse_qs((search or "").lstrip("?")).get("sweep") or [""])[0])


def filters(
    status: Sequence[str] | None,
    method: str | None,
    dataset: str | None,
    tag: str | None,
    text: str | None,
    sweep: int | None,
) -> dict[str, Any]:
    return {
        "status": list(status or []) or None,
        "method": method or None,
        "dataset": dataset or None,
        "tag": (tag or "").strip() or None,
        "text": (text or "").strip() or None,
        "sweep": sweep,
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
    keys = ("id", "name", "status", "tags", "best_val_acc", "dominant", "error", "cancel_requested")
    rows = [[r.get(k) for k in keys] + [r["progress"]["step"], r["progress"]["epoch"]] for r in items]
    raw = json.dumps([rows, next_cursor, now.strftime("%Y%m%d%H%M")], default=str)
    return hashlib.sha1(raw.encode()).hexdigest()


def row(run: dict[str, Any], selected: bool, now: datetime) -> html.Tr:
    tags = [dbc.Badge(t, color="light", text_color="dark", class_name="me-1 border tag-badge") for t in run["tags"]]
    return html.Tr(
        [
            html.Td(dbc.Checkbox(id={"type": "run-check", "index": run["id"]}, value=selected, class_name="m-0")),
            html.Td(
                [
                    dcc.Link(run["name"], href=f"/runs/{run['id']}", className="fw-semibold run-link"),
                    html.Div(
                        f"#{run['id']}" + (f" · sweep {run['sweep_id']}" if run.get("sweep_id") else ""),
                        className="small text-body-secondary",
                    ),
                ]
            ),
            html.Td(ui.status_badge(run["status"], run.get("cancel_requested", False))),
            html.Td(ui.progress_cell(run), className="progress-col"),
            html.Td(run["method"]),
            html.Td(run["dataset"]),
            html.Td(run["seed"], className="text-end"),
            html.Td(ui.percent(run.get("best_val_acc")), className="text-end font-monospace"),
            html.Td(run.get("dominant") or "—"),
            html.Td(tags),
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
    items: Sequence[dict[str, Any]], selected: Sequence[int], now: datetime, sort: str = DEFAULT_SORT
) -> list[Any]:
    chosen = set(selected or [])
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
            + [header_cell(label, field, sort) for label, field in HEADERS]
        )
    )
    return [head, html.Tbody([row(r, r["id"] in chosen, now) for r in items])]


def view(
    ctx: Context,
    trigger: str | None,
    flt: dict[str, Any],
    sort: str,
    paging: dict[str, Any] | None,
    selected: Sequence[int],
    last_signature: str | None,
    now: datetime | None = None,
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
    elif trigger not in ("runs-interval", "runs-refresh", None):
        paging = {"cursors": [None], "index": 0, "next": None}  # a filter changed: back to the first page
    items, next_cursor = fetch(ctx, flt, sort, paging["cursors"][paging["index"]])
    if not items and paging["index"] > 0:  # the page emptied (deletes): show the first page
        paging = {"cursors": [None], "index": 0, "next": None}
        items, next_cursor = fetch(ctx, flt, sort, None)
    paging["next"] = next_cursor
    sig = signature(items, next_cursor, now) + str(paging["index"]) + sort
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
    return {
        "table": table_children(items, selected, now, sort or DEFAULT_SORT) if items else [],
        "paging": paging,
        "signature": sig,
        "prev_disabled": paging["index"] == 0,
        "next_disabled": next_cursor is None,
        "label": f"Runs {first}–{last}" if items else "",
        "empty": empty,
        "table_hidden": not items,
    }


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


def layout(ctx: Context, search: str | None = None) -> Any:
    cat = catalog()
    sweep = sweep_from(search)
    flt = filters(None, None, None, None, None, sweep)
    state = view(ctx, None, flt, DEFAULT_SORT, None, [], None)
    assert state is not None
    option = lambda names: [{"label": n, "value": n} for n in names]  # noqa: E731
    sweep_note = (
        dbc.Alert(
            [
                html.Span(f"Showing the runs of sweep {sweep}. "),
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
    toolbar = dbc.Row(
        [
            dbc.Col(
                dbc.Input(id="runs-search", type="search", placeholder="Search names and notes", debounce=400), md=3
            ),
            dbc.Col(dcc.Dropdown(id="runs-status", options=option(STATUSES), multi=True, placeholder="Status"), md=2),
            dbc.Col(dcc.Dropdown(id="runs-method", options=option(cat["methods"]), placeholder="Method"), md=2),
            dbc.Col(dcc.Dropdown(id="runs-dataset", options=option(cat["datasets"]), placeholder="Data set"), md=2),
            dbc.Col(dbc.Input(id="runs-tag", placeholder="Tag", debounce=400), md=3),
        ],
        class_name="g-2 mb-3 runs-toolbar",
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
            sweep_note,
            toolbar,
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
            dcc.Store(id="runs-sort", data=DEFAULT_SORT),
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
        sweep: RunId | None,
        paging: Paging | None,
        selected: Selection | None,
        sig: str | None,
    ) -> Any:
        flt = filters(status, method, dataset, tag, text, sweep)
        state = view(ctx, dash_ctx.triggered_id, flt, sort or DEFAULT_SORT, paging, selected or [], sig)
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
        )

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
