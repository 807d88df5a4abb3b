"""What the API accepts as input: only text and numbers that both databases can store and JSON can carry.

FastAPI parses bodies with Python's ``json``, which accepts ``NaN``, ``Infinity``, numbers that overflow
to infinity and lone surrogates, and recurses once per nesting level; PostgreSQL refuses NUL characters
in text and JSONB. Each of these ended in a 500 (or a reset connection) somewhere after validation.
Routes built with :class:`StrictRoute` refuse them up front with a 422 naming where the value was.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

from backend.errors import rejected

Loc = tuple[str | int, ...]

NUL_MESSAGE = "must not contain NUL characters (\\u0000): the database cannot store them"
NOT_FINITE_MESSAGE = "must be a finite number: JSON has no NaN or Infinity, and numbers beyond ±1.8e308 overflow"


def problem_in(value: Any, loc: Loc) -> tuple[Loc, str] | None:
    """The first place in parsed JSON holding a NUL character or a non-finite number, and what is wrong there.

    Iterative, so its cost is linear in the document's size whatever its depth.
    """
    pending: list[tuple[Any, Loc]] = [(value, loc)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where, f"text {NUL_MESSAGE}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, NOT_FINITE_MESSAGE
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return where, f"keys {NUL_MESSAGE}"
                pending.append((child, (*where, key)))
        elif isinstance(item, list):
            pending.extend((child, (*where, i)) for i, child in enumerate(item))
    return None


def parse_json_body(body: bytes) -> Any:
    """The body as JSON, or a 422 saying why it is not JSON this service accepts.

    pydantic-core's parser refuses lone surrogates and nesting deeper than 200 levels in linear time,
    without recursing in Python; non-finite numbers are let through it only to be named by location.
    """
    try:
        value = from_json(body, allow_inf_nan=True)
    except ValueError as exc:
        unicode = "hex escape" in str(exc) or "code point" in str(exc)
        hint = " (text must be valid Unicode: no lone surrogates, no invalid UTF-8)" if unicode else ""
        raise rejected(("body",), f"the body is not valid JSON: {exc}{hint}", "json_invalid") from None
    found = problem_in(value, ("body",))
    if found is not None:
        raise rejected(*found)
    return value


def check_query(request: Request) -> None:
    """A 422 for a query parameter holding a NUL character, naming the parameter."""
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise rejected(("query", name), f"query parameters {NUL_MESSAGE}")


class StrictRequest(Request):
    """A request whose ``json()``, the one FastAPI calls for a JSON body, is :func:`parse_json_body`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json_body(await self.body())
        return self._json


class StrictRoute(APIRoute):
    """An API route that refuses, as a 422, input the databases or JSON cannot hold (see the module)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            check_query(request)
            return await handle(StrictRequest(request.scope, request.receive))

        return strict_handler
