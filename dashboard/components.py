"""Small pieces shared by the pages: badges, progress bars, empty states, number formats."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.theme import STATUS_COLORS
from service import sweeps

GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png", "scale": 2}}


def graph(graph_id: str | dict[str, Any], figure: Any, filename: str, **kwargs: Any) -> dcc.Graph:
    """A chart whose toolbar camera button downloads it as a PNG named ``filename``."""
    config = {**GRAPH_CONFIG, "toImageButtonOptions": {**GRAPH_CONFIG["toImageButtonOptions"], "filename": filename}}
    return dcc.Graph(id=graph_id, figure=figure, config=config, **kwargs)


def status_badge(status: str, cancel_requested: bool = False) -> dbc.Badge:
    label = "cancelling" if cancel_requested and status == "running" else status
    return dbc.Badge(
        label, color=STATUS_COLORS.get(status, "secondary"), class_name="status-badge", pill=True, title=label
    )


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f}s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def ago(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "—"
    now = now or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = (now - when).total_seconds()
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60) or 1} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return when.strftime("%Y-%m-%d")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def progress_cell(run: dict[str, Any]) -> Any:
    """A progress bar with epoch and ETA for running runs; a short note otherwise."""
    p, status = run["progress"], run["status"]
    epochs = f"epoch {p['epoch']}/{p['epochs']}"
    if status == "running":
        eta = f" · ETA {duration(p['eta_seconds'])}" if p.get("eta_seconds") is not None else ""
        phase = f" · {p['phase']}" if p.get("phase") else ""
        pct = 100 * (p.get("fraction") or 0.0)
        return html.Div(
            [
                dbc.Progress(value=pct, label=f"{pct:.0f}%", striped=True, animated=True, class_name="run-progress"),
                html.Small(f"{epochs}{phase}{eta}", className="text-body-secondary"),
            ]
        )
    if status == "queued":
        return html.Small(
            "waiting for a worker" if p["epoch"] == 0 else f"re-queued at {epochs}", className="text-body-secondary"
        )
    if status in ("failed", "crashed"):
        error = (run.get("error") or status).strip().splitlines()[-1]
        return html.Small(
            error[:80] + ("…" if len(error) > 80 else ""), className="text-danger", title=run.get("error")
        )
    return html.Small(epochs, className="text-body-secondary")


def empty_state(title: str, text: str, *actions: Any, icon: str = "○") -> html.Div:
    return html.Div(
        [
            html.Div(icon, className="empty-icon"),
            html.H5(title),
            html.P(text, className="text-body-secondary"),
            html.Div(list(actions), className="d-flex gap-2 justify-content-center flex-wrap"),
        ],
        className="empty-state text-center",
    )


def demo_button(label: str = "Launch the demo sweep") -> dbc.Button:
    return dbc.Button(label, id="demo-sweep", color="primary", n_clicks=0)


def demo_explainer() -> str:
    demo = sweeps.demo()
    runs = len(demo.configs)
    first = demo.configs[0]
    return (
        f"The demo sweep trains {', '.join(arm.title for arm in demo.arms)} on the {first.dataset} data set with seeds "
        f"{', '.join(map(str, demo.seeds))} ({runs} runs, {first.epochs} epochs each, a few minutes on a laptop CPU)."
    )


def card(title: str, body: Any, **kwargs: Any) -> dbc.Card:
    return dbc.Card(
        [dbc.CardHeader(title, class_name="fw-semibold"), dbc.CardBody(body)], class_name="mb-3 shadow-sm", **kwargs
    )


def action_button(label: str, ident: str, color: str, disabled: bool = False) -> dbc.Button:
    """A small outlined button that triggers a callback (cancel, retry, delete, paging)."""
    return dbc.Button(label, id=ident, color=color, outline=True, size="sm", n_clicks=0, disabled=disabled)


def next_sort(current: str, field: str, descending_first: bool = False) -> str:
    """Clicking a column's header: sort by it, or flip its direction if it is the sort already.

    ``descending_first`` for columns whose first click should show the largest (newest, best) first.
    """
    if current.lstrip("-") == field:
        return field if current.startswith("-") else f"-{field}"
    return f"-{field}" if descending_first else field


def sort_header(label: str, ident: dict[str, Any], field: str, sort: str) -> html.Th:
    """A column header that sorts its table by ``field`` when clicked, marked when it is the ``sort``."""
    active = sort.lstrip("-") == field
    descending = sort.startswith("-")
    arrow = ("▼" if descending else "▲") if active else ""
    return html.Th(
        html.Button(
            [label, html.Span(arrow, className="sort-arrow ms-1")],
            id=ident,
            className="sort-header" + (" active" if active else ""),
            title=f"Sort by {label.lower()}",
            n_clicks=0,
        ),
        **{"aria-sort": ("descending" if descending else "ascending") if active else "none"},
    )


def confirm_modal(prefix: str, decline: str) -> dbc.Modal:
    """The yes/no dialog before a destructive action; ids are ``<prefix>-confirm[-body|-no|-ok]``."""
    return dbc.Modal(
        [
            dbc.ModalHeader(dbc.ModalTitle("Please confirm")),
            dbc.ModalBody(id=f"{prefix}-confirm-body"),
            dbc.ModalFooter(
                [
                    dbc.Button(decline, id=f"{prefix}-confirm-no", color="secondary", outline=True, n_clicks=0),
                    dbc.Button("Yes, go ahead", id=f"{prefix}-confirm-ok", color="danger", n_clicks=0),
                ]
            ),
        ],
        id=f"{prefix}-confirm",
        is_open=False,
        centered=True,
    )
