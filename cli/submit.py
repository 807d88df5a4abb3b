"""`armscope submit`: queue a run on a server instead of training it here.

Kept apart so the command line's HTTP side lives next to the client it uses;
cli.main calls ``register(app)``. It takes the same config flags as `armscope train`.
"""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.console import Console

from armscope.client import Client, ClientError
from armscope.config import ConfigError
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

console = Console()
err_console = Console(stderr=True)


def _exit(message: str, code: int) -> None:
    err_console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def queued_line(run: dict[str, Any], page: str) -> str:
    """What a submit says of the run it queued: its id, name, place in its queue and its dashboard page."""
    position = run.get("queue_position")
    place = f", #{position} in the {run.get('queue')} queue" if position else ""
    return f"queued run {run['id']} ({run['name']}){place}: {page}"


def submit(
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
    wait: bool = typer.Option(False, "--wait", help="Show the run's progress and exit 0 only if it succeeds."),
    url: Optional[str] = typer.Option(None, help="Server URL (default: $ARMSCOPE_URL, else http://127.0.0.1:8000)."),
    token: Optional[str] = typer.Option(None, help="API token (default: $ARMSCOPE_API_TOKEN)."),
) -> None:
    """Queue one run on an armscope server; the config is checked here before anything is sent."""
    flags = field_flags(dataset=dataset, method=method, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr,
                        device=device, project=project)
    try:
        run_config = build_config(config, flags, set_)
    except ConfigError as exc:
        _exit(str(exc), 2)

    with Client(url, token) as client:
        try:
            run = client.submit(run_config)
        except ClientError as exc:
            # A 422 here means the server's registries disagree with ours: still a config problem.
            _exit(str(exc), 2 if exc.status_code == 422 else 1)
        console.print(queued_line(run, client.page_url(run["id"])), highlight=False, soft_wrap=True)
        if not wait:
            return
        try:
            run = client.wait(run["id"], progress=True)
        except ClientError as exc:
            _exit(str(exc), 1)
        except KeyboardInterrupt:
            err_console.print(
                f"[yellow]stopped waiting[/]; run {run['id']} goes on on the server "
                f"(cancel it on {client.page_url(run['id'])}, or POST {client.run_url(run['id'])}/cancel)"
            )
            raise typer.Exit(130)
    if run["status"] != "succeeded":
        _exit(f"run {run['id']} {run['status']}" + (f": {run['error']}" if run.get("error") else ""), 1)
    best = run.get("best_val_acc")
    console.print("[green]succeeded[/]" + (f"  best val_acc {best:.4f}" if best is not None else ""))


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
