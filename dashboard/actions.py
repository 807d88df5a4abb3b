"""What the dashboard does to runs, through the service's use cases (the very ones the REST API calls)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from armscope.config import RunConfig
from dashboard.context import Context
from dashboard.inputs import MAX_IDS, BadInput, TooManyRuns
from service import runs, sweeps
from service.access import COOKIE
from service.errors import Conflict, InvalidInput, NotFound, QueueUnavailable, ServiceError
from service.sweeps import SweepSpec


class ActionError(Exception):
    """A refusal to show the user as is (validation, queue down, illegal transition)."""


def describe(exc: ServiceError) -> str:
    """Readable text for a refusal: each problem of invalid input by its field (within the config), else the message."""
    if isinstance(exc, InvalidInput):
        parts = []
        for problem in exc.problems:
            loc = [str(p) for p in problem["loc"] if p != "config"]
            parts.append(f"{'.'.join(loc)}: {problem['msg']}" if loc else problem["msg"])
        return "; ".join(parts)
    return str(exc)


READ_ONLY = "This session may only read: log in with ARMSCOPE_API_TOKEN to launch or change runs."


def may_write(ctx: Context) -> bool:
    """Whether the browser behind this request may change runs, by the rule the API applies
    (service.access). Outside a request (tests), or outside a server, everything is allowed."""
    if ctx.access is None:
        return True
    import flask

    if not flask.has_request_context():
        return True
    return ctx.access.may_write(flask.request.cookies.get(COOKIE))


def _check_write(ctx: Context) -> None:
    if not may_write(ctx):
        raise ActionError(READ_ONLY)


def launch_run(ctx: Context, config: RunConfig) -> dict[str, Any]:
    _check_write(ctx)
    try:
        return runs.submit(ctx.store, ctx.queue, config)
    except ServiceError as exc:
        raise ActionError(describe(exc)) from None


def launch_sweep(ctx: Context, sweep: SweepSpec) -> dict[str, Any]:
    _check_write(ctx)
    try:
        return sweeps.submit(ctx.store, ctx.queue, sweep)
    except ServiceError as exc:
        raise ActionError(describe(exc)) from None


def launch_demo(ctx: Context) -> dict[str, Any]:
    return launch_sweep(ctx, sweeps.demo())


def _each(ids: Sequence[int], act: Callable[[int], Any]) -> tuple[list[int], list[str]]:
    done, problems = [], []
    for run_id in ids:
        try:
            act(int(run_id))
            done.append(int(run_id))
        except (NotFound, Conflict) as exc:  # their messages name the run
            problems.append(str(exc))
        except QueueUnavailable as exc:
            problems.append(f"run {run_id}: {exc}")
    return done, problems


def cancel(ctx: Context, ids: Sequence[int]) -> tuple[list[int], list[str]]:
    return _each(ids, lambda i: runs.cancel(ctx.store, i))


def retry(ctx: Context, ids: Sequence[int]) -> tuple[list[int], list[str]]:
    return _each(ids, lambda i: runs.retry(ctx.store, ctx.queue, i))


def delete(ctx: Context, ids: Sequence[int]) -> tuple[list[int], list[str]]:
    return _each(ids, lambda i: runs.delete(ctx.store, ctx.settings, i))


ACTIONS = {"cancel": cancel, "retry": retry, "delete": delete}
PAST = {"cancel": "Cancelled", "retry": "Re-queued", "delete": "Deleted"}


def perform(ctx: Context, action: str, ids: Sequence[int]) -> tuple[str, str]:
    """Run ``action`` on every id; returns (Bootstrap colour, message) for an alert.

    At most MAX_IDS runs at once: each is a transaction, so a longer list is refused whole, before
    any is touched, rather than holding a server thread for minutes.
    """
    if action not in ACTIONS:
        raise BadInput(f"action: unknown action {action[:40]!r}; expected one of {', '.join(ACTIONS)}")
    if not may_write(ctx):
        return "danger", READ_ONLY
    if len(ids) > MAX_IDS:
        return "danger", str(TooManyRuns(len(ids), MAX_IDS, "per action"))
    done, problems = ACTIONS[action](ctx, ids)
    parts = []
    if done:
        parts.append(
            f"{PAST[action]} {len(done)} run{'s' if len(done) != 1 else ''}: " + ", ".join(f"#{i}" for i in done) + "."
        )
    parts += problems
    color = "success" if not problems else ("warning" if done else "danger")
    return color, " ".join(parts) or "Nothing selected."

