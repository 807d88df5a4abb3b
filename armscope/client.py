"""Python client for the armscope REST API: what a script uses instead of the dashboard.

Deliberately light: it imports neither torch nor the engine, so a notebook on a laptop can
drive a GPU server without installing the training stack's heavy parts into its namespace.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import pandas

    from armscope.config import RunConfig

DEFAULT_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "crashed"})
DEFAULT_PAGE_SIZE = 50

# `list` is a method name below, so annotations use these aliases rather than the builtin.
Run = dict[str, Any]
Records = list[dict[str, Any]]


class ClientError(Exception):
    """A request the server refused or could not be reached for.

    ``status_code`` is None when no HTTP response came back (server down, network error),
    so callers can tell "the server said no" from "there is no server".
    """

    def __init__(self, status_code: int | None, message: str) -> None:
        super().__init__(status_code, message)
        self.status_code = status_code
        self.message = message

    def __str__(self) -> str:
        if self.status_code is None:
            return self.message
        reason = httpx.codes.get_reason_phrase(self.status_code)
        head = f"HTTP {self.status_code} {reason}".rstrip()
        if "\n" in self.message:
            return head + ":\n" + "\n".join(f"  {line}" for line in self.message.splitlines())
        return f"{head}: {self.message}"


def _detail_message(response: httpx.Response) -> str:
    """Turn the server's ``{"detail": ...}`` into one readable message, whatever its shape."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(detail, list):
        lines = []
        for err in detail:
            loc = [str(p) for p in err.get("loc", [])]
            # FastAPI prefixes body fields with "body"; RunConfig users think in field names.
            if loc[:1] == ["body"]:
                loc = loc[1:]
            lines.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', err)}")
        return "\n".join(lines)
    return str(detail) if detail is not None else response.reason_phrase


def _csv(values: str | Iterable[Any] | None) -> str | None:
    if values is None or isinstance(values, str):
        return values
    return ",".join(str(v) for v in values)


def _config_payload(config: Mapping[str, Any] | RunConfig) -> dict[str, Any]:
    # Duck-typed so that passing a plain dict never imports the engine.
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    return dict(config)


class Client:
    """A session with one armscope server.

    ``url`` defaults to ``$ARMSCOPE_URL`` and then ``http://127.0.0.1:8000``; ``token`` to
    ``$ARMSCOPE_API_TOKEN``. ``transport`` replaces the network, for tests.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("ARMSCOPE_URL") or DEFAULT_URL).rstrip("/")
        if self.url.endswith(API_PREFIX):
            self.url = self.url[: -len(API_PREFIX)]
        token = token or os.environ.get("ARMSCOPE_API_TOKEN") or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def run_url(self, run_id: int) -> str:
        return f"{self.url}{API_PREFIX}/runs/{run_id}"

    def page_url(self, run_id: int) -> str:
        """The run's page in the dashboard, where a person follows it."""
        return f"{self.url}/runs/{run_id}"

    # -- transport -------------------------------------------------------------------------

    def _transport_error(self, method: str, path: str, exc: httpx.TransportError) -> ClientError:
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return ClientError(
                None,
                f"the armscope server at {self.url} is not reachable ({exc.__class__.__name__}: {exc}). "
                "Start one with `armscope serve`, or point --url / ARMSCOPE_URL at a running server.",
            )
        return ClientError(None, f"{method} {self.url}{API_PREFIX}{path} failed: {exc.__class__.__name__}: {exc}")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._transport_error(method, path, exc) from None
        if response.is_error:
            raise ClientError(response.status_code, _detail_message(response))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _download(self, path: str, target: str | os.PathLike[str]) -> Path:
        """Stream to a sibling ``.part`` file first so a failed download never looks complete."""
        target = Path(target)
        partial = target.with_name(target.name + ".part")
        try:
            with self._http.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    raise ClientError(response.status_code, _detail_message(response))
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            partial.replace(target)
        except httpx.TransportError as exc:
            raise self._transport_error("GET", path, exc) from None
        finally:
            partial.unlink(missing_ok=True)
        return target

    # -- service ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def catalog(self) -> dict[str, Any]:
        """Registered methods and data sets with their option schemas, and the RunConfig schema."""
        return self._json("GET", "/catalog")

    # -- runs ------------------------------------------------------------------------------

    def submit(self, config: Mapping[str, Any] | RunConfig) -> Run:
        """Queue one run; the server validates the config and answers with the queued run."""
        return self._json("POST", "/runs", json=_config_payload(config))

    def sweep(
        self,
        config: Mapping[str, Any] | RunConfig,
        methods: Iterable[str],
        seeds: Iterable[int],
        name: str | None = None,
        *,
        variants: Iterable[Mapping[str, Any]] = (),
        compare: bool = False,
        search: Mapping[str, Mapping[str, Any]] | None = None,
        strategy: str | None = None,
        samples: int | None = None,
        search_seed: int | None = None,
        max_runs: int | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Queue the grid methods x seeds (x the searched values) over one base config; returns ``{"id", "runs"}``.

        ``variants`` adds arms of a method with options of their own (``{"method", "method_options",
        "label"}``); ``compare`` adds every compared method and their controls (ARM without re-weighting).
        ``search`` maps dotted fields to their values, ``{"lr": {"values": [0.01, 0.1]}, "method_options.alpha":
        {"log_range": [0.1, 10, 3]}}`` (or ``{"range": [lo, hi, n]}``); ``strategy="random"`` draws ``samples``
        combinations instead of every one, seeded by ``search_seed``. A sweep of more than ``max_runs`` runs
        (default 200) is refused. ``dry_run`` stores nothing and returns ``{"runs", "max_runs", "configs"}``.
        """
        body: dict[str, Any] = {"config": _config_payload(config), "methods": list(methods), "seeds": list(seeds)}
        if name is not None:
            body["name"] = name
        if variants:
            body["variants"] = [dict(v) for v in variants]
        if compare:
            body["compare"] = True
        if search:
            body["search"] = {path: dict(axis) for path, axis in search.items()}
        optional = {"strategy": strategy, "samples": samples, "search_seed": search_seed, "max_runs": max_runs}
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._json("POST", "/sweep-plan" if dry_run else "/sweeps", json=body)

    def get_sweep(self, sweep_id: int, metric: str | None = None) -> dict[str, Any]:
        """A sweep with its runs, each run's swept values and final ``metric`` (default val_acc), and the best run."""
        return self._json("GET", f"/sweeps/{sweep_id}", params={"metric": metric} if metric else None)

    def sweeps(self, project: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest sweeps, each with its spec and its runs counted by status."""
        params = {k: v for k, v in {"project": project, "limit": limit}.items() if v is not None}
        return self._json("GET", "/sweeps", params=params)

    def benchmark(self, dataset: str, encoder: str | None = None, project: str | None = None) -> dict[str, Any]:
        """Every method on ``dataset`` as a row of final numbers, mean ± std over seeds (``GET /benchmark``); only
        the runs of ``project`` when given."""
        params = {k: v for k, v in {"dataset": dataset, "encoder": encoder, "project": project}.items() if v is not None}
        return self._json("GET", "/benchmark", params=params)

    def projects(self) -> list[str]:
        """The project names runs and sweeps carry, sorted."""
        return self._json("GET", "/projects")

    def get(self, run_id: int) -> Run:
        return self._json("GET", f"/runs/{run_id}")

    def list(
        self,
        *,
        status: str | None = None,
        method: str | None = None,
        dataset: str | None = None,
        tag: str | None = None,
        sweep: int | None = None,
        text: str | None = None,
        project: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        max_items: int | None = None,
    ) -> Records:
        """Runs matching every given filter, following the server's cursor across pages.

        ``max_items`` stops early, so "the 10 newest" does not fetch the whole table.
        """
        filters = {"status": status, "method": method, "dataset": dataset, "tag": tag,
                   "sweep": sweep, "text": text, "project": project, "sort": sort}
        params: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
        runs: Records = []
        cursor: str | None = None
        while max_items is None or len(runs) < max_items:
            size = page_size or DEFAULT_PAGE_SIZE
            if max_items is not None:
                size = min(size, max_items - len(runs))
            page_params = {**params, "limit": size, **({"cursor": cursor} if cursor else {})}
            page = self._json("GET", "/runs", params=page_params)
            runs.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return runs if max_items is None else runs[:max_items]

    def update(
        self, run_id: int, name: str | None = None, tags: Iterable[str] | None = None, notes: str | None = None,
        project: str | None = None,
    ) -> Run:
        """Change only the fields given; ``tags=[]`` clears the tags, ``project=""`` the project. A name another
        run has is refused (409): run names are unique."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if tags is not None:
            body["tags"] = list(tags)
        if notes is not None:
            body["notes"] = notes
        if project is not None:
            body["project"] = project
        return self._json("PATCH", f"/runs/{run_id}", json=body)

    def delete(self, run_id: int) -> None:
        self._send("DELETE", f"/runs/{run_id}")

    def cancel(self, run_id: int) -> Run:
        return self._json("POST", f"/runs/{run_id}/cancel")

    def retry(self, run_id: int) -> Run:
        return self._json("POST", f"/runs/{run_id}/retry")

    # -- external runs (the SDK, armscope.init) -------------------------------------------

    def start_external(self, spec: Mapping[str, Any]) -> Run:
        """Make (or, for a key sent before, find) the external run ``spec["key"]`` names."""
        return self._json("POST", "/external-runs", json=dict(spec))

    def log_external(self, run_id: int, key: str, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Merge epoch records into an external run; no records is a heartbeat. Answers ``should_stop``."""
        return self._json("POST", f"/runs/{run_id}/log", json={"key": key, "records": [dict(r) for r in records]})

    def log_external_lines(self, run_id: int, key: str, lines: Iterable[str]) -> dict[str, Any]:
        """``log_external`` for records already encoded as JSON objects (the SDK's spool lines): the body is
        joined, not encoded again, so a large batch costs the sending thread (and the GIL) next to nothing."""
        body = '{"key":' + json.dumps(key) + ',"records":[' + ",".join(lines) + "]}"
        return self._json("POST", f"/runs/{run_id}/log", content=body.encode(),
                          headers={"Content-Type": "application/json"})

    def end_external(self, run_id: int, key: str, status: str, error: str | None = None) -> Run:
        return self._json("POST", f"/runs/{run_id}/end", json={"key": key, "status": status, "error": error})

    # -- results ---------------------------------------------------------------------------

    def metrics(
        self,
        run_id: int,
        keys: str | Iterable[str] | None = None,
        since_epoch: int | None = None,
        as_frame: bool = False,
    ) -> Records | pandas.DataFrame:
        """Per-epoch records; ``since_epoch`` lets a poller fetch only what is new. A key the run neither logged
        nor declares is refused (ClientError 422, naming it and the run's keys), never answered with empty rows.

        ``as_frame=True`` gives a pandas DataFrame indexed by epoch. pandas is not a
        dependency of armscope, so its absence is reported before any request is made.
        """
        if as_frame:
            try:
                import pandas
            except ImportError:
                raise ImportError(
                    "metrics(as_frame=True) needs pandas, which is not installed: "
                    "`pip install pandas`, or call metrics() for a list of dicts"
                ) from None
        params: dict[str, Any] = {}
        if keys is not None:
            params["keys"] = _csv(keys)
        if since_epoch is not None:
            params["since_epoch"] = since_epoch
        records: Records = self._json("GET", f"/runs/{run_id}/metrics", params=params)
        if not as_frame:
            return records
        frame = pandas.DataFrame.from_records(records)
        return frame.set_index("epoch") if "epoch" in frame.columns else frame

    def events(self, run_id: int) -> Records:
        return self._json("GET", f"/runs/{run_id}/events")

    def compare(
        self, run_ids: Iterable[int], keys: str | Iterable[str] | None = None, points: int | None = None
    ) -> dict[str, Any]:
        """Curves of several runs at once; ``points`` has the server downsample each curve."""
        params: dict[str, Any] = {"runs": _csv(run_ids)}
        if keys is not None:
            params["keys"] = _csv(keys)
        if points is not None:
            params["points"] = points
        return self._json("GET", "/compare", params=params)

    def compare_seeds(self, run_ids: Iterable[int], keys: str | Iterable[str] | None = None) -> dict[str, Any]:
        """The runs in sets that differ only in their seed, each with its mean ± std per metric: per epoch,
        and over the runs' last and best values."""
        params: dict[str, Any] = {"runs": _csv(run_ids)}
        if keys is not None:
            params["keys"] = _csv(keys)
        return self._json("GET", "/compare/seeds", params=params)

    def download_csv(self, run_id: int, path: str | os.PathLike[str]) -> Path:
        return self._download(f"/runs/{run_id}/metrics.csv", path)

    def download_checkpoint(self, run_id: int, path: str | os.PathLike[str]) -> Path:
        return self._download(f"/runs/{run_id}/checkpoint", path)

    # -- waiting ---------------------------------------------------------------------------

    def wait(self, run_id: int, timeout: float | None = None, poll: float = 1.0, progress: bool = True) -> Run:
        """Poll until the run is succeeded, failed or cancelled and return it.

        Raises ``TimeoutError`` after ``timeout`` seconds; the run itself keeps going.
        The bar shows the server's own fraction and ETA, which know about resumed epochs.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = _ProgressBar(run_id) if progress else None
        try:
            while True:
                run = self.get(run_id)
                if bar is not None:
                    bar.update(run)
                if run["status"] in TERMINAL_STATUSES:
                    return run
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"run {run_id} is still {run['status']} after {timeout:g}s")
                time.sleep(poll if remaining is None else min(poll, remaining))
        finally:
            if bar is not None:
                bar.stop()


class _ProgressBar:
    """A rich bar driven by the run's server-side progress rather than by local timing."""

    def __init__(self, run_id: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("epoch {task.fields[epoch]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(stderr=True),
        )
        self.bar.start()
        self.task = self.bar.add_task(f"run {run_id}", total=1.0, epoch="-", eta="-")

    def update(self, run: Run) -> None:
        info = run.get("progress") or {}
        epochs = info.get("epochs") or (run.get("config") or {}).get("epochs")
        epoch = info.get("epoch")
        eta = info.get("eta_seconds")
        fraction = 1.0 if run["status"] == "succeeded" else (info.get("fraction") or 0.0)
        self.bar.update(
            self.task,
            completed=fraction,
            description=f"run {run['id']} {_status(run)}",
            epoch=f"{epoch if epoch is not None else '-'}/{epochs if epochs is not None else '?'}",
            eta=_duration(eta) if eta is not None and run["status"] == "running" else "-",
        )

    def stop(self) -> None:
        self.bar.stop()


def _status(run: Run) -> str:
    """The run's status, with its place in the queue while it waits ("queued #3": two runs go first)."""
    position = run.get("queue_position")
    return f"{run['status']} #{position}" if run["status"] == "queued" and position else run["status"]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
