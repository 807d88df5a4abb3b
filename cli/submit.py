"""`armscope submit`: queue a run on a server instead of training it here.

Kept apart so the command line's HTTP side lives next to the client it uses;
cli.main calls ``register(app)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from armscope.client import Client, ClientError
from armscope.config import ConfigError
from cli.configs import build_config, validation_message

console = Console()
err_console = Console(stderr=True)


def _exit(message: str, code: int) -> None:
    err_console.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def submit(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="RunConfig as JSON or YAML."),
    set_: list[str] = typer.Option([], "--set", help="dotted.key=value (value parsed as JSON when it parses)."),
    wait: bool = typer.Option(False, "--wait", help="Show the run's progress and exit 0 only if it succeeds."),
    url: Optional[str] = typer.Option(None, help="Server URL (default: $ARMSCOPE_URL, else http://127.0.0.1:8000)."),
    token: Optional[str] = typer.Option(None, help="API token (default: $ARMSCOPE_API_TOKEN)."),
) -> None:
    """Queue one run on an armscope server; the config is checked here before anything is sent."""
    try:
        run_config = build_config(config, {}, set_)
    except ConfigError as exc:
        _exit(str(exc), 2)
    except ValidationError as exc:
        _exit(validation_message(exc), 2)

    with Client(url, token) as client:
        try:
            run = client.submit(run_config)
        except ClientError as exc:
            # A 422 here means the server's registries disagree with ours: still a config problem.
            _exit(str(exc), 2 if exc.status_code == 422 else 1)
        console.print(f"queued run [bold]{run['id']}[/] ({run['name']}): {client.run_url(run['id'])}")
        if not wait:
            return
        try:
            run = client.wait(run["id"], progress=True)
        except ClientError as exc:
            _exit(str(exc), 1)
        except KeyboardInterrupt:
            err_console.print(
                f"[yellow]stopped waiting[/]; run {run['id']} goes on on the server "
                f"(cancel it with POST {client.run_url(run['id'])}/cancel)"
            )
            raise typer.Exit(130)
    if run["status"] != "succeeded":
        _exit(f"run {run['id']} {run['status']}" + (f": {run['error']}" if run.get("error") else ""), 1)
    best = run.get("best_val_acc")
    console.print("[green]succeeded[/]" + (f"  best val_acc {best:.4f}" if best is not None else ""))


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
