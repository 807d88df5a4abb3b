"""What the dashboard accepts from a browser: every callback argument is untrusted, whoever sent it.

A page's stores (the selection, the pending action, the run's cursor) live in the browser, so a
crafted request can put anything there. Callbacks declare what they accept with type hints and
:func:`checked` holds them to it; a refusal is :class:`BadInput`, which the endpoint answers with
400 and the message (see :mod:`dashboard.guard`). Lists of run ids are bounded and read in linear
time, so no request costs more than its size.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from typing import Annotated, Any, Callable, TypeVar, get_type_hints

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict  # pydantic reads typing's TypedDict only from 3.12

from service.runs import MAX_RUN_ID

MAX_IDS = 500  # runs one request may act on (cancel, retry, delete, select)
MAX_TEXT = 200  # characters of a search box, a tag filter or a metric name
MAX_DEPTH = 64  # nesting of a callback request's JSON; the pages' own requests need about 6

RunId = Annotated[int, Field(strict=True, ge=1, le=MAX_RUN_ID)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_RUN_ID)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Selection = Annotated[list[RunId], Field(max_length=MAX_IDS)]

F = TypeVar("F", bound=Callable[..., Any])


class BadInput(ValueError):
    """A request the dashboard refuses, with a message for whoever sent it (answered with 400)."""


class TooManyRuns(ValueError):
    """More run ids than one view or action takes; shown on the page rather than refused outright."""

    def __init__(self, given: int, limit: int, what: str) -> None:
        super().__init__(f"Too many runs (at most {limit} {what}): {given} given.")
        self.given, self.limit = given, limit


class Pending(TypedDict):
    """The action a confirmation dialog is waiting to perform (held by the page until 'Yes')."""

    action: str
    ids: list[RunId]  # bounded by actions.perform, which says so on the page


class Paging(TypedDict):
    cursors: list[str | None]
    index: Count
    next: str | None


class Cursor(TypedDict):
    epoch: NotRequired[Count | None]
    event: NotRequired[Count | None]
    attempt: NotRequired[Count | None]
    state: NotRequired[str | None]


class Event(TypedDict):
    id: NotRequired[Count]
    epoch: NotRequired[Count | None]
    step: NotRequired[Count | None]
    kind: NotRequired[str | None]
    level: NotRequired[str | None]
    message: NotRequired[str | None]
    time: NotRequired[str | None]
    data: NotRequired[Any]


class Option(TypedDict):
    label: str
    value: RunId


def _record(record: dict[str, Any]) -> dict[str, Any]:
    epoch = record.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_RUN_ID:
        raise ValueError("epoch: expected a whole number of epochs")
    if not isinstance(record.get("dominant"), (str, type(None))):
        raise ValueError("dominant: expected a modality name")
    return record


Record = Annotated[dict[str, Any], AfterValidator(_record)]


def checked(func: F) -> F:
    """Hold a callback's arguments to its type hints before it runs; a mismatch is :class:`BadInput`
    naming the argument, instead of an exception deep in the page's code (a 500)."""
    names = list(inspect.signature(func).parameters)
    hints = get_type_hints(func, include_extras=True)
    adapter = TypeAdapter(tuple[tuple(hints.get(name, Any) for name in names)])  # type: ignore[misc]

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        try:
            values = adapter.validate_python(tuple(args))
        except ValidationError as exc:
            raise BadInput(describe(exc, names)) from None
        return func(*values)

    return wrapper  # type: ignore[return-value]


def describe(exc: ValidationError, names: list[str]) -> str:
    """'runs[3]: Input should be a valid integer; ...' for the first few errors."""
    parts = []
    for error in exc.errors()[:5]:
        loc = list(error["loc"])
        where = names[loc.pop(0)] if loc and isinstance(loc[0], int) and loc[0] < len(names) else "input"
        where += "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def check(adapter: TypeAdapter[Any], value: Any, name: str) -> Any:
    """``value`` validated by ``adapter``, or :class:`BadInput` naming ``name``."""
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise BadInput(describe(exc, [name])) from None


RUN_IDS: TypeAdapter[list[int]] = TypeAdapter(list[RunId])


def id_from_text(text: str | None) -> int | None:
    """A run or sweep id from a query string (``?sweep=3``), or None for anything that is not one."""
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_RUN_ID)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_RUN_ID else None


def ids_from_csv(text: str | None, limit: int, what: str) -> list[int]:
    """The distinct run ids of ``1,2,3`` in order, skipping what is not one; :class:`TooManyRuns`
    beyond ``limit``. One pass over the text: a link with 100,000 ids costs milliseconds."""
    distinct = dict.fromkeys(part.strip() for part in (text or "").split(","))
    ids = list(dict.fromkeys(i for i in map(id_from_text, distinct) if i is not None))
    if len(ids) > limit:
        raise TooManyRuns(len(ids), limit, what)
    return ids


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large for a 64-bit float")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def strict_loads(text: str | bytes) -> Any:
    """JSON as the standard defines it: no NaN or Infinity, numbers a float can hold, strings free of
    NUL and lone surrogates, at most MAX_DEPTH levels deep; ValueError naming the problem otherwise."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    _check_tree(value)
    return value


def _check_tree(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _check_text(node)
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key in node:
                _check_text(key)
            node = node.values()
        stack.extend((child, depth + 1) for child in node)


def _check_text(text: str) -> None:
    if text.isascii():
        if "\x00" in text:
            raise ValueError("text may not contain NUL characters")
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text may not contain lone surrogates (\\ud800-\\udfff)") from None
    if "\x00" in text:
        raise ValueError("text may not contain NUL characters")
