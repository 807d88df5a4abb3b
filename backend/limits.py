"""Caps on what one request may carry, so it cannot exhaust the server's memory or CPU: body size and list length."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from backend.errors import invalid

MAX_LIST_ITEMS = 500


def csv_items(value: str | None, field: str, limit: int = MAX_LIST_ITEMS) -> list[str] | None:
    """The comma-separated items of a query parameter, or None when it is empty; a 422 naming the
    parameter and the limit beyond ``limit`` items. Linear in the text's length."""
    if not value:
        return None
    items = [part.strip() for part in value.split(",") if part.strip()]
    if len(items) > limit:
        raise invalid("query", field, f"at most {limit} comma-separated items, got {len(items)}")
    return items or None


def too_large_detail(max_bytes: int) -> str:
    return f"request body larger than {max_bytes} bytes (ARMSCOPE_MAX_BODY_BYTES)"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` as the body streams past the limit. An HTTPException, because FastAPI
    turns any other exception raised while it reads a body into a 400 "error parsing the body"."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, too_large_detail(max_bytes))


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, by Content-Length or as it streams."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = JSONResponse({"detail": too_large_detail(self.max_bytes)}, status_code=413)
        await response(scope, receive, send)
