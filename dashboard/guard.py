"""The gate in front of Dash's callback endpoint: a request it cannot serve is a 4xx, never a 500.

Dash trusts its own renderer: it reads ``POST /_dash-update-component`` with a JSON parser that takes
NaN and recursion deep enough to crash, and indexes the body without checking it. Before Dash sees
a request, this gate parses it strictly (:func:`dashboard.inputs.strict_loads`) and checks that it
names a callback that exists, with the inputs, state and outputs that callback declares. A refused
request, like a callback argument :func:`dashboard.inputs.checked` refuses, gets 400 and
``{"detail": <what was wrong>}``.
"""

from __future__ import annotations

import json
from typing import Any

import flask
from dash import Dash
from dash._utils import stringify_id  # how Dash itself keys inputs, so changedPropIds match its lookup
from werkzeug.exceptions import HTTPException

from dashboard.inputs import BadInput, strict_loads

ENDPOINT = "/_dash-update-component"
WILDCARDS_OF_MANY = (["ALL"], ["ALLSMALLER"])


def install(app: Dash) -> None:
    """Check every callback request of ``app`` before Dash reads it; answer refusals as JSON."""
    server = app.server

    @server.before_request
    def check_callback_request() -> Any:
        if flask.request.path != ENDPOINT or flask.request.method != "POST":
            return None
        if not flask.request.is_json:
            return refusal("expected a JSON body (Content-Type: application/json)", 415)
        try:
            body = strict_loads(flask.request.get_data(cache=True))
        except ValueError as exc:
            return refusal(f"the body is not valid JSON: {exc}")
        check_request(body, app.callback_map)
        return None

    @server.errorhandler(BadInput)
    def bad_input(exc: BadInput) -> flask.Response:
        return refusal(str(exc))

    @server.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if flask.request.path != ENDPOINT:
            return exc
        return refusal(exc.description or exc.name, exc.code or 500)


def refusal(message: str, status: int = 400) -> flask.Response:
    return flask.Response(json.dumps({"detail": message}), status=status, mimetype="application/json")


def check_request(body: Any, callbacks: dict[str, dict[str, Any]]) -> None:
    """BadInput unless ``body`` asks for a registered callback, shaped as that callback declares."""
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    output = body.get("output")
    if not isinstance(output, str):
        raise BadInput("output: expected the id of a callback's outputs (a string)")
    spec = callbacks.get(output)
    if spec is None:
        raise BadInput(f"output: no callback updates {output[:200]!r}")
    if "callback" not in spec:
        raise BadInput(f"output: the callback updating {output[:200]!r} runs in the browser, not on the server")
    for key in ("inputs", "state"):
        declared = [(d["id"], d["property"]) for d in spec.get(key) or []]
        _check_dependencies(key, declared, body.get(key, []), exact=True)
    single = not isinstance(spec["output"], list)
    outputs = [spec["output"]] if single else spec["output"]
    declared = [(d["id"], d["property"]) for d in (o.to_dict() for o in outputs)]
    _check_dependencies("outputs", declared, [body.get("outputs")] if single else body.get("outputs"), exact=False)
    _check_changed(body.get("changedPropIds", []), body.get("inputs", []))


def _check_dependencies(key: str, declared: list[tuple[str, str]], given: Any, exact: bool) -> None:
    if not isinstance(given, list) or len(given) != len(declared):
        count = f"{len(declared)} entr{'y' if len(declared) == 1 else 'ies'}"
        raise BadInput(f"{key}: expected {count}, as the callback declares")
    for index, ((component_id, prop), entry) in enumerate(zip(declared, given)):
        _check_dependency(f"{key}[{index}]", component_id, prop, entry, exact)


def _check_changed(changed: Any, inputs: list[Any]) -> None:
    """Each changed property must be one of the inputs sent: Dash looks their values up by it."""
    if not isinstance(changed, list):
        raise BadInput("changedPropIds: expected a list of the inputs that changed")
    known = {f"{stringify_id(entry['id'])}.{entry['property']}" for entry in _entries(inputs)}
    for prop in changed:
        if not isinstance(prop, str) or prop not in known:
            raise BadInput(f"changedPropIds: {str(prop)[:200]!r} is not one of the request's inputs")


def _entries(given: list[Any]) -> list[dict[str, Any]]:
    return [entry for item in given for entry in (item if isinstance(item, list) else [item])]


def _check_dependency(where: str, declared_id: str, prop: str, given: Any, exact: bool) -> None:
    """One input, state or output entry: the declared id (a pattern matches a list of them) and property."""
    pattern = json.loads(declared_id) if declared_id.startswith("{") else None
    many = pattern is not None and any(v in WILDCARDS_OF_MANY for v in pattern.values())
    entries = given if many else [given]
    if many and not isinstance(given, list):
        raise BadInput(f"{where}: expected a list of the components matching {declared_id}")
    for entry in entries:
        if not isinstance(entry, dict):
            raise BadInput(f"{where}: expected an object with id and property")
        name = entry.get("property")
        if not isinstance(name, str) or (name if exact else name.split("@")[0]) != prop:
            raise BadInput(f"{where}: expected property {prop!r}")
        if not _id_matches(entry.get("id"), declared_id, pattern):
            raise BadInput(f"{where}: expected the id {declared_id}")


def _id_matches(given: Any, declared_id: str, pattern: dict[str, Any] | None) -> bool:
    if pattern is None:
        return given == declared_id
    if not isinstance(given, dict) or given.keys() != pattern.keys():
        return False
    for key, want in pattern.items():
        value = given[key]
        if isinstance(want, list):  # a wildcard: any one plain value
            if not isinstance(value, (str, int, float, bool)):
                return False
        elif value != want:
            return False
    return True
