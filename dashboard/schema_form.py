"""Form fields generated from an options JSON Schema (the catalog's), and the values read back from them.

Each property becomes one input whose id is ``{"type": "opt" | "optb", "section": ..., "field": ...}``:
numbers and integers -> text inputs read as one number or, for a sweep, several (a list ``0.01, 0.1``, a
range ``0.01:0.1:5`` or a log range ``log 1e-4:1e-1:4``: a :class:`Swept`), enums -> selects, booleans ->
switches, lists of scalars -> comma-separated text, anything richer (unions, objects, lists of objects) ->
text that is read as JSON when it parses (so ``shift`` and ``[{"strength": {...}}]`` both work).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Collection, Sequence

import dash_bootstrap_components as dbc
from dash import html

from dashboard.inputs import strict_loads

OMIT = object()  # an empty input: the option keeps its default
SCALARS = {"integer", "number", "string", "boolean"}
SWEEP_SYNTAX = "a list (0.01, 0.1), a range lo:hi:n (0.01:0.1:5) or a log range (log 1e-4:1e-1:4)"


@dataclass(frozen=True)
class Swept:
    """Several values typed into one number input: a sweep's search axis (``{"values": [...]}``,
    ``{"range": [lo, hi, n]}`` or ``{"log_range": [lo, hi, n]}``, as ``POST /sweeps`` takes it)."""

    axis: dict[str, Any]


@dataclass
class Field:
    name: str
    title: str
    kind: str  # integer | number | boolean | enum | string | list | json
    description: str = ""
    default: Any = None
    has_default: bool = False
    nullable: bool = False
    required: bool = False
    choices: list[Any] = field(default_factory=list)
    item_type: str = "string"
    bounds: dict[str, Any] = field(default_factory=dict)


def _unwrap(prop: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A ``T | None`` property as (T, nullable); anything else unchanged."""
    for key in ("anyOf", "oneOf"):
        options = prop.get(key)
        if options:
            rest = [o for o in options if o.get("type") != "null"]
            if len(rest) == 1 and len(rest) < len(options):
                return {**prop, **rest[0], key: None}, True
    return prop, False


def fields(schema: dict[str, Any], exclude: Sequence[str] = ()) -> list[Field]:
    required = set(schema.get("required") or [])
    out = []
    for name, raw in (schema.get("properties") or {}).items():
        if name in exclude:
            continue
        prop, nullable = _unwrap(raw)
        kind, item_type = "json", "string"
        ptype = prop.get("type")
        if prop.get("enum") and not prop.get("anyOf") and not prop.get("oneOf"):
            kind = "enum"
        elif ptype in ("integer", "number", "boolean") and not prop.get("anyOf") and not prop.get("oneOf"):
            kind = ptype
        elif ptype == "string" and not prop.get("anyOf") and not prop.get("oneOf"):
            kind = "string"
        elif ptype == "array" and (prop.get("items") or {}).get("type") in SCALARS:
            kind, item_type = "list", prop["items"]["type"]
        bounds = {k: prop[k] for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if k in prop}
        out.append(
            Field(
                name=name,
                title=raw.get("title") or name,
                kind=kind,
                description=raw.get("description") or "",
                default=raw.get("default"),
                has_default="default" in raw,
                nullable=nullable,
                required=name in required,
                choices=list(prop.get("enum") or []),
                item_type=item_type,
                bounds=bounds,
            )
        )
    return out


def shown(f: Field, value: Any = None) -> Any:
    """The value an input shows: ``value`` when given, else the default in the input's own format."""
    value = f.default if value is None else value
    if value is None:
        return None if f.kind in ("integer", "number") else ("" if f.kind != "boolean" else False)
    if f.kind == "list":
        return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if f.kind == "json":
        return value if isinstance(value, str) else json.dumps(value)
    return value


def _id(section: str, f: Field) -> dict[str, str]:
    return {"type": "optb" if f.kind == "boolean" else "opt", "section": section, "field": f.name}


def bounds_text(f: Field) -> str:
    """``>= 10, <= 2000000`` from the schema's bounds, or ''."""
    signs = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    number = lambda v: f"{int(v):,}" if float(v).is_integer() and abs(v) >= 1000 else f"{v:g}"  # noqa: E731
    return ", ".join(f"{signs[k]} {number(f.bounds[k])}" for k in signs if k in f.bounds)


def _help(f: Field) -> str:
    text = f.description
    if f.bounds:
        text += f" ({bounds_text(f)})"
    if f.kind == "list":
        text += " Comma-separated."
    if f.kind == "json" and f.default is None and not f.has_default:
        text += " Empty: the default."
    return text.strip()


def control(section: str, f: Field, value: Any = None) -> Any:
    ident, current = _id(section, f), shown(f, value)
    if f.kind == "boolean":
        return dbc.Switch(id=ident, value=bool(current), label=label(f), class_name="mt-4")
    if f.kind == "enum":
        options = [{"label": "(default)", "value": ""}] if f.nullable or not f.has_default else []
        options += [{"label": str(c), "value": c} for c in f.choices]
        return dbc.Select(id=ident, options=options, value=current if current is not None else "", size="sm")
    if f.kind in ("integer", "number"):
        # Text, not type=number: it also takes several values (a sweep), and out-of-range values reach the
        # server-side check (the API's own), which flags them in place.
        return dbc.Input(
            id=ident,
            type="text",
            inputMode="decimal",
            value=current,
            size="sm",
            placeholder="empty: none" if f.nullable else "",
            debounce=300,
        )
    placeholder = "default" if not f.has_default or f.default in (None, [], {}) else ""
    return dbc.Input(id=ident, type="text", value=current, size="sm", placeholder=placeholder, debounce=300)


def label(f: Field) -> str:
    """``n_samples`` -> ``n samples``: the option's own name, readable (the API spells it the same)."""
    return f.name.replace("_", " ") + (" *" if f.required else "")


def render(
    section: str, flds: Sequence[Field], values: dict[str, Any] | None = None, advanced: Collection[str] = ()
) -> list[Any]:
    """A responsive grid of labelled inputs, each with its inline error slot; the fields named in ``advanced``
    go under a collapsed "Advanced" section below the others (their ids are the same, so they are read alike)."""
    values = values or {}
    if not flds:
        return [html.P("This choice has no options.", className="text-body-secondary small mb-0")]
    basic = [_cell(section, f, values.get(f.name)) for f in flds if f.name not in advanced]
    more = [_cell(section, f, values.get(f.name)) for f in flds if f.name in advanced]
    out: list[Any] = [dbc.Row(basic, class_name="g-3")] if basic else []
    if more:
        out.append(
            html.Details(
                [html.Summary("Advanced: GPU options", className="small fw-semibold mb-2"), dbc.Row(more, class_name="g-3")],
                className="form-advanced mt-1",
            )
        )
    return out


def _cell(section: str, f: Field, value: Any) -> dbc.Col:
    """One labelled input with its inline error slot and help text."""
    feedback = dbc.FormFeedback(id={"type": "opt-fb", "section": section, "field": f.name}, type="invalid")
    parts = [control(section, f, value), feedback]
    if f.kind != "boolean":
        parts.insert(0, dbc.Label(label(f), class_name="form-label small mb-1"))
    else:
        parts = [control(section, f, value)]
    if _help(f):
        parts.append(dbc.FormText(_help(f), class_name="d-block small"))
    return dbc.Col(html.Div(parts, className="mb-3"), xs=12, md=6, xl=4)


def _scalar(text: str, item_type: str) -> Any:
    if item_type == "integer":
        return int(text)
    if item_type == "number":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    if item_type == "boolean":
        if text.lower() in ("true", "yes", "1"):
            return True
        if text.lower() in ("false", "no", "0"):
            return False
        raise ValueError(text)
    return text


def parse_numbers(text: str, kind: str) -> Any:
    """A number input's text as one number, or :class:`Swept` for several; ValueError if it is neither."""
    log = re.fullmatch(r"log\s+(.*)", text, re.IGNORECASE)
    body = log[1].strip() if log else text
    if ":" in body:
        lo, hi, n = (part.strip() for part in body.split(":")) if body.count(":") == 2 else ("", "", "")
        return Swept({"log_range" if log else "range": [_scalar(lo, kind), _scalar(hi, kind), int(n)]})
    if log:
        raise ValueError(text)
    values = [_scalar(part.strip(), kind) for part in re.split(r"[,;]", body) if part.strip()]
    if not values:
        raise ValueError(text)
    return values[0] if len(values) == 1 else Swept({"values": values})


def parse(f: Field, value: Any) -> tuple[Any, str | None]:
    """(option value | Swept | OMIT, error message) for what an input holds."""
    if f.kind == "boolean":
        return bool(value), None
    if value is None or (isinstance(value, str) and not value.strip()):
        if f.required:
            return OMIT, "Required."
        return OMIT, None
    if f.kind in ("integer", "number") and isinstance(value, str):
        try:
            return parse_numbers(value.strip(), f.kind), None
        except ValueError:
            whole = "a whole number" if f.kind == "integer" else "a number"
            return OMIT, f"Write {whole}, or several for a sweep: {SWEEP_SYNTAX}."
    if f.kind in ("integer", "number", "enum"):
        return value, None
    text = str(value).strip()
    if f.kind == "string":
        return text, None
    if f.kind == "list":
        try:
            return [_scalar(p.strip(), f.item_type) for p in text.split(",") if p.strip()], None
        except ValueError:
            return OMIT, f"Write {f.item_type}s separated by commas."
    try:
        return strict_loads(text), None
    except ValueError:  # also NaN, 1e400 and nesting past MAX_DEPTH: the options could not hold them
        pass
    if "," in text and not text.startswith(("[", "{")):
        try:
            return [strict_loads(p.strip()) for p in text.split(",") if p.strip()], None
        except ValueError:
            pass
    if text.startswith(("[", "{")):
        return OMIT, "Not valid JSON."
    return text, None


def collect(flds: Sequence[Field], values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Options from input values (by field name), and the inputs that could not be read."""
    options, errors = {}, {}
    by_name = {f.name: f for f in flds}
    for name, value in values.items():
        f = by_name.get(name)
        if f is None:  # an input of a schema that is being replaced
            continue
        parsed, error = parse(f, value)
        if error:
            errors[name] = error
        elif parsed is not OMIT:
            options[name] = parsed
    return options, errors
