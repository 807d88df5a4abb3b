"""Responses for the large metric payloads: serialised in Rust without response validation (the store
guarantees their shape), whole or streamed an item at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import Response
from fastapi.responses import StreamingResponse
from pydantic_core import to_json


def fast_json(payload: Any) -> Response:
    """Serialise in Rust and skip response validation: for the large metric payloads, whose
    shape the store guarantees. Non-finite numbers become null, as JSON has no NaN."""
    return Response(to_json(payload, inf_nan_mode="null"), media_type="application/json")


def streamed_json(field: str, items: Iterable[Any]) -> StreamingResponse:
    """``{field: [items...]}`` serialised an item at a time as the items are produced, so the largest
    answers (a comparison of many runs) never sit whole in the server's memory. Non-finite numbers
    become null, as in :func:`fast_json`."""

    def chunks() -> Iterator[bytes]:
        yield b'{"' + field.encode() + b'":['
        for index, item in enumerate(items):
            yield (b"," if index else b"") + to_json(item, inf_nan_mode="null")
        yield b"]}"

    return StreamingResponse(chunks(), media_type="application/json")
