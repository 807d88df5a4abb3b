"""What a use case refuses, in the service's words. Each face says it its own way: the API as
422/404/409/503, the dashboard as a message on the page, the command line as an exit code."""

from __future__ import annotations

from typing import TypedDict


class Problem(TypedDict):
    """One thing wrong with a use case's input: where (a path into that input), what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ServiceError(Exception):
    """A refusal to show the user; any other exception is a bug."""


class InvalidInput(ServiceError):
    """Input a use case cannot act on; ``problems`` locate each fault within that input."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(
            f"{'.'.join(map(str, p['loc']))}: {p['msg']}" if p["loc"] else p["msg"] for p in problems
        ))

    @classmethod
    def at(cls, field: str, message: str) -> InvalidInput:
        """One problem with the input named ``field``."""
        return cls([{"loc": [field], "msg": message, "type": "value_error"}])


class InvalidConfig(InvalidInput):
    """A run config, or a sweep of them, that does not validate."""


class NotFound(ServiceError):
    """No such run (or no such file of a run)."""


class Conflict(ServiceError):
    """Not allowed in the run's current status."""


class QueueUnavailable(ServiceError):
    """The task queue did not take a run's message."""
