"""``armscope.init``: log from any training loop to an armscope server, as an external run.

``log`` checks the values, appends them to the run's spool and hands them to a background thread,
then returns: the loop never waits for the network. With no server (``mode="offline"``, or none
answering at ``init``) the spool is all there is, and ``armscope sync`` uploads it later.
"""

from __future__ import annotations

import atexit
import logging
import math
import shutil
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from armscope.client import Client, ClientError
from armscope.environment import script_environment
from armscope.metrics import LOGGED_KEY, MAX_LOGGED_TEXT
from armscope.tracking.spool import Spool, spool_root
from armscope.tracking.uploader import Uploader

log = logging.getLogger("armscope.tracking")

Mode = Literal["online", "offline"]
REACH_TIMEOUT = 5.0


class LogError(ValueError):
    """A value ``log`` cannot store, named by its key; nothing of that call was kept."""


def metric_value(key: str, value: Any) -> float | int | str | None:
    """A loggable value: a number (a tensor or numpy scalar too), a short text; None and non-finite numbers
    mean "not measured" and are left out."""
    if not LOGGED_KEY.match(key):
        raise LogError(f"metric key {key!r}: a key starts with a letter and holds letters, digits and _ . / : - "
                       "(200 characters at most)")
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, RuntimeError) as exc:
            raise LogError(f"metric {key!r}: only a single number can be logged, not an array ({exc})") from None
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        if len(value) > MAX_LOGGED_TEXT:
            raise LogError(f"metric {key!r}: a text value holds at most {MAX_LOGGED_TEXT} characters, got {len(value)}")
        return value
    raise LogError(f"metric {key!r}: a value is a number or a short text, got {type(value).__name__}")


def json_config(config: Mapping[str, Any] | Any) -> dict[str, Any]:
    """The config as plain JSON: a dataclass, a pydantic model, an argparse namespace or a mapping; what JSON
    cannot hold is written as text, so a config never stops a run from starting."""
    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    elif hasattr(config, "__dataclass_fields__"):
        import dataclasses

        config = dataclasses.asdict(config)
    elif not isinstance(config, Mapping) and hasattr(config, "__dict__"):
        config = vars(config)
    return {str(k): _jsonable(v) for k, v in dict(config).items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class Run:
    """One external run: ``log`` per epoch, ``should_stop`` when the dashboard asked to cancel, and an end.

    Use it as a context manager: leaving the ``with`` normally ends it succeeded (cancelled after a cancel
    was asked), by an exception ends it failed with the error. Without ``with``, call :meth:`finish`.
    """

    def __init__(self, spool: Spool, client: Client | None, run_id: int | None, *, flush_timeout: float,
                 flush_seconds: float, heartbeat_seconds: float) -> None:
        self.spool, self.client, self.id = spool, client, run_id
        self.key = spool.key
        self.flush_timeout = flush_timeout
        self._started = time.monotonic()
        self._epoch = 0
        self._lines = 0
        self._stop = threading.Event()
        self.finished: str | None = None
        self.uploader: Uploader | None = None
        if client is not None and run_id is not None:
            self.uploader = Uploader(
                client, run_id, self.key, flush_seconds=flush_seconds, heartbeat_seconds=heartbeat_seconds,
                on_sent=self.spool.sync_to_disk, on_stop=self._stop.set,
            )
            self.uploader.start()
        atexit.register(self._at_exit)

    @property
    def offline(self) -> bool:
        return self.uploader is None

    @property
    def should_stop(self) -> bool:
        """True once someone cancelled this run in the dashboard or the API (seen at the next heartbeat)."""
        return self._stop.is_set()

    @property
    def url(self) -> str | None:
        """The run's page in the dashboard, once the server knows it."""
        return f"{self.client.url}/runs/{self.id}" if self.client is not None and self.id is not None else None

    def log(self, metrics: Mapping[str, Any], epoch: int | None = None) -> None:
        """Record ``metrics`` for ``epoch`` (default: one past the highest epoch logged so far); keys logged
        again for an epoch replace their values, other keys of that epoch stay. Returns at once."""
        if self.finished:
            raise RuntimeError(f"run {self.key} has ended ({self.finished}); start another with armscope.init")
        if epoch is None:
            epoch = self._epoch + 1
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise LogError(f"epoch must be an integer >= 0, got {epoch!r}")
        record: dict[str, Any] = {"epoch": epoch}
        for key, value in metrics.items():
            if key == "epoch":
                continue
            checked = metric_value(str(key), value)
            if checked is not None:
                record[str(key)] = checked
        record.setdefault("elapsed_seconds", round(time.monotonic() - self._started, 3))
        self._epoch = max(self._epoch, epoch)
        line = self.spool.append(record)
        self._lines += 1
        if self.uploader is not None:
            self.uploader.add(line)

    def finish(self, status: str = "succeeded", error: str | None = None) -> None:
        """End the run: the spool says how, and the rest of the records and the end go to the server, waiting
        at most ``flush_timeout`` seconds; what did not get there is left for ``armscope sync``."""
        if self.finished:
            return
        if status == "succeeded" and self.should_stop:
            status = "cancelled"
        self.finished = status
        atexit.unregister(self._at_exit)  # an ended run needs no flush at exit, nor to be kept alive until then
        self.spool.mark_end(status, error)
        self.spool.sync_to_disk()
        self.spool.close()
        if self.uploader is None:
            _tell(f"armscope: run {self.key} kept offline in {self.spool.folder}; upload it with "
                  f"`armscope sync {self.spool.folder}`")
            return
        assert self.client is not None and self.id is not None
        if self.uploader.close(status, error, self.flush_timeout):
            self.spool.mark_uploaded(self.client.url, self.id, self._lines, ended=True)
        else:
            _tell(f"armscope: run {self.id} could not be fully uploaded ({self.uploader.gave_up or 'no server'}); "
                  f"everything is in {self.spool.folder}: `armscope sync {self.spool.folder}` sends the rest")

    def _at_exit(self) -> None:
        """The script ended without ``with`` or ``finish``: its records still go up (the run will be marked crashed
        when its heartbeat stops, since nothing says how it ended)."""
        if not self.finished and self.uploader is not None:
            deadline = time.monotonic() + self.flush_timeout
            while self.uploader.pending and self.uploader.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            self.finish("succeeded")
        else:
            error = "".join(traceback.format_exception(kind, exc, tb)[-20:])
            self.finish("failed", error)


def _tell(message: str) -> None:
    print(message, file=sys.stderr)


def init(
    name: str | None = None,
    config: Mapping[str, Any] | Any | None = None,
    *,
    tags: Iterable[str] = (),
    modalities: Iterable[str] = (),
    dataset: str = "external",
    seed: int = 0,
    epochs: int = 0,
    notes: str = "",
    project: str | None = None,
    url: str | None = None,
    token: str | None = None,
    mode: Mode = "online",
    spool_dir: str | Path | None = None,
    flush_timeout: float = 30.0,
    flush_seconds: float = 0.5,
    heartbeat_seconds: float = 5.0,
) -> Run:
    """Start an external run (in ``project``, a name grouping the runs of one study, when given). The server comes
    from ``url`` / ``$ARMSCOPE_URL``, the token from ``token`` / ``$ARMSCOPE_API_TOKEN``. A server that cannot be reached makes the run offline (said on stderr); one that
    refuses it (a wrong token, a bad config) raises :class:`armscope.client.ClientError`."""
    if mode not in ("online", "offline"):
        raise ValueError(f"mode must be 'online' or 'offline', got {mode!r}")
    key = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}"
    spec = {
        "key": key, "name": name or key, "config": json_config(config or {}), "modalities": list(modalities),
        "dataset": dataset, "seed": seed, "epochs": epochs, "tags": list(tags), "notes": notes,
        "environment": script_environment(),  # the run page's Environment: this process, its script's commit
    }
    if project is not None:
        spec["project"] = project  # checked by the server: a bad name is refused there, naming the field
    spool = Spool.create(Path(spool_dir) if spool_dir else spool_root() / key, spec)
    client, run_id = None, None
    if mode == "online":
        client = Client(url, token, timeout=REACH_TIMEOUT)
        try:
            run_id = int(client.start_external(spec)["id"])
        except ClientError as exc:
            if exc.status_code is not None:
                client.close()
                shutil.rmtree(spool.folder, ignore_errors=True)  # nothing was logged to it yet
                raise
            _tell(f"armscope: no server answered at {client.url}; the run is kept offline in {spool.folder} "
                  f"(`armscope sync {spool.folder}` uploads it later)")
            client.close()
            client = None
        else:
            spool.mark_uploaded(client.url, run_id, 0, ended=False)
    return Run(spool, client, run_id, flush_timeout=flush_timeout, flush_seconds=flush_seconds,
               heartbeat_seconds=heartbeat_seconds)
