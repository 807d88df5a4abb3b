"""Run detail `/runs/<id>`: live curves, contributions, ARM terms, the method's declared charts, dominance, events, config."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Annotated, Any, Sequence
from urllib.parse import urlencode

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, Patch, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate
from pydantic import Field

from armscope.metrics import CHARTS
from dashboard import actions
from dashboard import components as ui
from dashboard import figures as fx
from dashboard.inputs import Cursor, Event, Pending, Record, RunId, checked
from service import runs as run_cases
from service import seed_sets as ss
from service.catalog import metrics_of
from service.db.store import TERMINAL, RunNotFound

GRAPHS = [chart.name for chart in CHARTS]
METHOD_GRAPH = "run-method-graph"  # the charts a run's method declares, one graph each: {"type": ..., "index": i}
LEVEL_COLORS = {"info": "secondary", "warning": "warning", "error": "danger"}
MAX_EVENTS_SHOWN = 200
# What a run's notes and tags may hold: the API's limits (RunPatch, RunConfig.tags).
MAX_NOTES, MAX_TAGS, MAX_TAG = 10_000, 50, 100
# What the edit form's fields may carry at all; within it, a refusal is a message on the page.
EditText = Annotated[str, Field(max_length=10 * MAX_NOTES)]
# The imbalance is the spread of the Shapley values over the sum of their sizes (armscope.metrics).
IMBALANCE_SCALE = "0 = balanced · 1 = one modality does it all"


def build_figures(
    records: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]], mode: str | None, method: str
) -> dict[str, Any]:
    """The engine's charts by name, and under ``"method"`` the charts ``method`` declares, in declaration order,
    each drawn from the metrics declared on it, then a chart per family of keys nothing declares (what an
    external run's script logs of its own)."""
    declarations = metrics_of(method)
    figs = {chart.name: fx.chart_figure(chart, records, mode, declarations, events) for chart in CHARTS}
    declared = [fx.chart_figure(chart, records, mode, declarations) for chart in fx.method_charts(declarations)]
    declared += fx.logged_figures(records, declarations, mode)
    return {
        **{k: fx.integer_ticks(f, records) for k, f in figs.items()},
        "method": [fx.integer_ticks(f, records) for f in declared],
    }


def poll(ctx: Any, run_id: int, cursor: dict[str, Any]) -> dict[str, Any]:
    """What changed since ``cursor``: only epochs after the last one seen and events after the last id.

    A run that was re-queued and resumed may have redone epochs, so a new attempt reloads everything.
    """
    run = ctx.store.get_run(run_id)
    result: dict[str, Any] = {"run": run, "records": None, "replace": False, "events": None}
    if run["attempt"] != cursor.get("attempt"):
        result["records"], result["replace"] = ctx.store.metrics(run_id), True
        result["events"] = ctx.store.events(run_id)
    else:
        new = ctx.store.metrics(run_id, since_epoch=cursor.get("epoch"))
        result["records"] = new or None
        events = ctx.store.events(run_id, since_id=cursor.get("event"))
        result["events"] = events or None
    last_epoch = cursor.get("epoch")
    if result["records"]:
        last_epoch = result["records"][-1]["epoch"]
    last_event = cursor.get("event")
    if result["events"]:
        last_event = result["events"][-1]["id"]
    result["cursor"] = {
        "epoch": last_epoch,
        "event": last_event,
        "attempt": run["attempt"],
        "state": state_signature(run),
    }
    result["changed"] = result["cursor"]["state"] != cursor.get("state")
    result["stop"] = run["status"] in TERMINAL and not result["records"] and not result["events"]
    return result


def state_signature(run: dict[str, Any]) -> str:
    p = run["progress"]
    return json.dumps(
        [
            run["status"],
            p["step"],
            p["epoch"],
            run.get("cancel_requested"),
            run.get("error"),
            run.get("best_val_acc"),
            run.get("dominant"),
            run.get("notes"),
            run.get("tags"),
            run.get("environment"),
        ],
        default=str,
    )


def initial_cursor(
    run: dict[str, Any], records: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "epoch": records[-1]["epoch"] if records else None,
        "event": events[-1]["id"] if events else None,
        "attempt": run["attempt"],
        "state": state_signature(run),
    }


def status_block(run: dict[str, Any]) -> list[Any]:
    p = run["progress"]
    meta = [
        ("method", "external: its own script" if run.get("external") else run["method"]),
        ("data set", run["dataset"]),
        ("seed", run["seed"]),
        ("epochs", f"{p['epoch']}/{p['epochs']}" if p["epochs"] else str(p["epoch"])),
        ("attempt", run.get("attempt") or 0),
        ("started", ui.ago(run.get("started_at"))),
        ("finished", ui.ago(run.get("finished_at"))),
    ]
    out: list[Any] = [
        html.Div(
            [
                ui.status_badge(run["status"], run.get("cancel_requested", False)),
                html.Span(
                    [
                        html.Span(
                            [html.Span(k, className="meta-key"), html.Span(str(v), className="meta-val")],
                            className="meta",
                        )
                        for k, v in meta
                    ],
                    className="ms-2",
                ),
            ],
            className="d-flex align-items-center flex-wrap gap-1",
        )
    ]
    if run["status"] in ("running", "queued"):
        out.append(html.Div(ui.progress_cell(run), className="mt-2 detail-progress"))
    if run.get("error"):
        out.append(
            dbc.Alert(
                [
                    html.Div(f"This run {run['status']}:" if run["status"] in TERMINAL else "Error:",
                             className="fw-semibold small mb-1"),
                    html.Pre(run["error"], className="mb-0 small error-text"),
                ],
                color="danger", class_name="mt-2 mb-0 py-2", id="run-error",
            )
        )
    if run["tags"]:
        out.append(
            html.Div(
                [dbc.Badge(t, color="light", text_color="dark", class_name="me-1 border") for t in run["tags"]],
                className="mt-2", id="run-tags",
            )
        )
    if run.get("notes"):
        out.append(html.Div(run["notes"], id="run-notes", className="mt-2 small", style={"whiteSpace": "pre-wrap"}))
    return out


def identity(run: dict[str, Any]) -> list[Any]:
    """The line under the run's name: its id, its project (the runs of that project) and its sweep (its page)."""
    parts: list[Any] = [f"run #{run['id']}"]
    if run.get("project"):
        parts += [" · project ", dcc.Link(run["project"], href="/?" + urlencode({"project": run["project"]}),
                                          id="run-project-link")]
    if run.get("sweep_id"):
        parts += [" · ", dcc.Link(f"sweep #{run['sweep_id']}", href=f"/sweeps/{run['sweep_id']}", id="run-sweep-link")]
    return parts


def no_epochs_note(run: dict[str, Any], has_records: bool) -> list[Any]:
    """In place of the charts while a run has no epoch: why there is nothing to draw. A run that ended
    without one (failed while loading its data, say) says so; its error is shown above."""
    if has_records:
        return []
    status = run["status"]
    if status in ("failed", "crashed"):
        text = f"This run {status} before completing an epoch, so it has nothing to chart; the error is above."
    elif status == "cancelled":
        text = "This run was cancelled before completing an epoch, so it has nothing to chart."
    elif status == "succeeded":
        text = "This run logged no epochs."
    else:
        text = "No epochs yet: the charts appear after the first epoch."
    return [dbc.Alert(text, color="danger" if status in ("failed", "crashed") else "light",
                      class_name="mb-3", id="run-no-epochs-text")]


def charts_style(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The charts' style: hidden while there is no epoch (seven charts saying so would say nothing more)."""
    return {} if records else {"display": "none"}


def stats(run: dict[str, Any], records: Sequence[dict[str, Any]]) -> list[Any]:
    """The headline tiles; none before the first epoch (they would all read "—")."""
    if not records:
        return []
    seconds = [r["epoch_seconds"] for r in records if isinstance(r.get("epoch_seconds"), (int, float))]
    imbalance = _latest(records, "imbalance")
    tiles = [
        ("best fused acc.", ui.percent(run.get("best_val_acc")), None),
        ("last fused acc.", ui.percent(_latest(records, "val_acc")), None),
        ("dominant now", _latest(records, "dominant") or "—", None),
        ("imbalance", "—" if imbalance is None else f"{imbalance:.2f}", IMBALANCE_SCALE),
        ("dominance switches", str(len(fx.switches(records))), None),
        ("epoch time", ui.duration(sum(seconds) / len(seconds)) if seconds else "—", None),
    ]
    return [dbc.Col(_tile(key, value, hint), xs=6, md=4, xl=2) for key, value, hint in tiles]


def _tile(key: str, value: str, hint: str | None) -> Any:
    """One headline figure; ``hint`` says on the tile what its scale means."""
    parts = [html.Div(value, className="stat-value"), html.Div(key, className="stat-key")]
    if hint:
        parts.append(html.Div(hint, className="small text-body-secondary"))
    return html.Div(parts, className="stat-tile")


def _latest(records: Sequence[dict[str, Any]], key: str) -> Any:
    """The value of the last epoch that holds ``key``: an external run's script may measure every few epochs."""
    return next((r[key] for r in reversed(records) if r.get(key) is not None), None)


def events_table(events: Sequence[dict[str, Any]], live: bool = True) -> Any:
    if not events:
        return html.P(
            "No events yet. Dominance switches, guard clamps, resumes and failures show up here."
            if live else "This run recorded no events.",
            className="text-body-secondary mb-0",
        )
    shown = list(reversed(events))[:MAX_EVENTS_SHOWN]
    rows = [
        html.Tr(
            [
                html.Td(e.get("epoch")),
                html.Td(dbc.Badge(e.get("kind"), color=LEVEL_COLORS.get(e.get("level"), "info"))),
                html.Td(e.get("message")),
                html.Td(str(e.get("time") or "")[:19].replace("T", " "), className="text-nowrap small"),
            ]
        )
        for e in shown
    ]
    note = (
        html.Small(f"The newest {MAX_EVENTS_SHOWN} of {len(events)} events.", className="text-body-secondary")
        if len(events) > MAX_EVENTS_SHOWN
        else None
    )
    return html.Div(
        [
            dbc.Table(
                [
                    html.Thead(html.Tr([html.Th("epoch"), html.Th("kind"), html.Th("message"), html.Th("time (UTC)")])),
                    html.Tbody(rows),
                ],
                size="sm",
                hover=True,
                class_name="mb-1",
                id="run-events-table",
            ),
            note,
        ]
    )


def config_view(config: dict[str, Any]) -> Any:
    flat = ss.flatten(config)
    rows = [
        html.Tr(
            [html.Td(k, className="font-monospace small"), html.Td(json.dumps(v), className="font-monospace small")]
        )
        for k, v in flat.items()
    ]
    return html.Div(
        [
            dbc.Table(html.Tbody(rows), size="sm", class_name="config-table mb-2"),
            html.Details(
                [html.Summary("as JSON"), html.Pre(json.dumps(config, indent=2), className="small config-json")]
            ),
        ]
    )


def environment_rows(environment: dict[str, Any]) -> list[tuple[str, str]]:
    """The environment a run recorded (``armscope.environment``) as (what, value) rows to read, in the order
    one checks a result against another: where it ran, with what software, from which code."""
    env = environment
    device = str(env.get("device") or "—")
    if env.get("device_requested") and env["device_requested"] != device:
        device += f" (config: {env['device_requested']})"
    rows = [("device", device)]
    if gpu := env.get("gpu"):
        memory = f", {gpu['memory_mb'] / 1024:.0f} GiB" if isinstance(gpu.get("memory_mb"), (int, float)) else ""
        count = f" (of {gpu['count']} visible)" if (gpu.get("count") or 1) > 1 else ""
        rows.append(("GPU", f"{gpu.get('name', '?')}{memory}, compute capability {gpu.get('capability', '?')}{count}"))
    if "peak_memory_mb" in env:
        peak = env["peak_memory_mb"]
        rows.append(("peak memory", "recorded when the run ends" if peak is None else f"{peak:,.0f} MiB"))
    software = [f"torch {env['torch']}"] if env.get("torch") else []
    software += [f"CUDA {env['cuda']}"] if env.get("cuda") else []
    software += [f"cuDNN {env['cudnn']}"] if env.get("cudnn") else []
    rows += [("torch", ", ".join(software))] if software else []
    rows += [(label, str(env[key])) for label, key in (
        ("armscope", "armscope"), ("Python", "python"), ("platform", "platform"), ("host", "host"),
        ("CPU threads", "threads"), ("DataLoader workers", "dataloader_workers"),
    ) if env.get(key) is not None]
    rows.append(("armscope's code", _checkout(env.get("code")) if env.get("code") else "installed (not a git checkout)"))
    if source := env.get("source"):
        rows.append(("config or script", f"{source.get('path')}: {_checkout(source.get('git'))}"))
    return rows


def _checkout(git: dict[str, Any] | None) -> str:
    if not git:
        return "not in a git checkout"
    dirty = {True: ", with uncommitted changes", False: ", clean", None: ""}.get(git.get("dirty"), "")
    return f"commit {str(git.get('commit'))[:12]}{dirty} ({git.get('repository')})"


def environment_view(environment: dict[str, Any] | None) -> Any:
    """The Environment tab: what the run ran on and with, or why it is not there."""
    if not environment:
        return html.P(
            "Recorded when the run starts: the device it used, its GPU, the torch, CUDA and armscope versions, "
            "the host and the git commit of the code.",
            className="text-body-secondary mb-0",
        )
    rows = [html.Tr([html.Td(k, className="small"), html.Td(v, className="font-monospace small")])
            for k, v in environment_rows(environment)]
    return html.Div(
        [
            dbc.Table(html.Tbody(rows), size="sm", class_name="config-table mb-2", id="run-environment-table"),
            html.Details(
                [html.Summary("as JSON"), html.Pre(json.dumps(environment, indent=2), className="small config-json")]
            ),
        ]
    )


def parse_tags(text: str) -> list[str]:
    """Tags typed as ``a, b, c``: trimmed, empty ones and repeats dropped; ValueError past the API's limits."""
    tags = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if len(tags) > MAX_TAGS:
        raise ValueError(f"At most {MAX_TAGS} tags: {len(tags)} given.")
    long = [t for t in tags if len(t) > MAX_TAG]
    if long:
        raise ValueError(f"A tag holds at most {MAX_TAG} characters: {long[0][:40]!r}… has {len(long[0])}.")
    return tags


def save_notes(ctx: Any, run_id: int, notes: str, tags_text: str) -> tuple[str, str, dict[str, Any] | None]:
    """Store a run's notes and tags through the service, as the API's PATCH does: (alert colour, message,
    the updated run or None when nothing was stored)."""
    if not actions.may_write(ctx):
        return "danger", actions.READ_ONLY, None
    if len(notes) > MAX_NOTES:
        return "danger", f"Notes hold at most {MAX_NOTES:,} characters: {len(notes):,} given.", None
    try:
        tags = parse_tags(tags_text)
        run = run_cases.update(ctx.store, run_id, notes=notes, tags=tags)
    except (ValueError, RunNotFound) as exc:
        return "danger", str(exc), None
    return "success", "Saved.", run


def edit_block(run: dict[str, Any]) -> Any:
    """Notes and tags, edited in place: a button opens the form, Save stores them (the runs search finds notes)."""
    form = dbc.Card(
        dbc.CardBody(
            [
                dbc.Label("Notes", html_for="run-notes-input", class_name="small mb-1"),
                dbc.Textarea(id="run-notes-input", value=run["notes"], rows=3,
                             placeholder="What this run tries, what you saw in it…"),
                dbc.Label("Tags, separated by commas", html_for="run-tags-input", class_name="small mt-2 mb-1"),
                dbc.Input(id="run-tags-input", value=", ".join(run["tags"]), type="text"),
                html.Div(
                    [
                        dbc.Button("Save", id="run-save", color="primary", size="sm", n_clicks=0),
                        dbc.Button("Cancel", id="run-edit-cancel", color="secondary", outline=True, size="sm",
                                   n_clicks=0),
                    ],
                    className="d-flex gap-2 mt-2",
                ),
            ],
            class_name="p-2",
        ),
        class_name="mt-1",
    )
    return html.Div(
        [
            html.Div(
                [
                    dbc.Button("Edit notes and tags", id="run-edit-toggle", color="link", size="sm",
                               class_name="px-0", n_clicks=0),
                    html.Span(id="run-save-message", className="small ms-2"),
                ],
                className="d-flex align-items-center mt-1",
            ),
            dbc.Collapse(form, id="run-edit", is_open=False),
        ]
    )


def _graph(name: str, figure: Any, run_id: int, height: int = 300) -> Any:
    return dcc.Loading(
        ui.graph(f"run-graph-{name}", figure, f"run-{run_id}-{name}", style={"height": f"{height}px"}),
        delay_show=800,
        type="dot",
    )


def not_found(run_id: Any) -> Any:
    return html.Div(
        ui.empty_state(
            f"Run {run_id} does not exist",
            "It may have been deleted.",
            dbc.Button("Back to the runs", href="/", color="primary"),
        ),
        id="run-detail",
    )


def layout(ctx: Any, run_id: int, mode: str | None = None) -> Any:
    try:
        run = ctx.store.get_run(run_id)
    except RunNotFound:
        return not_found(run_id)
    records, events = ctx.store.metrics(run_id), ctx.store.events(run_id)
    figs = build_figures(records, events, mode, run["method"])
    buttons = html.Div(
        [
            dbc.Button("Compare…", href=f"/compare?runs={run_id}", color="primary", outline=True, size="sm"),
            *([] if run.get("external") else [
                dbc.Button("Launch again", href=f"/launch?from={run_id}", color="secondary", outline=True, size="sm")
            ]),
            dbc.Button(
                "Metrics CSV",
                href=f"/api/v1/runs/{run_id}/metrics.csv",
                external_link=True,
                download="",
                color="secondary",
                outline=True,
                size="sm",
                id="run-csv",
            ),
            ui.action_button("Cancel", "run-cancel", "warning", run["status"] not in ("queued", "running")),
            ui.action_button("Retry", "run-retry", "secondary", not _retryable(run)),
            ui.action_button("Delete", "run-delete", "danger", run["status"] == "running"),
        ],
        className="d-flex gap-2 flex-wrap",
    )
    header = dbc.Card(
        dbc.CardBody(
            [
                html.Div(
                    [
                        html.Div(
                            [
                                html.H2(run["name"], className="page-title mb-1"),
                                html.Div(identity(run), className="text-body-secondary small", id="run-identity"),
                            ]
                        ),
                        buttons,
                    ],
                    className="d-flex justify-content-between align-items-start flex-wrap gap-2 mb-2",
                ),
                html.Div(status_block(run), id="run-status"),
                edit_block(run),
            ]
        ),
        class_name="shadow-sm mb-3",
    )
    hidden = _unrecorded(run, records)
    hint = html.P(
        "Live: updates every few seconds while the run is queued or running. "
        "Download any chart as PNG with the camera button in its toolbar.",
        className="small text-body-secondary mb-2",
    )
    charts = html.Div(
        [hint, *_engine_rows(figs, run_id, hidden), *_method_rows(figs["method"], run_id)], id="run-charts",
        style=charts_style(records),
    )
    live = run["status"] not in TERMINAL
    tabs = dbc.Tabs(
        [
            dbc.Tab(
                html.Div(events_table(events, live), id="run-events-box", className="pt-3"), label="Events",
                tab_id="events",
            ),
            dbc.Tab(html.Div(config_view(run["config"]), className="pt-3"), label="Config", tab_id="config"),
            dbc.Tab(
                html.Div(environment_view(run.get("environment")), id="run-environment-box", className="pt-3"),
                label="Environment", tab_id="environment",
            ),
        ],
        active_tab="events",
        id="run-tabs",
    )
    return html.Div(
        [
            header,
            dbc.Row(stats(run, records), id="run-stats", class_name="g-2 mb-3"),
            html.Div(no_epochs_note(run, bool(records)), id="run-no-epochs"),
            charts,
            dbc.Card(dbc.CardBody(tabs), class_name="shadow-sm mb-4"),
            ui.confirm_modal("run", "No"),
            html.Div(id="run-message"),
            dcc.Store(id="run-id", data=run_id),
            dcc.Store(id="run-records", data=records),
            dcc.Store(id="run-events", data=_jsonable(events)),
            dcc.Store(id="run-cursor", data=initial_cursor(run, records, events)),
            dcc.Store(id="run-pending", data=None),
            dcc.Interval(id="run-interval", interval=ctx.poll_ms, disabled=run["status"] in TERMINAL),
        ],
        id="run-detail",
    )


def _unrecorded(run: dict[str, Any], records: Sequence[dict[str, Any]]) -> set[str]:
    """The engine's charts an external run has logged nothing for: left off its page (a reload shows one once
    the script logs its keys). A run of ours logs every chart's keys, so its charts all stay."""
    if not run.get("external") or not records:
        return set()
    declarations = metrics_of(run["method"])
    return {chart.name for chart in CHARTS if not fx.recorded_on(chart, records, declarations)}


def _engine_rows(figs: dict[str, Any], run_id: int, hidden: Collection[str] = ()) -> list[Any]:
    """The engine's charts in declaration order: strips across the page, the others two to a row; a ``hidden``
    chart keeps its graph (the live redraw fills every one) in a card that is not shown."""
    cards = [
        (chart.style == "strip", chart.name in hidden, dbc.Card(
            dbc.CardBody(_graph(chart.name, figs[chart.name], run_id, chart.height), class_name="p-2"),
            class_name="shadow-sm " + ("mb-3" if chart.style == "strip" else "h-100"),
        ))
        for chart in CHARTS
    ]
    shown = [(strip, card) for strip, gone, card in cards if not gone]
    kept = html.Div([card for _, gone, card in cards if gone], style={"display": "none"})
    return [card for strip, card in shown if strip] + _two_per_row([card for strip, card in shown if not strip]) + [kept]


def _two_per_row(cards: Sequence[Any]) -> list[Any]:
    return [
        dbc.Row([dbc.Col(card, lg=6) for card in cards[i : i + 2]], class_name="g-3 mb-3") for i in range(0, len(cards), 2)
    ]


def _method_rows(figures: Sequence[Any], run_id: int) -> list[Any]:
    """The method's declared charts, two to a row."""
    cards = [
        dbc.Card(
            dbc.CardBody(
                dcc.Loading(
                    ui.graph({"type": METHOD_GRAPH, "index": i}, figure, f"run-{run_id}-method-{i + 1}",
                             style={"height": "300px"}),
                    delay_show=800,
                    type="dot",
                ),
                class_name="p-2",
            ),
            class_name="shadow-sm h-100",
        )
        for i, figure in enumerate(figures)
    ]
    return _two_per_row(cards)


def _retryable(run: dict[str, Any]) -> bool:
    """Failed or cancelled, and trained here: an external run's script is the only thing that can train it again."""
    return run["status"] in ("failed", "cancelled") and not run.get("external")


def _jsonable(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**e, "time": e["time"].isoformat() if hasattr(e.get("time"), "isoformat") else e.get("time")} for e in events
    ]


def register(app: Dash, ctx: Any) -> None:
    @app.callback(
        Output("run-records", "data"),
        Output("run-events", "data"),
        Output("run-status", "children"),
        Output("run-cursor", "data"),
        Output("run-interval", "disabled"),
        Output("run-cancel", "disabled"),
        Output("run-retry", "disabled"),
        Output("run-delete", "disabled"),
        Output("run-environment-box", "children"),
        Output("run-no-epochs", "children", allow_duplicate=True),
        Input("run-interval", "n_intervals"),
        State("run-id", "data"),
        State("run-cursor", "data"),
        prevent_initial_call=True,
    )
    @checked
    def tick(_n: Any, run_id: RunId, cursor: Cursor | None) -> Any:
        try:
            result = poll(ctx, run_id, cursor or {})
        except RunNotFound:
            return (
                no_update,
                no_update,
                dbc.Alert("This run was deleted.", color="warning"),
                no_update,
                True,
                True,
                True,
                True,
                no_update,
                no_update,
            )
        run = result["run"]
        if result["records"] is None:
            records: Any = no_update
        elif result["replace"]:
            records = result["records"]
        else:
            records = Patch()
            records.extend(result["records"])
        if result["events"] is None:
            events: Any = no_update
        elif result["replace"]:
            events = _jsonable(result["events"])
        else:
            events = Patch()
            events.extend(_jsonable(result["events"]))
        if not result["changed"] and result["records"] is None and result["events"] is None and not result["stop"]:
            raise PreventUpdate
        changed = result["changed"]
        return (
            records,
            events,
            status_block(run) if changed else no_update,
            result["cursor"],
            result["stop"],
            run["status"] not in ("queued", "running"),
            not _retryable(run),
            run["status"] == "running",
            environment_view(run.get("environment")) if changed else no_update,
            no_epochs_note(run, result["cursor"]["epoch"] is not None) if changed else no_update,
        )

    @app.callback(
        *[Output(f"run-graph-{g}", "figure") for g in GRAPHS],
        Output({"type": METHOD_GRAPH, "index": ALL}, "figure"),
        Output("run-events-box", "children"),
        Output("run-stats", "children"),
        Output("run-charts", "style"),
        Output("run-no-epochs", "children"),
        Input("run-records", "data"),
        Input("run-events", "data"),
        Input("theme", "data"),
        State("run-id", "data"),
        prevent_initial_call=True,
    )
    @checked
    def redraw(records: list[Record] | None, events: list[Event] | None, mode: str | None, run_id: RunId) -> Any:
        try:
            run = ctx.store.get_run(run_id)
        except RunNotFound:
            raise PreventUpdate from None
        figs = build_figures(records or [], events or [], mode, run["method"])
        # The page has the graphs of the charts known when it loaded: a family an external run logs later
        # is drawn on the next load.
        shown = len(dash_ctx.outputs_list[len(GRAPHS)])
        method = (figs["method"] + [no_update] * shown)[:shown]
        records = records or []
        return (
            *[figs[g] for g in GRAPHS], method, events_table(events or [], run["status"] not in TERMINAL),
            stats(run, records), charts_style(records), no_epochs_note(run, bool(records)),
        )

    @app.callback(
        Output("run-edit", "is_open"),
        Output("run-notes-input", "value"),
        Output("run-tags-input", "value"),
        Input("run-edit-toggle", "n_clicks"),
        Input("run-edit-cancel", "n_clicks"),
        State("run-edit", "is_open"),
        State("run-id", "data"),
        prevent_initial_call=True,
    )
    @checked
    def toggle_edit(_open: Any, _cancel: Any, is_open: bool | None, run_id: RunId) -> Any:
        """Open the form with what is stored now (another tab or the API may have changed it), or close it."""
        if is_open or dash_ctx.triggered_id != "run-edit-toggle":
            return False, no_update, no_update
        try:
            run = ctx.store.get_run(run_id)
        except RunNotFound:
            raise PreventUpdate from None
        return True, run["notes"], ", ".join(run["tags"])

    @app.callback(
        Output("run-status", "children", allow_duplicate=True),
        Output("run-save-message", "children"),
        Output("run-edit", "is_open", allow_duplicate=True),
        Input("run-save", "n_clicks"),
        State("run-id", "data"),
        State("run-notes-input", "value"),
        State("run-tags-input", "value"),
        prevent_initial_call=True,
    )
    @checked
    def save(n: int | None, run_id: RunId, notes: EditText | None, tags: EditText | None) -> Any:
        if not n:
            raise PreventUpdate
        color, message, run = save_notes(ctx, run_id, notes or "", tags or "")
        text = html.Span(message, className=f"text-{color}", id="run-save-result")
        if run is None:
            return no_update, text, no_update
        return status_block(run), text, False

    @app.callback(
        Output("run-confirm", "is_open"),
        Output("run-confirm-body", "children"),
        Output("run-pending", "data"),
        Input("run-cancel", "n_clicks"),
        Input("run-retry", "n_clicks"),
        Input("run-delete", "n_clicks"),
        Input("run-confirm-no", "n_clicks"),
        State("run-id", "data"),
        prevent_initial_call=True,
    )
    @checked
    def ask(_c: Any, _r: Any, _d: Any, _no: Any, run_id: RunId) -> Any:
        trigger = dash_ctx.triggered_id
        if trigger not in ("run-cancel", "run-retry", "run-delete") or not dash_ctx.triggered[0].get("value"):
            return False, no_update, None
        action = trigger.split("-", 1)[1]
        text = {
            "cancel": f"Cancel run #{run_id}? A running run stops at its next batch.",
            "retry": f"Re-queue run #{run_id}? It resumes from its last checkpoint.",
            "delete": f"Delete run #{run_id} with its metrics, events and files? This cannot be undone.",
        }[action]
        return True, text, {"action": action, "ids": [run_id]}

    @app.callback(
        Output("run-message", "children"),
        Output("run-confirm", "is_open", allow_duplicate=True),
        Output("run-interval", "disabled", allow_duplicate=True),
        Output("url", "href", allow_duplicate=True),
        Input("run-confirm-ok", "n_clicks"),
        State("run-pending", "data"),
        prevent_initial_call=True,
    )
    @checked
    def confirmed(n: int | None, pending: Pending | None) -> Any:
        if not n or not pending:
            raise PreventUpdate
        color, message = actions.perform(ctx, pending["action"], pending["ids"])
        if pending["action"] == "delete" and color == "success":
            return no_update, False, True, "/"
        alert = dbc.Alert(
            message,
            color=color,
            dismissable=True,
            duration=8000,
            class_name="py-2 position-fixed bottom-0 end-0 m-3 toast-alert",
        )
        return alert, False, False, no_update
