"""`armscope sync` and `armscope import`: external runs kept on disk, uploaded to a server.

Kept apart like `submit`: the command line's HTTP side next to the client it uses; cli.main calls
``register(app)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from armscope.client import Client, ClientError
from armscope.tracking.importer import import_file, metric_files
from armscope.tracking.spool import Spool, find_spools, spool_root
from armscope.tracking.sync import sync_spool

# Paths and links are never wrapped: a log file or a terminal's link detection gets them whole.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

URL = typer.Option(None, help="Server URL (default: $ARMSCOPE_URL, else http://127.0.0.1:8000).")
TOKEN = typer.Option(None, help="API token (default: $ARMSCOPE_API_TOKEN).")


def _exit(message: str, code: int) -> None:
    err_console.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err_console, transient=True)


def _upload(client: Client, spools: list[Spool]) -> int:
    """Sync each spool with a bar per run; the number that failed."""
    failed = 0
    with _bar() as bar:
        for spool in spools:
            task = bar.add_task(spool.folder.name, total=None)
            try:
                done = sync_spool(client, spool, lambda sent, total: bar.update(task, completed=sent, total=total))
            except ClientError as exc:
                failed += 1
                err_console.print(f"[red]{spool.folder}[/]: {exc}")
                if exc.status_code is None:
                    _exit(str(exc), 1)
                continue
            finally:
                bar.remove_task(task)
            for line in done.bad_lines:
                err_console.print(f"[yellow]skipped[/] {line}")
            page = f"{client.url}/runs/{done.run_id}" if done.run_id else ""
            if done.skipped:
                console.print(f"{spool.folder.name}: skipped, {done.skipped} {page}".rstrip())
            else:
                console.print(f"{spool.folder.name}: {done.sent} epoch records, ended {done.ended}: {page}")
    return failed


def sync(
    folder: Optional[Path] = typer.Argument(None, help="A run's spool folder, or a folder of them "
                                                       "(default: $ARMSCOPE_HOME/spool)."),
    url: Optional[str] = URL,
    token: Optional[str] = TOKEN,
) -> None:
    """Upload runs kept locally (offline, or logged while the server was away); a second sync changes nothing."""
    folder = folder or spool_root()
    spools = find_spools(folder)
    if not spools:
        _exit(f"{folder} holds no spooled run (a folder with a run.json)", 2)
    with Client(url, token) as client:
        failed = _upload(client, spools)
    if failed:
        raise typer.Exit(1)


def import_(
    path: Path = typer.Argument(..., help="A metrics file (*.jsonl, *.csv) or a folder searched for them."),
    url: Optional[str] = URL,
    token: Optional[str] = TOKEN,
) -> None:
    """Make external runs of metric files written elsewhere: one run per file, one row per epoch."""
    if not path.exists():
        _exit(f"{path} does not exist", 2)
    files = metric_files(path)
    if not files:
        _exit(f"{path} holds no *.jsonl or *.csv file", 2)
    spools = []
    for source in files:
        imported = import_file(source)
        for line in imported.bad:
            err_console.print(f"[yellow]skipped[/] {line}")
        console.print(f"{source}: {imported.rows} rows" + (f", {len(imported.bad)} skipped" if imported.bad else ""))
        spools.append(imported.spool)
    with Client(url, token) as client:
        failed = _upload(client, spools)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
    app.command("import")(import_)
