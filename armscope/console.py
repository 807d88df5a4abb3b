"""The CLI's sink: a progress bar with ETA and a compact per-epoch table of each modality's share."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from armscope.sinks import Sink

MODALITY_COLUMNS = [
    ("val_acc", "acc(masked)"),
    ("confidence", "conf"),
    ("shapley", "shapley"),
    ("nmi", "nmi"),
    ("ncmi", "ncmi"),
    ("arm_score", "arm_score"),
    ("arm_weight", "arm_w"),
    ("grad_norm", "grad"),
    ("ogm_coeff", "ogm_k"),
]


def epoch_table(record: dict[str, Any], modalities: list[str]) -> Table:
    """One row per modality; columns only for the measures this run logs."""
    columns = [(key, label) for key, label in MODALITY_COLUMNS if f"{key}.{modalities[0]}" in record]
    title = (
        f"epoch {record['epoch']}  loss {record['train_loss']:.4f}/{record['val_loss']:.4f}  "
        f"acc {record['val_acc']:.4f}  f1 {record['val_f1']:.4f}  "
        f"dominant {record['dominant']}  imbalance {record['imbalance']:.3f}  "
        f"{record['epoch_seconds']:.2f}s"
    )
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column("modality")
    for _, label in columns:
        table.add_column(label, justify="right")
    for m in modalities:
        table.add_row(m, *(f"{record[f'{key}.{m}']:.4f}" for key, _ in columns))
    return table


class ConsoleSink(Sink):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.bar = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task: Any = None
        self.modalities: list[str] = []

    def start(self, config: dict[str, Any], info: dict[str, Any]) -> None:
        self.modalities = info["modalities"]
        resumed = info.get("resumed_from_epoch")
        self.console.print(
            f"[bold]{config['method']}[/] on [bold]{config['dataset']}[/] "
            f"({', '.join(self.modalities)}; {info['train_size']} train / {info['val_size']} val) "
            f"on {info['device']} -> {info['out_dir']}"
            + (f"  [yellow]resuming after epoch {resumed}[/]" if resumed is not None else "")
        )
        done = resumed or 0
        self.bar.start()
        self.task = self.bar.add_task(
            "train", total=None, completed=0, epoch=done + 1, epochs=config["epochs"], loss="-"
        )
        self.first_epoch = done + 1
        self.epochs_left = config["epochs"] - done

    def progress(self, epoch: int, step: int, steps: int, epochs: int, loss: float | None) -> None:
        if self.bar.tasks[0].total is None:
            self.bar.update(self.task, total=steps * self.epochs_left)
        self.bar.update(
            self.task,
            completed=(epoch - self.first_epoch) * steps + step,
            epoch=epoch, epochs=epochs, loss=f"{loss:.4f}" if loss is not None else "-"
        )

    def epoch(self, record: dict[str, Any]) -> None:
        self.bar.console.print(epoch_table(record, self.modalities))

    def event(self, event: dict[str, Any]) -> None:
        if event["kind"] in {"dominance_switch", "guard_clamp", "warning", "failed"}:
            colour = "yellow" if event["level"] == "warning" else "cyan"
            self.bar.console.print(f"[{colour}]{event['kind']}[/] {event['message']}")

    def finish(self, status: str, error: str | None) -> None:
        self.bar.stop()
        colour = {"succeeded": "green", "cancelled": "yellow"}.get(status, "red")
        self.console.print(f"[{colour}]{status}[/]" + (f": {error}" if error else ""))
