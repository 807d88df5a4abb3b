"""A page's saved views: the view in the address bar saved under a name, the saved ones opened or deleted.

A page that has them (compare, runs) keeps its address bar in step with what it shows, so saving reads
the address bar (in the browser, at the click) and stores its query through the service; opening a view
is following its link. Ids are ``<page>-view-*``.
"""

from __future__ import annotations

from typing import Annotated, Any

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate
from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

from dashboard.actions import describe, may_write
from dashboard.context import Context
from dashboard.inputs import Count, RunId, Text, check, checked
from service import views
from service.errors import ServiceError

READ_ONLY = "This session may only read: log in with ARMSCOPE_API_TOKEN to save or delete views."


class SaveRequest(TypedDict):
    """What the browser read at the click: the name typed and the address bar's query."""

    name: Text
    query: Annotated[str, Field(max_length=views.MAX_QUERY + 1)]
    clicks: Count


Clicks = Annotated[list[int | None], Field(max_length=1000)]
VIEW_ID: TypeAdapter[int] = TypeAdapter(RunId)  # a view's id: an Integer column, as a run's


def panel(ctx: Context, page: str) -> dbc.Card:
    """The name box, its Save button and the list of the page's saved views."""
    return dbc.Card(
        [
            dbc.CardHeader("Saved views", class_name="fw-semibold py-2"),
            dbc.CardBody(
                [
                    dbc.InputGroup(
                        [
                            dbc.Input(id=f"{page}-view-name", placeholder="Name this view", maxlength=views.MAX_NAME,
                                      size="sm"),
                            dbc.Button("Save", id=f"{page}-view-save", n_clicks=0, size="sm", color="primary"),
                        ],
                        size="sm",
                        class_name="mb-2",
                    ),
                    html.Div(id=f"{page}-view-message"),
                    html.Div(view_list(ctx, page), id=f"{page}-view-list"),
                    dcc.Store(id=f"{page}-view-request", data=None),
                ]
            ),
        ],
        class_name="shadow-sm saved-views",
        id=f"{page}-views",
    )


def view_list(ctx: Context, page: str) -> Any:
    saved = views.views(ctx.store, page)
    if not saved:
        return html.Small("None yet: name the view above and save it.", className="text-body-secondary")
    return html.Ul(
        [
            html.Li(
                [
                    dcc.Link(view["name"], href=view["href"], className="text-break me-2 saved-view-link",
                             title=view["href"]),
                    html.Button(
                        "×", id={"type": f"{page}-view-delete", "index": view["id"]}, n_clicks=0,
                        className="btn btn-sm btn-link text-danger p-0 ms-auto", title=f"Delete the view {view['name']}",
                        **{"aria-label": f"Delete the view {view['name']}"},
                    ),
                ],
                className="d-flex align-items-baseline small mb-1",
                **{"data-view-id": str(view["id"])},
            )
            for view in saved
        ],
        className="list-unstyled mb-0",
        id=f"{page}-view-items",
    )


def save(ctx: Context, page: str, request: SaveRequest) -> tuple[str, str]:
    """(colour, message) after saving the request's view."""
    if not may_write(ctx):
        return "danger", READ_ONLY
    try:
        view = views.save(ctx.store, page, request["name"], request["query"])
    except ServiceError as exc:
        return "danger", describe(exc)
    return "success", f"Saved the view {view['name']!r}."


def delete(ctx: Context, view_id: int) -> tuple[str, str]:
    """(colour, message) after deleting a saved view."""
    if not may_write(ctx):
        return "danger", READ_ONLY
    try:
        views.delete(ctx.store, view_id)
    except ServiceError as exc:
        return "warning", describe(exc)
    return "success", "Deleted the view."


def register(app: Dash, ctx: Context, page: str) -> None:
    # The address bar is read where it is, in the browser, at the click.
    app.clientside_callback(
        """
        function(clicks, name) {
            if (!clicks) { return window.dash_clientside.no_update; }
            return {name: name || '', query: window.location.search || '', clicks: clicks};
        }
        """,
        Output(f"{page}-view-request", "data"),
        Input(f"{page}-view-save", "n_clicks"),
        State(f"{page}-view-name", "value"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(f"{page}-view-list", "children"),
        Output(f"{page}-view-message", "children"),
        Output(f"{page}-view-name", "value"),
        Input(f"{page}-view-request", "data"),
        Input({"type": f"{page}-view-delete", "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    @checked
    def act(request: SaveRequest | None, _clicks: Clicks | None) -> Any:
        trigger = dash_ctx.triggered_id
        if trigger == f"{page}-view-request" and request:
            color, message = save(ctx, page, request)
            name = "" if color == "success" else no_update
        elif isinstance(trigger, dict) and dash_ctx.triggered[0].get("value"):
            # A re-drawn list's buttons arrive with n_clicks 0: only a click deletes.
            color, message = delete(ctx, check(VIEW_ID, trigger.get("index"), "view id"))
            name = no_update
        else:
            raise PreventUpdate
        alert = dbc.Alert(message, color=color, dismissable=True, duration=6000, class_name="py-1 small mb-2")
        return view_list(ctx, page), alert, name
