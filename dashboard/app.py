"""The Dash app: the shell (navbar, theme, router) and every page's callbacks, bound to one Context."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import Flask, Response, request

from dashboard import actions, guard
from dashboard import components as ui
from dashboard.context import Context
from dashboard.inputs import checked, id_from_text
from dashboard.pages import benchmark, compare, launch, run_detail, runs, sweep

ASSETS = Path(__file__).parent / "assets"
NAV = [("Runs", "/"), ("Launch", "/launch"), ("Compare", "/compare"), ("Benchmark", "/benchmark")]
PAGES = re.compile(r"/|/launch|/compare|/benchmark|/(?:runs|sweeps)/(\d+)")


def shell() -> html.Div:
    navbar = dbc.Navbar(
        dbc.Container(
            [
                dcc.Link(
                    [html.Span("◐", className="brand-mark"), html.Span("armscope", className="ms-2")],
                    href="/",
                    className="navbar-brand d-flex align-items-center",
                ),
                dbc.Nav(
                    [dbc.NavItem(dbc.NavLink(label, href=href, id=f"nav-{label.lower()}")) for label, href in NAV],
                    class_name="me-auto",
                    navbar=True,
                ),
                html.Div(
                    [
                        html.A("API docs", href="/docs", target="_blank", className="nav-link small me-3"),
                        dbc.Switch(id="theme-switch", label="Dark", value=None, class_name="mb-0 theme-switch"),
                    ],
                    className="d-flex align-items-center",
                ),
            ],
            fluid=True,
        ),
        color="body",
        dark=False,
        class_name="border-bottom app-navbar shadow-sm",
        sticky="top",
    )
    return html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            dcc.Store(id="theme", storage_type="local", data="light"),
            navbar,
            dbc.Container(id="page", fluid=True, class_name="py-3 page"),
            html.Div(id="global-message", className="global-message"),
            # An empty chart in the shell starts fetching and compiling plotly.js while the first page's
            # callback is still on the server (pages with charts then draw sooner).
            html.Div(
                dcc.Graph(
                    id="plotly-warmup",
                    figure={"data": [], "layout": {"width": 10, "height": 10}},
                    config={"staticPlot": True},
                ),
                hidden=True,
            ),
        ]
    )


def is_page(pathname: str) -> bool:
    """Whether the dashboard has a page at ``pathname`` (a run's page only for an id a run can have)."""
    match = PAGES.fullmatch(pathname.rstrip("/") or "/")
    return match is not None and (match[1] is None or id_from_text(match[1]) is not None)


def route(ctx: Context, pathname: str | None, search: str | None, mode: str | None) -> Any:
    path = (pathname or "/").rstrip("/") or "/"
    if path == "/":
        return runs.layout(ctx, search)
    if path == "/launch":
        return launch.layout(ctx, search)
    if path == "/compare":
        return compare.layout(ctx, search, mode)
    if path == "/benchmark":
        return benchmark.layout(ctx, search, mode)
    match = PAGES.fullmatch(path)
    page_id = id_from_text(match[1]) if match and match[1] else None
    if page_id is not None and path.startswith("/sweeps/"):
        return sweep.layout(ctx, page_id, search, mode)
    if page_id is not None:
        return run_detail.layout(ctx, page_id, mode)
    return ui.empty_state(
        "Page not found",
        f"Nothing lives at {pathname}.",
        dbc.Button("Go to the runs", href="/", color="primary"),
        icon="?",
    )


def create_dash(ctx: Context) -> Dash:
    # No static folder: Flask's default would serve <working directory>/static at /static. The
    # product's own files are Dash's assets (/assets) and component bundles.
    app = Dash(
        __name__,
        server=Flask("armscope-dashboard", static_folder=None),
        assets_folder=str(ASSETS),
        title="armscope",
        update_title=None,
        suppress_callback_exceptions=True,
        serve_locally=True,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.layout = shell()
    guard.install(app)

    @app.server.after_request
    def not_found_status(response: Response) -> Response:
        """The page shell for any path (the page itself says 'Page not found'), with the status to match."""
        if response.status_code == 200 and response.mimetype == "text/html" and not is_page(request.path):
            response.status_code = 404
        return response

    @app.callback(
        Output("page", "children"),
        *[Output(f"nav-{label.lower()}", "active") for label, _ in NAV],
        Input("url", "pathname"),
        Input("url", "search"),
        State("theme", "data"),
    )
    @checked
    def router(pathname: str | None, search: str | None, mode: str | None) -> Any:
        path = (pathname or "/").rstrip("/") or "/"
        active = [path == "/" or path.startswith(("/runs", "/sweeps")), path == "/launch", path == "/compare",
                  path == "/benchmark"]
        return route(ctx, pathname, search, mode), *active

    app.clientside_callback(
        """
        function(on, stored) {
            const mode = (on === null || on === undefined) ? (stored === 'dark' ? 'dark' : 'light')
                                                            : (on ? 'dark' : 'light');
            document.documentElement.setAttribute('data-bs-theme', mode);
            return [mode, mode === 'dark'];
        }
        """,
        Output("theme", "data"),
        Output("theme-switch", "value"),
        Input("theme-switch", "value"),
        State("theme", "data"),
    )

    @app.callback(
        Output("url", "href", allow_duplicate=True),
        Output("global-message", "children"),
        Input("demo-sweep", "n_clicks"),
        prevent_initial_call=True,
    )
    @checked
    def demo(n_clicks: int | None) -> Any:
        if not n_clicks:
            raise PreventUpdate
        try:
            sweep = actions.launch_demo(ctx)
        except actions.ActionError as exc:
            return no_update, dbc.Alert(str(exc), color="danger", dismissable=True)
        return f"/sweeps/{sweep['id']}", None

    for page in (runs, launch, run_detail, compare, benchmark, sweep):
        page.register(app, ctx)
    return app
