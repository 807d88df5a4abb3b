"""What the dashboard does to runs, through the very functions the REST API uses (never raw SQL)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from fastapi import HTTPException

from armscope.config import RunConfig
from backend.auth import COOKIE
from backend.routes import runs as run_routes
from backend.routes.sweeps import submit_sweep
from backend.schemas import SweepIn
from backend.store import IllegalTransition, RunNotFound
from dashboard.context import Context
from dashboard.inputs import MAX_IDS, BadInput, TooManyRuns

DEMO_SWEEP = SweepIn(
    config={"dataset": "synthetic-shift", "epochs": 10},
    methods=["arm", "baseline", "ogm-ge"],
    seeds=[0, 1, 2],
    name="demo: arm vs baseline vs ogm-ge",
)


class ActionError(Exception):
    """A refusal to show the user as is (validation, queue down, illegal transition)."""


def describe(detail: Any) -> str:
    """Readable text for an HTTPException detail (a string, or pydantic-style error dicts)."""
    if isinstance(detail, list):
        parts = []
        for err in detail:
            loc = [str(p) for p in err.get("loc", []) if p not in ("body", "config")]
            parts.append(f"{'.'.join(loc)}: {err.get('msg')}" if loc else str(err.get("msg")))
        return "; ".join(parts)
    return str(detail)


READ_ONLY = "This session may only read: log in with ARMSCOPE_API_TOKEN to launch or change runs."


def may_write(ctx: Context) -> bool:
    """Whether the browser behind this request may change runs.

    The dashboard acts through the store, not through the API's routes, so it applies the API's
    rule itself: with token auth on (``app.state.auth``), only a write session may launch, cancel,
    retry or delete. Without auth (a laptop), or outside a request (tests), everything is allowed.
    """
    auth = getattr(ctx.app_state, "auth", None)
    if auth is None or not getattr(auth, "enabled", False):
        return True
    import flask

    if not flask.has_request_context():
        return True
    return auth.role_of_cookie(flask.request.cookies.get(COOKIE)) == "write"


def _check_write(ctx: Context) -> None:
    if not may_write(ctx):
        raise ActionError(READ_ONLY)


def launch_run(ctx: Context, config: RunConfig) -> dict[str, Any]:
    _check_write(ctx)
    try:
        return run_routes.submit(ctx.store, ctx.queue, config)
    except HTTPException as exc:
        raise ActionError(describe(exc.detail)) from None


def launch_sweep(ctx: Context, sweep: SweepIn) -> dict[str, Any]:
    _check_write(ctx)
    try:
        return submit_sweep(ctx.store, ctx.queue, sweep)
    except HTTPException as exc:
        raise ActionError(describe(exc.detail)) from None


def launch_demo(ctx: Context) -> dict[str, Any]:
    return launch_sweep(ctx, DEMO_SWEEP)


def _each(ids: Sequence[int], act: Callable[[int], Any]) -> tuple[list[int], list[str]]:
    done, problems = [], []
    for run_id in ids:
        try:
            act(int(run_id))
            done.append(int(run_id))
        except (RunNotFound, IllegalTransition) as exc:
            problems.append(str(exc))
        except HTTPException as exc:
            problems.append(f"run {run_id}: {describe(exc.detail)}")
        except Exception as exc:  # the queue may be down: say so instead of failing the page
            problems.append(f"run {run_id}: {exc}")
    return done, problems


def cancel(ctx: Context, ids: Sequence[int]) -> tuple[list[int], list[str]]:
    return _each(ids, lambda i: run_routes.cancel_run(i, store=ctx.store))


def retry(ctx: Context, ids: Sequence[int]) -> tuple[list[int], list[str]]:
    return _each(ids, lambda i: run_routes.retry_run(i, store=ctx.store, queue=ctx.queue))


def delete(ctx: Context, ids: Sequence[int]) -> tuple[list[int], list[str]]:
    return _each(ids, lambda i: run_routes.delete_run(i, store=ctx.store, settings=ctx.settings))


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
