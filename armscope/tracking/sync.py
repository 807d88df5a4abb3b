"""``armscope sync``: upload spooled runs (offline ones, or ones whose server was gone) to a server.

Every request is one the server may receive twice without change (the run is found by its key, each
epoch's record is merged key by key), so a sync cut short is simply run again, and a second sync of
the same spool changes nothing. A run already wholly on this server is skipped without a request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from armscope.client import Client
from armscope.tracking.spool import BadLine, Spool

BATCH = 500


@dataclass
class Synced:
    """What one run's sync did."""

    folder: str
    run_id: int | None = None
    sent: int = 0
    skipped: str | None = None
    ended: str | None = None
    bad_lines: list[BadLine] = field(default_factory=list)


Progress = Callable[[int, int], None]


def sync_spool(client: Client, spool: Spool, progress: Progress | None = None) -> Synced:
    """Upload one run's spool: the run, its records in order, and how it ended.

    A run whose process still writes it (on this host) is left for later; one whose process died without
    saying how it ended is ended ``crashed``.
    """
    result = Synced(str(spool.folder))
    records, result.bad_lines = spool.records()
    end = spool.end()
    done = spool.uploaded()
    if done.get("url") == client.url and done.get("ended") and done.get("lines") == len(records) + len(result.bad_lines):
        result.run_id, result.skipped = done.get("run_id"), "already on this server"
        return result
    if end is None and spool.writer_alive():
        result.skipped = "its script is still running; sync it once it ends"
        return result
    spec = {k: v for k, v in spool.run().items() if k not in ("pid", "host", "created")}
    key = spec["key"]
    run = client.start_external(spec)
    result.run_id = int(run["id"])
    for start in range(0, len(records), BATCH):
        client.log_external(result.run_id, key, records[start:start + BATCH])
        result.sent = min(start + BATCH, len(records))
        if progress is not None:
            progress(result.sent, len(records))
    status, error = (end["status"], end.get("error")) if end else ("crashed", "the script stopped without ending the run")
    client.end_external(result.run_id, key, status, error)
    result.ended = status
    spool.mark_uploaded(client.url, result.run_id, len(records) + len(result.bad_lines), ended=True)
    return result
