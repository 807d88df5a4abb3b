"""Use cases of the workspace: named views of the dashboard's pages, and the runs table's chosen columns.

A saved view is a page and its URL query. Opening one is following a link, so whatever a page's URL can
say a view keeps, and a view saved before a page learnt a new parameter still opens.

A column of the runs table is a config field by its dotted key (``lr``, ``method_options.alpha``) or a
metric's last or best value (``last:val_acc``, ``best:shapley.audio``). The values of a page of runs
take two queries whatever the page's size: its runs' last records, and one aggregate for the best values.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from armscope.metrics import declared_order
from service.catalog import all_metrics
from service.db.store import Store
from service.errors import InvalidInput
from service.seed_sets import flatten, lower_is_better, number

# The pages that have saved views, and where each lives.
PAGES = {"compare": "/compare", "runs": "/"}
MAX_NAME = 200  # the column's size
MAX_QUERY = 4000  # a compare view of MAX_COMPARED runs with several charts fits in well under this
MAX_COLUMNS = 12
MAX_PROBLEMS = 5  # what a page names of a link's bad columns
# A column's key: what config fields and metric keys are made of. A double quote would end the JSON path
# the store reads a best value at, so it is refused here with every other character a key never holds.
KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")
KINDS = ("last", "best")
# Config fields every run has a column for already, or that are no experiment's parameter.
SHOWN_ALREADY = frozenset({"name", "method", "dataset", "seed", "tags", "project"})


# -- saved views ------------------------------------------------------------------------------


def views(store: Store, page: str | None = None) -> list[dict[str, Any]]:
    """The saved views of ``page`` (every page's when None) by name, each with the link that opens it."""
    if page is not None:
        _check_page(page)
    return [with_href(v) for v in store.saved_views(page)]


def save(store: Store, page: str, name: str, query: str) -> dict[str, Any]:
    """Save ``query`` (a page's URL query, with or without its ``?``) as ``name``, unique on ``page``.

    The name is trimmed; an empty, over-long or control-character name, an unknown page or a query too
    long for a link is :class:`InvalidInput`; a taken name is a Conflict naming it.
    """
    _check_page(page)
    name = " ".join((name or "").split())
    if not name:
        raise InvalidInput.at("name", "give the view a name")
    if len(name) > MAX_NAME:
        raise InvalidInput.at("name", f"at most {MAX_NAME} characters ({len(name)} given)")
    query = (query or "").strip().lstrip("?")
    if len(query) > MAX_QUERY:
        raise InvalidInput.at("query", f"at most {MAX_QUERY} characters ({len(query)} given)")
    if any(ch in query for ch in "\x00\r\n#"):
        raise InvalidInput.at("query", "a URL query holds no NUL, line break or '#'")
    return with_href(store.add_saved_view(page, name, query))


def delete(store: Store, view_id: int) -> None:
    """Forget a saved view (the runs it shows are not touched); NotFound if there is no such view."""
    store.delete_saved_view(view_id)


def with_href(view: dict[str, Any]) -> dict[str, Any]:
    """The view with ``href``: its page's path and query, a link on this site whatever the query holds."""
    query = view["query"]
    return {**view, "href": PAGES[view["page"]] + (f"?{query}" if query else "")}


def _check_page(page: str) -> None:
    if page not in PAGES:
        raise InvalidInput.at("page", f"unknown page {page!r}; views are saved on: {', '.join(PAGES)}")


# -- the runs table's columns -------------------------------------------------------------------


def parse_columns(text: str | Sequence[str] | None) -> tuple[list[str], list[str]]:
    """The distinct valid columns of ``lr,last:val_acc`` (or of a list of them), in order, and a message for
    each one that is not a column: the table shows what it can and the page says what it left out."""
    parts = text.split(",") if isinstance(text, str) else list(text or [])
    columns: list[str] = []
    problems: list[str] = []
    for part in dict.fromkeys(p.strip() for p in parts):
        if not part:
            continue
        problem = column_problem(part)
        if problem:
            problems.append(problem)
        elif len(columns) == MAX_COLUMNS:
            problems.append(f"column {part[:120]!r} left out: at most {MAX_COLUMNS} columns")
        else:
            columns.append(part)
    if len(problems) > MAX_PROBLEMS:  # a link may hold thousands: the page names a few
        problems[MAX_PROBLEMS:] = [f"and {len(problems) - MAX_PROBLEMS} more columns left out"]
    return columns, problems


def column_problem(column: str) -> str | None:
    """Why ``column`` is not one (None when it is)."""
    kind, colon, key = column.rpartition(":")
    if colon and kind not in KINDS:
        return f"column {column[:120]!r}: {kind[:40]!r} is not a kind of value; use last:<metric> or best:<metric>"
    if not KEY.fullmatch(key):
        return (f"column {column[:120]!r} is not a config field (e.g. lr, method_options.alpha) or a metric's value "
                "(e.g. last:val_acc, best:shapley.audio)")
    return None


def column_label(column: str) -> str:
    """A column's header: the config field's key, or ``val_acc (last)``."""
    kind, colon, key = column.rpartition(":")
    return f"{key} ({kind})" if colon else key


def read_columns(
    store: Store, runs: Sequence[dict[str, Any]], columns: Sequence[str]
) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Each run's value in each column (absent where it has none), and the columns these runs offer. Two
    queries however many runs: their last records, and one aggregate for every ``best:`` column."""
    ids = [run["id"] for run in runs]
    lasts = store.last_records(ids)
    bests = store.best_values(ids, {c[5:]: lower_is_better(c[5:]) for c in columns if c.startswith("best:")})
    return column_values(runs, columns, lasts, bests), column_choices(runs, lasts)


def column_values(
    runs: Sequence[dict[str, Any]], columns: Sequence[str], lasts: dict[int, dict[str, Any]],
    bests: dict[int, dict[str, float]],
) -> dict[int, dict[str, Any]]:
    """Each run's value in each column: config fields from the runs themselves, ``last:`` values from their
    last records, ``best:`` values from the store's aggregate."""
    values: dict[int, dict[str, Any]] = {}
    for run in runs:
        config = flatten(run.get("config") or {}, keep_empty=False)
        sources = {"": config, "last": lasts.get(run["id"], {}), "best": bests.get(run["id"], {})}
        row: dict[str, Any] = {}
        for column in columns:
            kind, _, key = column.rpartition(":")
            value = sources.get(kind, {}).get(key)
            if value is not None and (kind == "" or number(value) is not None):
                row[column] = value
        values[run["id"]] = row
    return values


def column_choices(runs: Sequence[dict[str, Any]], lasts: dict[int, dict[str, Any]]) -> list[str]:
    """What the table can show for these runs: their config fields (but those it has columns for already),
    then the last and best value of every number their last records hold, in the metrics' declared order."""
    fields: dict[str, None] = {}
    for run in runs:
        fields.update(dict.fromkeys(flatten(run.get("config") or {}, keep_empty=False)))
    config = sorted(k for k in fields if k not in SHOWN_ALREADY and KEY.fullmatch(k))
    keys: dict[str, None] = {}
    for record in lasts.values():
        keys.update(dict.fromkeys(k for k, v in record.items() if k != "epoch" and number(v) is not None))
    metrics = declared_order([k for k in keys if KEY.fullmatch(k)], all_metrics())
    return config + [f"{kind}:{key}" for key in metrics for kind in KINDS]
