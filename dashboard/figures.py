"""Figure builders: pure functions from epoch records (dicts, as the store returns them) to plotly figures.

Nothing here touches the store or Dash, so every chart can be unit tested with hand-made records. What a
key is (its label, unit, whether lower is better, its chart) comes from the metric declarations
(``armscope.metrics``, each method's spec): the engine's charts are drawn here by hand, and every chart a
method declares is drawn from its declarations, so a plugin's metric shows without an edit here.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any, Iterable, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from armscope.metrics import CHARTS, COMMON, HEADLINE, Chart, Metric, charted, find
from dashboard import theme as th
from service import seed_sets as ss
from service.catalog import all_metrics, metric_of

Record = dict[str, Any]

X_AXES = {"epoch": "epoch", "wall": "wall time (s)", "samples": "samples seen"}
X_KEYS = {"epoch": "epoch", "wall": "elapsed_seconds", "samples": "samples_seen"}
DEFAULT_METRIC = HEADLINE.selector


# -- reading records -----------------------------------------------------------------


def column(records: Sequence[Record], key: str) -> list[float | None]:
    return [ss.number(r.get(key)) for r in records]


def epochs(records: Sequence[Record]) -> list[int]:
    return [int(r["epoch"]) for r in records]


@lru_cache(maxsize=1)
def per_modality_families() -> frozenset[str]:
    """The families of every per-modality declaration (``shapley``, ``ogm_coeff``, ...)."""
    return frozenset(m.family for m in all_metrics() if m.per_modality)


def is_percent(metric: str) -> bool:
    """Whether a key or selector is declared a fraction, shown as a percentage."""
    declared = metric_of(metric)
    return declared is not None and declared.unit == "fraction"


def modalities(records: Iterable[Record]) -> list[str]:
    """Modality names (from shapley.<m>, val_acc.<m>, ...) in the order the first record lists them."""
    records = list(records)
    if not records:
        return []
    first = list(records[0])
    keys = first + sorted(set().union(*records) - set(first))  # set union runs in C: cheap for long runs
    seen: dict[str, None] = {}
    families = per_modality_families()
    for key in keys:
        family, dot, name = key.partition(".")
        if dot and family in families:
            seen.setdefault(name, None)
    return list(seen)


def has_family(records: Sequence[Record], family: str) -> bool:
    prefix = family + "."
    return any(k.startswith(prefix) for r in records for k in r)


def ema(values: Sequence[float | None], smoothing: float) -> list[float | None]:
    """Debiased exponential moving average (as TensorBoard draws it); gaps stay gaps."""
    alpha = min(max(float(smoothing or 0.0), 0.0), 0.999)
    if alpha == 0:
        return list(values)
    out: list[float | None] = []
    last, seen = 0.0, 0
    for value in values:
        if value is None:
            out.append(None)
            continue
        last = alpha * last + (1 - alpha) * value
        seen += 1
        out.append(last / (1 - alpha**seen))
    return out


def switches(records: Sequence[Record], key: str = "dominant") -> list[tuple[int, str, str]]:
    """(epoch, from, to) for every change of the dominant modality (``key``) between consecutive records."""
    result, previous = [], None
    for record in records:
        current = record.get(key)
        if current and previous and current != previous:
            result.append((int(record["epoch"]), previous, current))
        if current:
            previous = current
    return result


# -- shared pieces -------------------------------------------------------------------


def plain(text: Any) -> str:
    """Text as plotly should show it: literally.

    Plotly reads a subset of HTML in every label it draws (legend names, titles, hover text,
    annotations): a run named ``<a href=...>`` would become a link. Escaped, the entities are shown
    as the characters they stand for. Every label built from data (run names, modality names, seed
    set labels, event messages, a metric named in the URL) goes through here, once, as it enters a
    figure; hover templates name their trace with ``%{fullData.name}`` instead of pasting text in, so
    a ``%{...}`` in a name is not read as a template either.
    """
    return html.escape(str(text), quote=False)


def _figure(mode: str | None, title: str, y_title: str = "", x_title: str = "epoch", height: int = 300) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template=th.template(mode), title=plain(title), height=height, uirevision="keep")
    fig.update_xaxes(title=plain(x_title))
    fig.update_yaxes(title=plain(y_title))
    return fig


def integer_ticks(fig: go.Figure, records: Sequence[Record]) -> go.Figure:
    """Whole-epoch ticks when there are only a few epochs (plotly would draw 1.2, 1.4, ...)."""
    if records and len(records) <= 12:
        fig.update_xaxes(dtick=1, tick0=0)
    return fig


def empty_figure(message: str, mode: str | None = None, title: str = "", height: int = 300) -> go.Figure:
    fig = _figure(mode, title, height=height)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(
        text=plain(message),
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font=dict(size=13, color="#6c757d"),
    )
    return fig


def _line(x: Sequence[Any], y: Sequence[Any], name: str, color: str, **kwargs: Any) -> go.Scatter:
    dash = kwargs.pop("dash", "solid")
    width = kwargs.pop("width", 2)
    return go.Scatter(
        x=list(x),
        y=list(y),
        name=plain(name),
        mode="lines+markers" if len(x) < 30 else "lines",
        line=dict(color=color, dash=dash, width=width),
        marker=dict(size=5),
        connectgaps=False,
        **kwargs,
    )


def _waiting(records: Sequence[Record], mode: str | None, title: str, height: int = 300) -> go.Figure | None:
    if not records:
        return empty_figure("No epochs yet: the curves appear after the first epoch.", mode, title, height)
    return None


def _recorded(records: Sequence[Record], key: str) -> bool:
    return any(key in r for r in records)


# -- run detail ------------------------------------------------------------------------


def chart_figure(
    chart: Chart, records: Sequence[Record], mode: str | None = None,
    declarations: Sequence[Metric] = (), events: Sequence[Record] = (),
) -> go.Figure:
    """``chart`` drawn in its style from the metrics declared on it: the common measures' and a method's
    ``declarations``. ``events`` name the dominance switches on the strip."""
    metrics = charted(chart, declarations)
    if (fig := _waiting(records, mode, chart.title, chart.height)) is not None:
        return fig
    if chart.style == "strip":
        return _strip(records, events, mode, chart, metrics)
    draw = {"lines": _lines, "stack": _stack, "panels": _panels}[chart.style]
    return draw(records, mode, chart, metrics)


def recorded_on(chart: Chart, records: Sequence[Record], declarations: Sequence[Metric] = ()) -> bool:
    """Whether any epoch holds a value drawn on ``chart`` (an external run logs what it likes)."""
    mods = modalities(records)
    return any(_recorded(records, key) for m in charted(chart, declarations) for key in m.keys(mods))


def method_charts(declarations: Sequence[Metric]) -> list[Chart]:
    """The charts a method's declarations add to the engine's, in declaration order, each drawn as panels."""
    engine = {c.title for c in CHARTS}
    titles = dict.fromkeys(m.chart for m in declarations if m.chart is not None and m.chart not in engine)
    return [Chart(f"method-{i}", title, "panels") for i, title in enumerate(titles)]


MAX_LOGGED_CHARTS = 24


def undeclared_families(records: Sequence[Record], declarations: Sequence[Metric]) -> dict[str, list[str]]:
    """Numeric keys no declaration names, by family: ``acc.audio`` and ``acc.visual`` under ``acc`` when
    audio and visual are the run's modalities, any other key alone. What an external run's script logs."""
    mods = set(modalities(records))
    families: dict[str, list[str]] = {}
    seen: set[str] = {"epoch"}
    for record in records:
        for key, value in record.items():
            if key in seen or isinstance(value, str):
                continue
            seen.add(key)
            if find(key, declarations) is None:
                family, dot, modality = key.partition(".")
                families.setdefault(family if dot and modality in mods else key, []).append(key)
    return families


def logged_figures(records: Sequence[Record], declarations: Sequence[Metric], mode: str | None = None) -> list[go.Figure]:
    """A line chart per family of undeclared keys (a line per modality where the family has them), at most
    ``MAX_LOGGED_CHARTS``: nothing says what the values mean, so each is drawn as logged, on its own axis."""
    x = epochs(records)
    figures = []
    for family, keys in list(undeclared_families(records, declarations).items())[:MAX_LOGGED_CHARTS]:
        fig = _figure(mode, f"{family} (logged by the script)")
        for i, key in enumerate(keys):
            name = key.partition(".")[2] if key != family else key
            fig.add_trace(_line(x, column(records, key), name, th.modality_color(i)))
        figures.append(fig)
    return figures


def _lines(records: Sequence[Record], mode: str | None, chart: Chart, metrics: Sequence[Metric]) -> go.Figure:
    """A line per scalar and per modality of each per-modality metric. Beside per-modality lines the scalars
    are fused values, drawn in the fused colour (the first thick); a second per-modality family is dotted."""
    x, mods = epochs(records), modalities(records)
    scalars = [m for m in metrics if not m.per_modality and _recorded(records, m.key)]
    families = [m for m in metrics if m.per_modality and any(_recorded(records, k) for k in m.keys(mods))]
    if not scalars and not families:
        return empty_figure("Not recorded for this run.", mode, chart.title, chart.height)
    fig = _figure(mode, chart.title, chart.axis, height=chart.height)
    for i, metric in enumerate(scalars):
        color = th.fused_color(mode) if families else neutral_color(i, mode)
        width = 3 if families and i == 0 else 2
        fig.add_trace(_line(x, column(records, metric.key), metric.label, color, width=width, dash="dash" if i else "solid"))
    for j, metric in enumerate(families):
        for i, m in enumerate(mods):
            key = f"{metric.family}.{m}"
            if _recorded(records, key):
                name = m if len(families) == 1 else f"{m} {metric.column}"
                fig.add_trace(_line(x, column(records, key), name, th.modality_color(i), dash="dot" if j else "solid"))
    if all(m.unit == "fraction" for m in (*scalars, *families)):
        fig.update_yaxes(tickformat=".1~%")
    return fig


def _stack(records: Sequence[Record], mode: str | None, chart: Chart, metrics: Sequence[Metric]) -> go.Figure:
    """The per-modality metric stacked on what the total leaves (the empty coalition's accuracy under
    Shapley values), so the stack's top is the total, drawn dotted over it."""
    (parts,) = [m for m in metrics if m.per_modality]
    total = metric_of(chart.total)
    fig = _figure(mode, chart.title, chart.axis, height=chart.height)
    mods = modalities(records)
    # An epoch where a part is missing (an external run's script measured it every few epochs) is left out:
    # stacked, a missing part would draw as zero.
    records = [r for r in records if all(ss.number(r.get(f"{parts.family}.{m}")) is not None for m in mods)]
    x, fused = epochs(records), column(records, chart.total)
    values = {m: column(records, f"{parts.family}.{m}") for m in mods}
    base = []
    for i, acc in enumerate(fused):
        shares = [values[m][i] for m in mods]
        base.append(None if acc is None or any(p is None for p in shares) else acc - sum(shares))  # type: ignore[operator]
    fig.add_trace(
        go.Scatter(
            x=x, y=base, name="no modality (chance)", stackgroup=parts.family, mode="lines",
            line=dict(width=0.5, color="#adb5bd"), fillcolor="rgba(173,181,189,0.35)", hovertemplate="%{y:.1%}",
        )
    )
    for i, m in enumerate(mods):
        share = [None if v is None or not a else v / a for v, a in zip(values[m], fused)]
        below = [min(v, 0.0) for v in values[m]]  # type: ignore[type-var]
        fig.add_trace(
            go.Scatter(
                x=x, y=[v - b for v, b in zip(values[m], below)] if any(below) else values[m], name=plain(m),
                stackgroup=parts.family, mode="lines", customdata=share, legendgroup=plain(m),
                line=dict(width=0.5, color=th.modality_color(i)), hovertemplate="%{y:.1%} (%{customdata:.0%} of fused)",
            )
        )
        if any(below):
            fig.add_trace(_below_zero(x, below, m, th.modality_color(i), f"{parts.family}-negative"))
    fig.add_trace(_line(x, fused, total.label if total else chart.total, th.fused_color(mode), dash="dot", width=2))
    fig.update_yaxes(tickformat=".1~%", zeroline=True, zerolinewidth=1.5)
    return fig


def _below_zero(x: Sequence[Any], values: Sequence[float], modality: str, color: str, group: str) -> go.Scatter:
    """A modality's negative contributions, stacked downward from zero in its colour, hatched: stacked with the
    positive ones they would be drawn over them, as if they added to the accuracy they take away from."""
    return go.Scatter(
        x=list(x), y=list(values), name=plain(f"{modality} (negative)"), stackgroup=group, mode="lines",
        legendgroup=plain(modality), line=dict(width=0.5, color=color), fillcolor=translucent(color, 0.35),
        fillpattern=dict(shape="/", fgcolor=color, solidity=0.3), hovertemplate="%{y:.1%} (takes away)",
    )


def _panels(records: Sequence[Record], mode: str | None, chart: Chart, metrics: Sequence[Metric]) -> go.Figure:
    """A panel per per-modality metric (the engine's, when the chart has any); other per-modality metrics
    drawn over the panel they name (else the last), dotted; scalars in a last panel without a title.

    Where a panel's overlay is what training applied (ARM's per-step scores and weights over the lens's
    validation estimates), the applied series lead, solid, and the estimates are dotted: the page shows
    first what the method did. Titles give each estimate's sample size where its metric names one.
    """
    mods = modalities(records)
    per_modality = [m for m in metrics if m.per_modality]
    primary = [m for m in per_modality if m in COMMON] or per_modality
    families = [m.family for m in primary]
    placed = [
        (families.index(m.over) if m.over in families else len(primary) - 1, m)
        for m in per_modality if m not in primary
    ]
    led = {p for p, m in placed if _leads(m, records, mods)}
    # (legend name, key, colour, dash, legend group): a modality's lines share its group across panels.
    lines: list[list[tuple[str, str, str, str, str]]] = [[] for _ in primary]
    for p, m in placed:
        if p in led and _leads(m, records, mods):
            lines[p] += _modality_lines(m, mods, "solid", m.column)
    for p, m in enumerate(primary):
        lines[p] += _modality_lines(m, mods, "dot", "(validation)") if p in led else _modality_lines(m, mods, "solid")
    for p, m in placed:
        if not (p in led and _leads(m, records, mods)):
            lines[p] += _modality_lines(m, mods, "dot", m.column)
    titles = [_panel_title(m, [n for q, n in placed if q == p], records) for p, m in enumerate(primary)]
    panels = list(zip(titles, lines))
    scalars = [m for m in metrics if not m.per_modality]
    if scalars:
        panels.append(("", [(m.label, m.key, neutral_color(i, mode), "solid", m.label) for i, m in enumerate(scalars)]))
    present = [(t, [line for line in drawn if _recorded(records, line[1])]) for t, drawn in panels]
    present = [(t, drawn) for t, drawn in present if drawn]
    if not present:
        return empty_figure("Not recorded for this run.", mode, chart.title, chart.height)
    fig = make_subplots(rows=1, cols=len(present), subplot_titles=[t for t, _ in present], horizontal_spacing=0.12)
    fig.update_layout(template=th.template(mode), title=plain(chart.title), height=chart.height, uirevision="keep")
    x, shown = epochs(records), set()
    for col, (_, drawn) in enumerate(present, start=1):
        for name, key, color, dash, group in drawn:
            fig.add_trace(
                _line(x, column(records, key), name, color, dash=dash, legendgroup=group, showlegend=name not in shown),
                row=1,
                col=col,
            )
            shown.add(name)
        fig.update_xaxes(title_text="epoch", row=1, col=col)
        fig.update_yaxes(tickformat=value_format([v for line in drawn for v in column(records, line[1])]), row=1, col=col)
    fig.update_annotations(font_size=12)
    # Room above the subplot titles (and their sample-size line) for the legend.
    fig.update_layout(margin=dict(t=92), legend=dict(y=1.25, yanchor="bottom"))
    return fig


def value_format(values: Iterable[float | None]) -> str:
    """A tick format for an axis of these values: scientific below 0.01 (plotly's default SI prefixes read
    "200μ" for 0.0002, a unit that is not there), plotly's own otherwise."""
    largest = max((abs(v) for v in values if v is not None), default=0.0)
    return ".2~e" if 0 < largest < 0.01 else ""


def neutral_color(index: int, mode: str | None) -> str:
    """A colour for a line that is no modality's (a loss, a count): the fused ink, then greys, so a chart's
    lines are never read as the modality that has that colour elsewhere on the page."""
    return th.fused_color(mode) if index == 0 else NEUTRALS[(index - 1) % len(NEUTRALS)]


NEUTRALS = ["#868e96", "#adb5bd", "#495057"]


def _leads(metric: Metric, records: Sequence[Record], mods: Sequence[str]) -> bool:
    """Whether ``metric`` is what training applied, recorded in this run: it leads the panel it is drawn over."""
    return metric.basis == "applied" and any(_recorded(records, k) for k in metric.keys(mods))


def _modality_lines(
    metric: Metric, mods: Sequence[str], dash: str, suffix: str = ""
) -> list[tuple[str, str, str, str, str]]:
    return [
        (f"{name} {suffix}" if suffix else name, f"{metric.family}.{name}", th.modality_color(i), dash, name)
        for i, name in enumerate(mods)
    ]


def _panel_title(metric: Metric, overlays: Sequence[Metric], records: Sequence[Record]) -> str:
    """The panel's label, and under it how many element pairs each of its estimates was made on."""
    sizes = []
    for m in (*[o for o in overlays if o.basis == "applied"], metric):
        count = _last(records, m.elements) if m.elements else None
        if count is not None:
            where = "training: " if m.sample == "training" else "validation: "
            sizes.append(where + f"{round(count):,} elements" + (" per step" if m.sample == "training" else ""))
    title = plain(metric.label)
    return title + "<br><sup>" + plain(" · ".join(sizes)) + "</sup>" if sizes else title


def _last(records: Sequence[Record], key: str) -> float | None:
    return next((r[key] for r in reversed(records) if isinstance(r.get(key), (int, float))), None)


def _strip(
    records: Sequence[Record], events: Sequence[Record], mode: str | None, chart: Chart, metrics: Sequence[Metric]
) -> go.Figure:
    """One cell per epoch coloured by the label-valued metric (the dominant modality); switches marked with ▼."""
    (label,) = [m for m in metrics if not m.numeric]
    fig = _figure(mode, chart.title, height=chart.height)
    mods = modalities(records)
    for r in records:  # a dominant modality without per-modality keys still gets a colour
        if r.get(label.key) and r[label.key] not in mods:
            mods.append(r[label.key])
    for i, m in enumerate(mods):
        xs = [int(r["epoch"]) for r in records if r.get(label.key) == m]
        if xs:
            fig.add_trace(
                go.Bar(
                    x=xs,
                    y=[1] * len(xs),
                    name=plain(m),
                    marker=dict(color=th.modality_color(i), line_width=0),
                    width=1.0,
                    hovertemplate="epoch %{x}: %{fullData.name} dominates<extra></extra>",
                )
            )
    messages = {
        int(e["epoch"]): e.get("message") or ""
        for e in events
        if e.get("kind") == "dominance_switch" and e.get("epoch") is not None
    }
    marks = switches(records, label.key)
    if marks:
        fig.add_trace(
            go.Scatter(
                x=[e - 0.5 for e, _, _ in marks],
                y=[1.12] * len(marks),
                mode="markers",
                name="switch",
                marker=dict(symbol="triangle-down", size=11, color=th.fused_color(mode)),
                hovertext=[
                    plain(messages.get(e) or f"dominance switched from {a} to {b} at epoch {e}") for e, a, b in marks
                ],
                hoverinfo="text",
            )
        )
        for e, _, _ in marks:
            fig.add_vline(x=e - 0.5, line=dict(color=th.fused_color(mode), width=1.5, dash="dot"))
    # showlegend: plotly hides the legend of a figure with one trace, as when one modality dominates throughout.
    fig.update_layout(barmode="overlay", bargap=0, hovermode="closest", margin=dict(l=50, r=16, t=36, b=30),
                      showlegend=True)
    fig.update_yaxes(visible=False, range=[0, 1.25], fixedrange=True)
    fig.update_xaxes(title=None, dtick=None)
    return fig


# -- compare ---------------------------------------------------------------------------


def metric_options(records: Iterable[Record]) -> list[dict[str, str]]:
    """Dropdown options for what a set of records holds, as declared: the contribution view first, then
    each declared scalar, then each per-modality family (the x axes aside)."""
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    axes = set(X_KEYS.values())
    held = [m for m in all_metrics() if m.numeric and m.key not in axes and any(m.matches(k) for k in keys)]
    ordered = [m for m in held if not m.per_modality] + [m for m in held if m.per_modality]
    options = [{"label": metric_label(m.selector), "value": m.selector} for m in ordered if m.selector != DEFAULT_METRIC]
    if not keys or any(m.selector == DEFAULT_METRIC for m in held):
        options.insert(0, {"label": metric_label(DEFAULT_METRIC), "value": DEFAULT_METRIC})
    return options


def metric_label(metric: str) -> str:
    """A key's or selector's declared label, with its unit (a fraction is shown as a percentage); else the key."""
    declared = metric_of(metric)
    if declared is None:
        return metric
    unit = declared.unit if declared.unit not in ("", "fraction") else ""
    return f"{declared.label} ({unit})" if unit else declared.label


def run_label(run: Record) -> str:
    return f"#{run['id']} {run.get('name') or ''}".strip()


def compare_keys(metric: str, x_axis: str, records_keys: Iterable[str] = ()) -> list[str]:
    """The record keys the compare view needs (exact names; family members are taken from ``records_keys``)."""
    wanted = {X_KEYS.get(x_axis, "epoch")}
    if metric.endswith(".*"):
        prefix = metric[:-1]
        wanted.update(k for k in records_keys if k.startswith(prefix))
    else:
        wanted.add(metric)
    wanted.discard("epoch")
    return sorted(wanted)


def compare_figure(
    runs: Sequence[Record],
    metric: str = DEFAULT_METRIC,
    smoothing: float = 0.0,
    x_axis: str = "epoch",
    color_by: str = "run",
    mode: str | None = None,
    group: str = "run",
) -> dict[str, Any]:
    """Overlay one metric across runs: one colour per run (or per method), one dash style per modality.

    ``group="seeds"`` draws, for each set of runs that differ only in their seed, the mean over
    the set with a band of one standard deviation, epoch by epoch. Returned as a plain plotly
    figure dict: with hundreds of traces, building graph objects (which validate every property)
    would cost more than the whole page takes to draw.
    """
    title = metric_label(metric)
    if not runs:
        return empty_figure(
            "Pick runs to compare: search for them on the left, or tick them on the Runs page.", mode, title, height=480
        ).to_dict()
    if not any(r.get("records") for r in runs):
        return empty_figure("These runs have no epochs yet.", mode, title, height=480).to_dict()
    x_key = X_KEYS.get(x_axis, "epoch")
    all_mods = modalities(r for run in runs for r in run.get("records") or [])
    methods = list(dict.fromkeys(run.get("method", "") for run in runs))

    def series(records: Sequence[Record]) -> list[tuple[str, str, str]]:
        return metric_series(records, metric, all_mods)

    def colour(index: int, method: str) -> str:
        return th.method_color(method, methods.index(method)) if color_by == "method" else th.run_color(index)

    traces: list[dict[str, Any]] = []
    if group == "seeds":
        for index, (label, members) in enumerate(ss.seed_sets(runs)):
            records = [r for run in members for r in run.get("records") or []]
            color = colour(index, members[0].get("method", ""))
            for modality, key, dash in series(records):
                traces += band_traces(members, key, x_key, smoothing, label, modality, color, dash, index)
    else:
        for index, run in enumerate(runs):
            records = run.get("records") or []
            color = colour(index, run.get("method", ""))
            x = column(records, x_key) if x_key != "epoch" else epochs(records)
            for modality, key, dash in series(records):
                y = ema(column(records, key), smoothing)
                pairs = [(a, b) for a, b in zip(x, y) if a is not None]
                name = f"{run_label(run)} · {modality}" if modality else run_label(run)
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "lines",
                        "name": plain(name),
                        "x": [a for a, _ in pairs],
                        "y": [b for _, b in pairs],
                        "line": {"color": color, "dash": dash, "width": 2},
                        "legendgroup": str(run["id"]),
                        "meta": [run["id"], modality],
                        "hovertemplate": "%{fullData.name}<br>%{x}: %{y:.4g}"
                        + f"<extra>{plain(run.get('method', ''))}</extra>",
                    }
                )
    xaxis: dict[str, Any] = {"title": {"text": X_AXES.get(x_axis, "epoch")}}
    if x_key == "epoch" and max(len(run.get("records") or []) for run in runs) <= 12:
        xaxis.update(dtick=1, tick0=0)
    yaxis: dict[str, Any] = {"title": {"text": plain(metric_label(metric))}}
    if is_percent(metric):
        yaxis["tickformat"] = ".1~%"
    layout = {
        "template": th.template_json(mode),
        "title": {"text": plain(title + (": mean ± std over seeds" if group == "seeds" else ""))},
        "height": 480,
        "uirevision": "keep",
        "hovermode": "closest",
        "xaxis": xaxis,
        "yaxis": yaxis,
        "margin": {"l": 60, "r": 16, "t": 40, "b": 50},
        "legend": {"orientation": "v", "yanchor": "top", "y": 1, "x": 1.02, "xanchor": "left"},
    }
    return {"data": traces, "layout": layout}


def metric_series(records: Sequence[Record], metric: str, all_mods: Sequence[str]) -> list[tuple[str, str, str]]:
    """(modality, record key, dash style) of each line a metric draws for these records."""
    if not metric.endswith(".*"):
        return [("", metric, "solid")]
    family = metric[:-2]
    present = set().union(*records) if records else set()
    return [(m, f"{family}.{m}", th.dash_style(all_mods.index(m))) for m in all_mods if f"{family}.{m}" in present]


def compare_summary(runs: Sequence[Record], metric: str = DEFAULT_METRIC, group: str = "run") -> list[dict[str, Any]]:
    """The numbers behind the compare view, unsmoothed: each line's last value and its best one.

    Best is the largest value, or the smallest for losses and times. With ``group="seeds"`` each
    row is a set of seeds: the mean and sample standard deviation of its runs' last and best values.
    Where the metric is an estimate with a declared sample size, ``elements`` is what its runs' last
    values were estimated on.
    """
    declared = metric_of(metric)
    sizes = declared.elements if declared is not None else ""
    all_mods = modalities(r for run in runs for r in run.get("records") or [])
    sets = ss.seed_sets(runs) if group == "seeds" else [(run_label(run), [run]) for run in runs]
    rows = []
    for label, members in sets:
        records = [r for run in members for r in run.get("records") or []]
        for modality, key, _ in metric_series(records, metric, all_mods):
            finals, bests = ss.last_and_best([ss.points(run.get("records") or [], key) for run in members], key)
            if not finals:
                continue
            row: dict[str, Any] = {"label": label, "modality": modality, "n": len(finals)}
            if sizes:
                counts = sorted({round(c) for run in members if (c := _last(run.get("records") or [], sizes)) is not None})
                row["elements"] = counts
            if group == "seeds":
                row.update(final=ss.spread([v for _, v in finals]), best=ss.spread([v for _, v in bests]))
            else:
                row.update(epoch=finals[0][0], final=(finals[0][1], None), best=(bests[0][1], None),
                           best_epoch=bests[0][0])
            rows.append(row)
    return rows


def mean_and_std(
    members: Sequence[Record], key: str, x_key: str, smoothing: float
) -> tuple[list[float], list[float], list[float], list[int]]:
    """Per epoch over the set's runs that reached it: mean x, mean y, sample std of y, run count; y smoothed first."""
    per_run = []
    for run in members:
        records = run.get("records") or []
        xs = column(records, x_key) if x_key != "epoch" else epochs(records)
        ys = ema(column(records, key), smoothing)
        per_run.append([(e, x, y) for e, x, y in zip(epochs(records), xs, ys) if x is not None and y is not None])
    stats = ss.epoch_stats(per_run)
    return stats["x"], stats["mean"], stats["std"], stats["n"]


def band_traces(
    members: Sequence[Record],
    key: str,
    x_key: str,
    smoothing: float,
    label: str,
    modality: str,
    color: str,
    dash: str,
    index: int,
) -> list[dict[str, Any]]:
    """A set's mean line over a filled band of plus or minus one standard deviation."""
    x, mean, std, counts = mean_and_std(members, key, x_key, smoothing)
    name = f"{label} · {modality}" if modality else label
    group = f"set{index}"
    edge = {"type": "scatter", "mode": "lines", "x": x, "line": {"width": 0, "color": color},
            "showlegend": False, "hoverinfo": "skip", "legendgroup": group}
    return [
        {**edge, "y": [m + s for m, s in zip(mean, std)]},
        {**edge, "y": [m - s for m, s in zip(mean, std)], "fill": "tonexty", "fillcolor": translucent(color, 0.18)},
        {
            "type": "scatter",
            "mode": "lines",
            "name": plain(name),
            "x": x,
            "y": mean,
            "customdata": [[s, n] for s, n in zip(std, counts)],
            "line": {"color": color, "dash": dash, "width": 2},
            "legendgroup": group,
            "meta": ["seeds", label, modality],
            "hovertemplate": "%{fullData.name}<br>%{x}: %{y:.4g} ± %{customdata[0]:.2g} (n=%{customdata[1]})"
            "<extra></extra>",
        },
    ]


def translucent(color: str, alpha: float) -> str:
    """``#rrggbb`` as an rgba() colour with this opacity."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


# -- benchmark -------------------------------------------------------------------------


def benchmark_figure(rows: Sequence[Record], x_key: str, x_title: str, mode: str | None = None) -> dict[str, Any]:
    """Fused accuracy against ``x_key`` (a figure of the benchmark's rows): a point per row, labelled with
    the row's label, with error bars of one standard deviation both ways, one colour (and legend entry)
    per method. A row that has no mean for either figure has no point."""
    title = f"Fused accuracy against {x_title}"
    if not rows:
        return empty_figure("No finished runs on this data set yet.", mode, title, height=400).to_dict()
    methods = list(dict.fromkeys(row["method"] for row in rows))
    traces = [
        _benchmark_trace([row for row in rows if row["method"] == method], x_key, x_title, method, color)
        for method, color in ((m, th.method_color(m, i)) for i, m in enumerate(methods))
    ]
    layout = {
        "template": th.template_json(mode),
        "title": {"text": plain(title)},
        "height": 400,
        "uirevision": "keep",
        "hovermode": "closest",
        "xaxis": {"title": {"text": plain(x_title)}},
        "yaxis": {"title": {"text": "fused accuracy"}, "tickformat": ".1~%"},
        "margin": {"l": 60, "r": 16, "t": 40, "b": 50},
        "legend": {"orientation": "v", "yanchor": "top", "y": 1, "x": 1.02, "xanchor": "left"},
    }
    return {"data": [t for t in traces if t["x"]], "layout": layout}


def _benchmark_trace(
    rows: Sequence[Record], x_key: str, x_title: str, method: str, color: str
) -> dict[str, Any]:
    plotted = [row for row in rows if row[x_key]["mean"] is not None and row["val_acc"]["mean"] is not None]

    def bars(key: str) -> dict[str, Any]:
        spread = [row[key]["std"] or 0.0 for row in plotted]
        return {"type": "data", "array": spread, "visible": True, "color": color, "thickness": 1.2, "width": 3}

    return {
        "type": "scatter",
        "mode": "markers+text",
        "name": plain(method),
        "x": [row[x_key]["mean"] for row in plotted],
        "y": [row["val_acc"]["mean"] for row in plotted],
        "error_x": bars(x_key),
        "error_y": bars("val_acc"),
        "text": [plain(row["label"]) for row in plotted],
        "textposition": "top center",
        "textfont": {"size": 10},
        "marker": {"color": color, "size": 9},
        "meta": "benchmark",
        "hovertemplate": "%{text}<br>" + plain(x_title) + ": %{x:.3g}<br>fused accuracy: %{y:.1%}"
        "<extra>%{fullData.name}</extra>",
    }
