"""`armscope` command line: train, and list what is registered."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from armscope.catalog import build_catalog
from armscope.config import ConfigError, run_config_schema
from armscope.data.errors import DataError
from armscope.plugins import BUILTIN
from cli.configs import (
    Assignments,
    BatchSize,
    ConfigFile,
    Dataset,
    Device,
    Epochs,
    Lr,
    Method,
    Project,
    Seed,
    build_config,
    field_flags,
)
from cli.submit import register as register_submit
from cli.tracking import register as register_tracking

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Measure and fix modality imbalance.")
register_submit(app)
register_tracking(app)
console = Console()
err_console = Console(stderr=True)
# The width of the epoch tables when written to a file or a pipe: wider than any summary line.
WIDE_OUTPUT = 1000


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/] {message}")
    raise typer.Exit(2)


def _table_console() -> Console:
    """Where the epoch tables go. Rich lays out at 80 columns when stdout is no terminal (a file, a pipe), which
    wrapped every summary line; there the tables are laid out at full width, one line each, as on a wide terminal."""
    return console if console.is_terminal else Console(width=WIDE_OUTPUT)


def _service_run_folder(run_id: int) -> Path:
    """Where the service keeps run ``run_id`` (``ARMSCOPE_HOME``), for methods that build on stored runs."""
    from service.settings import get_settings

    return get_settings().run_dir(run_id)


@app.command()
def train(
    config: ConfigFile = None,
    dataset: Dataset = None,
    method: Method = None,
    epochs: Epochs = None,
    seed: Seed = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    device: Device = None,
    project: Project = None,
    set_: Assignments = [],
    out: Optional[Path] = typer.Option(None, help="Run folder (default: a new folder under runs/)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last complete epoch."),
) -> None:
    """Train one run, printing each modality's contribution after every epoch."""
    from armscope.console import ConsoleSink
    from armscope.rundir import RunDir
    from armscope.train import ResumeError
    from armscope.train import train as run_training

    flags = field_flags(dataset=dataset, method=method, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr,
                        device=device, project=project)
    base = None
    if resume:
        if out is None:
            _fail("--resume needs --out, the folder of the run to continue")
        stored = RunDir(out)
        if not stored.holds_run():
            _fail(f"{out} holds no run to resume (no config.json)")
        base = stored.read_config()
    try:
        run_config = build_config(config, flags, set_, base)
    except ConfigError as exc:
        _fail(str(exc))
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{run_config.display_name()}-{stamp}"
    try:
        result = run_training(run_config, out, ConsoleSink(_table_console()), resume=resume,
                              run_folder=_service_run_folder, source=config)
    except (ResumeError, DataError, ValueError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted[/]; continue with: armscope train --resume --out {out}")
        raise typer.Exit(130)
    console.print(f"metrics: {Path(out) / 'metrics.jsonl'}")
    if result.status != "succeeded":
        raise typer.Exit(1)


def _plugin_table(entries: dict[str, Any], title: str, metrics: bool) -> Table:
    table = Table(title=title, show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("what it is")
    table.add_column("options (default)")
    if metrics:
        table.add_column("metrics it logs")
    for name, entry in entries.items():
        options = []
        for key, prop in entry["options"].get("properties", {}).items():
            default = json.dumps(prop["default"]) if "default" in prop else "required"
            options.append(f"{key} = {default}")
        what = entry["summary"]
        if not entry["origin"].startswith(BUILTIN):
            what += f"\n[dim]{entry['origin']}[/]"
        row = [name, what, "\n".join(options) or "-"]
        if metrics:
            row.append("\n".join(m["key"] for m in entry["metrics"]) or "-")
        table.add_row(*row)
    return table


def _broken_table(broken: list[dict[str, str]]) -> Table:
    table = Table(title="[red]could not be loaded[/] (the others work)", show_lines=True)
    for column in ("name", "from", "error"):
        table.add_column(column)
    for plugin in broken:
        table.add_row(plugin["name"], plugin["origin"], plugin["error"])
    return table


@app.command()
def methods(as_json: bool = typer.Option(False, "--json", help="Print the catalog's entries as JSON.")) -> None:
    """List the training methods (in-tree and installed plugins), their options and metrics, and any that failed."""
    _print_plugins("methods", "methods", as_json)


@app.command()
def datasets(as_json: bool = typer.Option(False, "--json", help="Print the catalog's entries as JSON.")) -> None:
    """List the data sets (in-tree and installed plugins) and their options, and any that failed."""
    _print_plugins("datasets", "data sets", as_json)


def _print_plugins(kind: str, title: str, as_json: bool) -> None:
    """The catalog's ``kind``: with ``--json`` its entries, the plugins of that kind that failed and, for
    methods, the measures every run logs (as ``GET /catalog`` has them); else tables."""
    catalog = build_catalog()
    broken = [b for b in catalog["broken_plugins"] if b["group"] == f"armscope.{kind}"]
    if as_json:
        payload = {kind: catalog[kind], "broken_plugins": broken}
        if kind == "methods":
            payload["metrics"] = catalog["metrics"]
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    console.print(_plugin_table(catalog[kind], title, metrics=kind == "methods"))
    if broken:
        console.print(_broken_table(broken))


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port for the API and the dashboard."),
    no_worker: bool = typer.Option(False, "--no-worker", help="Do not start the embedded worker."),
    queues: str = typer.Option("cpu,gpu", help="Queues the embedded worker takes runs from."),
    concurrency: int = typer.Option(1, min=1, help="Runs the embedded worker trains at once."),
    processes: int = typer.Option(
        1, min=1, max=64, help="Server processes answering HTTP (the API and the dashboard), one core's worth each."
    ),
) -> None:
    """Serve the REST API (and dashboard) with an embedded worker; Ctrl-C stops both."""
    from server.serve import serve as run_server

    run_server(host, port, not no_worker, queues, concurrency, processes)


@app.command()
def worker(
    queues: str = typer.Option("cpu,gpu", help="Comma-separated queues: cpu, gpu."),
    concurrency: int = typer.Option(1, min=1, help="Runs trained at once (processes)."),
    loglevel: str = typer.Option("INFO", help="Celery log level."),
) -> None:
    """Run a Celery worker that trains queued runs (point it at Redis and PostgreSQL in a lab)."""
    from server.worker import run_worker

    run_worker(queues, concurrency, loglevel)


db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the newest revision."""
    from service.db.store import Store
    from service.settings import get_settings

    store = Store(get_settings().resolved_database_url)
    store.upgrade()
    console.print(f"database at newest revision: {store.engine.url.render_as_string(hide_password=True)}")


@app.command()
def schema() -> None:
    """Print the RunConfig JSON Schema."""
    sys.stdout.write(json.dumps(run_config_schema(), indent=2) + "\n")
