"""One plotly template per colour mode, and the colours every chart and badge share."""

from __future__ import annotations

import copy
from functools import lru_cache

import plotly.graph_objects as go
import plotly.io as pio

LIGHT, DARK = "light", "dark"
THEMES = (LIGHT, DARK)

# Modalities keep their colour on every chart of a run (Okabe-Ito, readable for colour-blind eyes).
MODALITY_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]
# Runs on the compare page: 20 distinct hues before they repeat.
RUN_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#e7969c",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
]
METHOD_COLORS = {"arm": "#D55E00", "baseline": "#0072B2", "ogm-ge": "#009E73", "ogm": "#56B4E9", "unimodal": "#CC79A7"}
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot", "5px,2px", "1px,3px"]
FUSED = {LIGHT: "#212529", DARK: "#f8f9fa"}

STATUS_COLORS = {
    "queued": "secondary",
    "running": "primary",
    "succeeded": "success",
    "failed": "danger",
    "cancelled": "warning",
    "crashed": "danger",
}

_INK = {LIGHT: "#212529", DARK: "#dee2e6"}
_GRID = {LIGHT: "#e9ecef", DARK: "#343a40"}
_LINE = {LIGHT: "#adb5bd", DARK: "#6c757d"}
_HOVER = {LIGHT: "#ffffff", DARK: "#2b3035"}


def _template(mode: str) -> go.layout.Template:
    axis = dict(
        gridcolor=_GRID[mode],
        zerolinecolor=_GRID[mode],
        linecolor=_LINE[mode],
        showline=True,
        ticks="outside",
        tickcolor=_LINE[mode],
        automargin=True,
        title=dict(standoff=6),
    )
    return go.layout.Template(
        layout=dict(
            font=dict(family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size=12, color=_INK[mode]),
            paper_bgcolor="rgba(0,0,0,0)",
            plot_bgcolor="rgba(0,0,0,0)",
            colorway=MODALITY_COLORS,
            xaxis=axis,
            yaxis=axis,
            margin=dict(l=50, r=16, t=36, b=40),
            legend=dict(
                orientation="h",
                yanchor="bottom",
                y=1.02,
                xanchor="left",
                x=0,
                bgcolor="rgba(0,0,0,0)",
                font=dict(size=11),
            ),
            hovermode="x unified",
            hoverlabel=dict(bgcolor=_HOVER[mode], font=dict(color=_INK[mode])),
            title=dict(font=dict(size=14), x=0, xanchor="left", y=0.98, yanchor="top"),
            annotationdefaults=dict(font=dict(color=_INK[mode])),
            modebar=dict(bgcolor="rgba(0,0,0,0)", color=_LINE[mode], activecolor="#0d6efd"),
        )
    )


for _mode in THEMES:
    pio.templates[f"armscope-{_mode}"] = _template(_mode)


def template(mode: str | None) -> str:
    """The template name for a colour mode; anything unknown reads as light."""
    return f"armscope-{mode if mode in THEMES else LIGHT}"


@lru_cache(maxsize=None)
def _template_json(name: str) -> dict:
    return pio.templates[name].to_plotly_json()


def template_json(mode: str | None) -> dict:
    """The template as a plain dict, for figures built as dicts (the browser does not know our names)."""
    return copy.deepcopy(_template_json(template(mode)))


def modality_color(index: int) -> str:
    return MODALITY_COLORS[index % len(MODALITY_COLORS)]


def run_color(index: int) -> str:
    return RUN_COLORS[index % len(RUN_COLORS)]


def method_color(method: str, index: int = 0) -> str:
    return METHOD_COLORS.get(method, RUN_COLORS[(index + 7) % len(RUN_COLORS)])


def dash_style(index: int) -> str:
    return DASHES[index % len(DASHES)]


def fused_color(mode: str | None) -> str:
    return FUSED.get(mode or LIGHT, FUSED[LIGHT])
