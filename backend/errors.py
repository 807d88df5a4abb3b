"""Error bodies: one shape per status, declared in the OpenAPI document so clients can rely on it, and
the service's domain errors mapped onto them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service.errors import Conflict, InvalidInput, NotFound, QueueUnavailable


class ErrorOut(BaseModel):
    detail: str


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


def input_location(request: Request) -> str:
    """Where a use case's input came from: the query string of a GET, else the body (path
    parameters are checked by FastAPI before any use case runs)."""
    return "query" if request.method in ("GET", "HEAD") else "body"


def install_handlers(app: FastAPI) -> None:
    """The service's refusals as HTTP: 422, 404, 409 and 503, each in the shape declared for it."""

    @app.exception_handler(InvalidInput)
    async def invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
        where = input_location(request)
        detail = [{"loc": [where, *p["loc"]], "msg": p["msg"], "type": p["type"]} for p in exc.problems]
        return JSONResponse({"detail": detail}, status_code=422)

    for kind, status in ((NotFound, 404), (Conflict, 409), (QueueUnavailable, 503)):
        app.add_exception_handler(kind, _plain(status))


def _plain(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handle
