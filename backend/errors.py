"""Error bodies: one shape per status, declared in the OpenAPI document so clients can rely on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException, Response
from pydantic import BaseModel
from pydantic_core import to_json


class ErrorOut(BaseModel):
    detail: str


def fast_json(payload: Any) -> Response:
    """Serialise in Rust and skip response validation: for the large metric payloads, whose
    shape the store guarantees. Non-finite numbers become null, as JSON has no NaN."""
    return Response(to_json(payload, inf_nan_mode="null"), media_type="application/json")


def invalid(location: str, field: str, message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming where the bad value was."""
    return rejected((location, field), message)


def rejected(loc: Sequence[str | int], message: str, kind: str = "value_error") -> HTTPException:
    """A 422 like :func:`invalid`, for a value anywhere in a body: ``loc`` is its path, e.g. ``("body", "tags", 0)``."""
    return HTTPException(422, [{"loc": list(loc), "msg": message, "type": kind}])


def described(*codes: int) -> dict[int | str, dict[str, Any]]:
    texts = {
        400: "The body could not be parsed",
        401: "Missing or invalid token",
        403: "The token may only read",
        404: "No such run",
        409: "Not allowed in the run's current status",
        413: "Request body too large",
        429: "Too many wrong tokens from this address in the last minute; retry after Retry-After seconds",
        503: "The task queue is not reachable; nothing was stored",
    }
    return {code: {"model": ErrorOut, "description": texts[code]} for code in codes}
