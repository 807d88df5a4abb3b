"""Launch `/launch`: a run, a sweep (seeds, several values of any number field) or a method comparison, from
forms generated from the catalog."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import parse_qs

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, html, no_update
from dash import ctx as dash_ctx
from pydantic import ValidationError

from armscope.config import RunConfig
from armscope.models.base import ModelOptions
from armscope.plugins import DATASETS, ENCODERS, METHODS
from dashboard import actions
from dashboard import components as ui
from dashboard import schema_form as sf
from dashboard.context import Context
from dashboard.inputs import Text, checked, id_from_text
from service.catalog import catalog, model_options_schema
from service.db.store import RunNotFound
from service.errors import InvalidConfig
from service.sweeps import SweepSpec, comparison_titles

RUN_EXCLUDE = ("name", "tags", "dataset", "dataset_options", "method", "method_options", "model_options", "seed")
MODEL_EXCLUDE = ("encoder",)  # the default encoder has its own choice and form; overrides are JSON
SECTIONS = ("dataset", "method", "run", "model", "encoder")
# Where each section's fields live in a RunConfig: a swept field's path in the sweep's search.
PATHS = {"run": "", "dataset": "dataset_options.", "method": "method_options.", "model": "model_options.",
         "encoder": "model_options.encoder."}
# Options that only matter on a GPU (or only for speed there): under each section's collapsed "Advanced".
GPU_ONLY = frozenset({"precision", "channels_last", "compile", "cuda_graph", "pin_memory"})
MAX_SEEDS = 100
OPT = {"type": "opt", "section": ALL, "field": ALL}
OPTB = {"type": "optb", "section": ALL, "field": ALL}
FEEDBACK = {"type": "opt-fb", "section": ALL, "field": ALL}


def section_fields(section: str, dataset: str, method: str, encoder: str) -> list[sf.Field]:
    cat = catalog()
    if section == "run":
        return sf.fields(cat["run_config"], RUN_EXCLUDE)
    if section == "model":
        return sf.fields(model_options_schema(), MODEL_EXCLUDE)
    registry, name = {
        "dataset": ("datasets", dataset),
        "method": ("methods", method),
        "encoder": ("encoders", encoder),
    }[section]
    entry = cat[registry].get(name)
    return sf.fields(entry["options"]) if entry else []


def parse_seeds(text: str | None) -> tuple[list[int], str | None]:
    """``0``, ``0, 1, 2``, ``0-4`` or ``0..4`` (inclusive) -> seeds; a readable error otherwise."""
    seeds: list[int] = []
    parts = [p.strip() for p in (text or "").replace(";", ",").split(",") if p.strip()]
    if len(parts) > MAX_SEEDS:  # each part is at least one seed: no need to expand any range
        return [], f"At most {MAX_SEEDS} seeds at once."
    for part in parts:
        match = re.fullmatch(r"([0-9]{1,18})\s*(?:-|\.\.)\s*([0-9]{1,18})", part)
        if match:
            low, high = int(match[1]), int(match[2])
            if high < low or high - low >= MAX_SEEDS:
                return [], f"The range {part} is empty or longer than {MAX_SEEDS} seeds."
            seeds.extend(range(low, high + 1))
        elif re.fullmatch(r"[0-9]{1,18}", part):
            seeds.append(int(part))
        else:
            return [], "Write seeds like 0, 1, 2 or a range like 0-4."
    seeds = list(dict.fromkeys(seeds))
    if not seeds:
        return [], "Give at least one seed."
    if len(seeds) > MAX_SEEDS:
        return [], f"At most {MAX_SEEDS} seeds at once."
    return seeds, None


@dataclass
class Plan:
    """What the form would launch, or why it cannot yet."""

    request: RunConfig | SweepSpec | None = None
    runs: int = 0
    field_errors: dict[tuple[str, str], str] = field(default_factory=dict)
    seeds_error: str | None = None
    general: list[str] = field(default_factory=list)
    swept: dict[str, tuple[str, str]] = field(default_factory=dict)  # a searched path -> its (section, field)

    @property
    def ok(self) -> bool:
        return self.request is not None and not (self.field_errors or self.seeds_error or self.general)


def _locate(
    loc: Sequence[Any], run_fields: set[str], swept: dict[str, tuple[str, str]] | None = None
) -> tuple[str, str] | str | None:
    """Map a validation error location to a form input: (section, field), "seeds", or None."""
    loc = [str(p) for p in loc]
    if not loc:
        return None
    head = loc[0]
    if head == "search" and len(loc) > 1:
        return (swept or {}).get(loc[1])
    if head in ("seed", "seeds"):
        return "seeds"
    if head in ("dataset_options", "method_options") and len(loc) > 1:
        return head.split("_")[0], loc[1]
    if head == "model_options" and len(loc) > 1:
        if loc[1] == "encoder" and len(loc) > 2:
            return "encoder", loc[2]
        return "model", loc[1].split(".")[0]  # "encoders.visual" belongs to the encoders field
    if head in run_fields:
        return "run", head
    return None


def plan(
    dataset: str,
    method: str,
    encoder: str,
    seeds_text: str | None,
    compare: bool,
    name: str | None,
    tags_text: str | None,
    items: Sequence[tuple[dict[str, Any], Any]],
) -> Plan:
    """Read the whole form and validate it exactly as the API would (RunConfig / sweep expansion).

    A sweep's expansion is kept on its spec, so launching it validates nothing again.
    """
    result = Plan()
    values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for ident, value in items:
        if ident.get("section") in values:
            values[ident["section"]][ident["field"]] = value
    options: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        flds = section_fields(section, dataset, method, encoder)
        options[section], errors = sf.collect(flds, values[section])
        result.field_errors.update({(section, k): v for k, v in errors.items()})
    search = _take_swept(options, result.swept)
    seeds, result.seeds_error = parse_seeds(seeds_text)
    tags = [t.strip() for t in (tags_text or "").split(",") if t.strip()]
    raw: dict[str, Any] = {
        "dataset": dataset,
        "method": method,
        "tags": tags,
        **options["run"],
        "dataset_options": options["dataset"],
        "method_options": options["method"],
        "model_options": {**options["model"], "encoder": {"name": encoder, **options["encoder"]}},
    }
    if result.field_errors or result.seeds_error:
        return result
    run_fields = {f.name for f in section_fields("run", dataset, method, encoder)}
    # Each option section on its own first: RunConfig stops at its first failing layer, the form shows all.
    problems: list[tuple[Sequence[Any], str]] = section_problems(raw)
    result.runs = len(seeds)
    if not compare and len(seeds) == 1 and not search:
        try:
            result.request = RunConfig.model_validate({**raw, "name": (name or "").strip() or None, "seed": seeds[0]})
        except ValidationError as exc:
            problems += [(e["loc"], e["msg"]) for e in exc.errors()]
    else:
        try:
            sweep = SweepSpec(config=raw, methods=[method], seeds=seeds, compare=compare, search=search,
                              name=(name or "").strip() or None)
            result.runs = sweep.run_count
            sweep.configs  # expanded and validated here, once: launching the sweep reuses them
            result.request = sweep
        except ValidationError as exc:
            problems += [(e["loc"], e["msg"]) for e in exc.errors()]
        except InvalidConfig as exc:
            problems += [([p for p in e["loc"] if p != "config"], e["msg"]) for e in exc.problems]
    for loc, msg in problems:
        where = _locate(loc, run_fields, result.swept)
        if where == "seeds":
            result.seeds_error = msg
        elif isinstance(where, tuple):
            # The modality of encoders.<m> (a searched path's dots are not one)
            inner = str(loc[1]).partition(".")[2] if len(loc) > 1 and loc[0] != "search" else ""
            result.field_errors.setdefault(where, f"{inner}: {msg}" if inner else msg)
        else:
            result.general.append(f"{'.'.join(map(str, loc))}: {msg}" if loc else msg)
    if problems:
        result.request = None
    return result


def _take_swept(options: dict[str, dict[str, Any]], swept: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Move the fields given several values out of ``options`` into a sweep's search (path -> axis), noting
    in ``swept`` which input each path came from."""
    search: dict[str, Any] = {}
    for section in SECTIONS:
        for name, value in list(options[section].items()):
            if isinstance(value, sf.Swept):
                path = PATHS[section] + name
                search[path], swept[path] = value.axis, (section, name)
                del options[section][name]
    return search


def section_problems(raw: dict[str, Any]) -> list[tuple[Sequence[Any], str]]:
    """Errors of the data set, method and model options, each checked against its registry entry."""
    problems: list[tuple[Sequence[Any], str]] = []
    checks = [
        (DATASETS, raw["dataset"], raw["dataset_options"], "dataset_options"),
        (METHODS, raw["method"], raw["method_options"], "method_options"),
    ]
    for registry, name, options, where in checks:
        if name not in registry:
            continue
        try:
            registry.parse_options(name, options, where)
        except ValidationError as exc:
            problems += [(e["loc"], e["msg"]) for e in exc.errors()]
    encoder = dict(raw["model_options"].get("encoder") or {})
    if encoder.get("name") in ENCODERS:
        try:
            ENCODERS.parse_options(encoder.pop("name"), encoder, "encoder")
        except ValidationError as exc:
            problems += [(("model_options", *e["loc"]), e["msg"]) for e in exc.errors()]
    try:
        ModelOptions.model_validate(raw["model_options"])
    except ValidationError as exc:
        problems += [(("model_options", *e["loc"]), e["msg"]) for e in exc.errors()]
    return problems


def launch(ctx: Context, the_plan: Plan) -> str:
    """Submit through the service, as the API does; returns where to land (the run, or the sweep's runs)."""
    if isinstance(the_plan.request, RunConfig):
        return f"/runs/{actions.launch_run(ctx, the_plan.request)['id']}"
    if isinstance(the_plan.request, SweepSpec):
        return f"/sweeps/{actions.launch_sweep(ctx, the_plan.request)['id']}"
    raise actions.ActionError("The form has errors; fix the fields marked in red.")


def summary_text(the_plan: Plan, compare: bool) -> str:
    if not the_plan.ok:
        return "Fix the fields marked in red to launch."
    if the_plan.runs == 1:
        return "Launches 1 run."
    if compare:
        return f"Launches a method comparison of {the_plan.runs} runs."
    spec = the_plan.request
    if isinstance(spec, SweepSpec) and spec.search:
        seeds = len(set(spec.seeds))
        over = [spec.short(path) for path in spec.search] + ([f"{seeds} seeds"] if seeds > 1 else [])
        return f"Launches a sweep of {the_plan.runs} runs over {' × '.join(over)} (at most {spec.max_runs})."
    return f"Launches a seed sweep of {the_plan.runs} runs."


# -- layout ------------------------------------------------------------------------------


def _prefill(ctx: Context, search: str | None) -> dict[str, Any]:
    """``/launch?from=<run id>``: start from a stored run's config (an external run's config is its script's,
    not a RunConfig: the form starts from the defaults)."""
    run_id = id_from_text((parse_qs((search or "").lstrip("?")).get("from") or [""])[0])
    if run_id is None:
        return {}
    try:
        run = ctx.store.get_run(run_id)
    except RunNotFound:
        return {}
    return {} if run["external"] else run["config"]


def _choice(label: str, kind: str, cat: dict[str, Any], value: str, md: int) -> dbc.Col:
    """A labelled choice among the catalog's ``<kind>s``, with the chosen one's summary below."""
    ident = f"launch-{kind}"
    return dbc.Col(
        [
            dbc.Label(label, html_for=ident),
            _select(ident, list(cat[f"{kind}s"]), value),
            dbc.FormText(cat[f"{kind}s"][value]["summary"], id=f"{ident}-summary"),
        ],
        md=md,
    )


def _default(field: str) -> str:
    """What a RunConfig chooses when a field is not given (the engine's default data set or method)."""
    return RunConfig.model_fields[field].default


def _select(ident: str, names: list[str], value: str) -> dbc.Select:
    return dbc.Select(id=ident, options=[{"label": n, "value": n} for n in names], value=value)


def layout(ctx: Context, search: str | None = None) -> Any:
    cat = catalog()
    config = _prefill(ctx, search)
    dataset = config.get("dataset") if config.get("dataset") in cat["datasets"] else _default("dataset")
    method = config.get("method") if config.get("method") in cat["methods"] else _default("method")
    encoder_spec = (config.get("model_options") or {}).get("encoder") or {}
    encoder = encoder_spec.get("name", "mlp")
    run_values = {k: v for k, v in config.items() if k not in RUN_EXCLUDE}
    empty = not ctx.store.list_runs(limit=1)[0]
    demo = (
        dbc.Alert(
            [
                html.H5("Nothing has run yet", className="alert-heading"),
                html.P(ui.demo_explainer(), className="mb-2"),
                ui.demo_button(),
            ],
            color="info",
            class_name="mb-3",
        )
        if empty
        else None
    )
    what = ui.card(
        "What to run",
        [
            dbc.Row(
                [
                    _choice("Data set", "dataset", cat, dataset, md=6),
                    _choice("Method", "method", cat, method, md=6),
                ],
                class_name="g-3 mb-3",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            dbc.Label("Seeds", html_for="launch-seeds"),
                            dbc.Input(id="launch-seeds", value=str(config.get("seed", 0)), debounce=300),
                            dbc.FormFeedback(id="launch-seeds-feedback", type="invalid"),
                            dbc.FormText("One seed, a list (0, 1, 2) or a range (0-4); several make a sweep."),
                        ],
                        md=4,
                    ),
                    dbc.Col(
                        [
                            dbc.Label("Name", html_for="launch-name"),
                            dbc.Input(id="launch-name", placeholder="generated when empty", debounce=300),
                        ],
                        md=4,
                    ),
                    dbc.Col(
                        [
                            dbc.Label("Tags", html_for="launch-tags"),
                            dbc.Input(
                                id="launch-tags",
                                value=", ".join(config.get("tags") or []),
                                placeholder="paper, ablation",
                                debounce=300,
                            ),
                        ],
                        md=4,
                    ),
                ],
                class_name="g-3 mb-2",
            ),
            dbc.FormText(
                f"Any number field below also takes several values, each making its own runs: {sf.SWEEP_SYNTAX}; "
                "the run count shows before launching.",
                class_name="d-block mb-2",
            ),
            dbc.Switch(
                id="launch-compare",
                value=False,
                label=f"Compare methods: launch {', '.join(comparison_titles())} together with these settings",
            ),
        ],
    )
    def section(title: str, ident: str, body: Any, note: str | None = None) -> Any:
        text = html.P(note, className="text-body-secondary small") if note else None
        return ui.card(title, [text, html.Div(body, id=ident)])

    model_fields = section_fields("model", dataset, method, encoder)
    model = ui.card(
        "Model",
        [
            html.Div(sf.render("model", model_fields, config.get("model_options") or {}), id="launch-model-fields"),
            dbc.Row(
                _choice("Encoder", "encoder", cat, encoder, md=4),
                class_name="mb-3",
            ),
            html.Div(
                sf.render("encoder", section_fields("encoder", dataset, method, encoder), encoder_spec),
                id="launch-encoder-fields",
            ),
        ],
    )
    form = dbc.Form(
        [
            what,
            section(
                "Data set options",
                "launch-dataset-fields",
                sf.render(
                    "dataset", section_fields("dataset", dataset, method, encoder), config.get("dataset_options"),
                    GPU_ONLY,
                ),
            ),
            section(
                "Method options",
                "launch-method-fields",
                sf.render(
                    "method", section_fields("method", dataset, method, encoder), config.get("method_options"), GPU_ONLY
                ),
                "With 'compare methods', the other methods use their defaults, and a control (such as ARM without "
                "re-weighting) uses its method's options here with its own.",
            ),
            section(
                "Training",
                "launch-run-fields",
                sf.render("run", section_fields("run", dataset, method, encoder), run_values, GPU_ONLY),
            ),
            model,
        ],
        id="launch-form",
        prevent_default_on_submit=True,
    )
    side = dbc.Card(
        dbc.CardBody(
            [
                html.H5("Launch", className="card-title"),
                html.P(
                    "Fill in the form; invalid values are marked as you type.",
                    id="launch-summary",
                    className="text-body-secondary",
                ),
                html.Div(id="launch-errors"),
                dbc.Button("Launch", id="launch-submit", color="primary", size="lg", class_name="w-100", n_clicks=0),
                html.Hr(),
                html.Small(
                    [
                        "The same checks as the REST API (POST /api/v1/runs, /api/v1/sweeps); ",
                        html.A("API docs", href="/docs", target="_blank"),
                        ".",
                    ],
                    className="text-body-secondary",
                ),
            ]
        ),
        class_name="shadow-sm sticky-lg-top launch-side",
    )
    return html.Div(
        [
            html.H2("Launch", className="page-title"),
            demo,
            dbc.Row([dbc.Col(form, lg=8), dbc.Col(side, lg=4)], class_name="g-4"),
        ]
    )


# -- callbacks ---------------------------------------------------------------------------


def register(app: Dash, ctx: Context) -> None:
    @app.callback(
        Output("launch-dataset-fields", "children"),
        Output("launch-dataset-summary", "children"),
        Input("launch-dataset", "value"),
        prevent_initial_call=True,
    )
    @checked
    def dataset_changed(dataset: Text | None) -> Any:
        entry = catalog()["datasets"].get(dataset) or {}
        return sf.render("dataset", section_fields("dataset", dataset, "", ""), advanced=GPU_ONLY), entry.get("summary", "")

    @app.callback(
        Output("launch-method-fields", "children"),
        Output("launch-method-summary", "children"),
        Input("launch-method", "value"),
        prevent_initial_call=True,
    )
    @checked
    def method_changed(method: Text | None) -> Any:
        entry = catalog()["methods"].get(method) or {}
        return sf.render("method", section_fields("method", "", method, ""), advanced=GPU_ONLY), entry.get("summary", "")

    @app.callback(
        Output("launch-encoder-fields", "children"),
        Output("launch-encoder-summary", "children"),
        Input("launch-encoder", "value"),
        prevent_initial_call=True,
    )
    @checked
    def encoder_changed(encoder: Text | None) -> Any:
        entry = catalog()["encoders"].get(encoder) or {}
        return sf.render("encoder", section_fields("encoder", "", "", encoder)), entry.get("summary", "")

    form_inputs = [
        Input("launch-dataset", "value"),
        Input("launch-method", "value"),
        Input("launch-encoder", "value"),
        Input("launch-seeds", "value"),
        Input("launch-compare", "value"),
        Input("launch-name", "value"),
        Input("launch-tags", "value"),
    ]

    @app.callback(
        Output(OPT, "invalid"),
        Output(FEEDBACK, "children"),
        Output("launch-seeds", "invalid"),
        Output("launch-seeds-feedback", "children"),
        Output("launch-summary", "children"),
        Output("launch-submit", "disabled"),
        Input(OPT, "value"),
        Input(OPTB, "value"),
        *form_inputs,
    )
    @checked
    def validate(
        _values: Any,
        _bools: Any,
        dataset: Text | None,
        method: Text | None,
        encoder: Text | None,
        seeds: str | None,
        compare: bool | None,
        name: str | None,
        tags: str | None,
    ) -> Any:
        items = [(i["id"], i.get("value")) for group in dash_ctx.inputs_list[:2] for i in group]
        the_plan = plan(dataset, method, encoder, seeds, bool(compare), name, tags, items)
        invalid = [(o["id"]["section"], o["id"]["field"]) in the_plan.field_errors for o in dash_ctx.outputs_list[0]]
        messages = [
            the_plan.field_errors.get((o["id"]["section"], o["id"]["field"]), "") for o in dash_ctx.outputs_list[1]
        ]
        summary = summary_text(the_plan, bool(compare))
        if the_plan.general:
            summary = [summary, html.Ul([html.Li(g) for g in the_plan.general], className="text-danger small mt-2")]
        return (invalid, messages, bool(the_plan.seeds_error), the_plan.seeds_error or "", summary, not the_plan.ok)

    @app.callback(
        Output("url", "href", allow_duplicate=True),
        Output("launch-errors", "children"),
        Input("launch-submit", "n_clicks"),
        State(OPT, "value"),
        State(OPTB, "value"),
        *[State(i.component_id, i.component_property) for i in form_inputs],
        prevent_initial_call=True,
    )
    @checked
    def submit(
        n_clicks: int | None,
        _values: Any,
        _bools: Any,
        dataset: Text | None,
        method: Text | None,
        encoder: Text | None,
        seeds: str | None,
        compare: bool | None,
        name: str | None,
        tags: str | None,
    ) -> Any:
        if not n_clicks:
            return no_update, no_update
        items = [(i["id"], i.get("value")) for group in dash_ctx.states_list[:2] for i in group]
        the_plan = plan(dataset, method, encoder, seeds, bool(compare), name, tags, items)
        try:
            return launch(ctx, the_plan), None
        except actions.ActionError as exc:
            return no_update, dbc.Alert(str(exc), color="danger", class_name="small")
