"""The CLI's sink: a progress bar with ETA and a compact per-epoch table of each modality's share.

The tables' columns and the method's own figures come from the metric
declarations (``armscope.metrics``, the method's spec), so a plugin's metric
shows here without an edit.
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from armscope.catalog import declared_metrics
from armscope.metrics import COMMON, Metric
from armscope.sinks import Sink


def epoch_table(record: dict[str, Any], modalities: list[str], declarations: Sequence[Metric] = COMMON) -> RenderableType:
    """The epoch's summary line, then a row per modality with a column per declared per-modality measure it holds.

    The measures every run logs make one table, the method's own a second, so
    that each fits a terminal's width; the method's own scalars join the summary.
    """
    own = [m for m in declarations if m not in COMMON and m.numeric and m.keys(modalities[:1])[0] in record]
    title = (
        f"epoch {record['epoch']}  loss {record['train_loss']:.4f}/{record['val_loss']:.4f}  "
        f"acc {record['val_acc']:.4f}  f1 {record['val_f1']:.4f}  "
        f"dominant {record['dominant']}  imbalance {record['imbalance']:.3f}  "
        + "".join(f"{m.column} {record[m.key]:.4g}  " for m in own if not m.per_modality)
        + f"{record['epoch_seconds']:.2f}s"
    )
    common = [m for m in COMMON if m.per_modality and m.numeric and m.keys(modalities[:1])[0] in record]
    parts: list[RenderableType] = [Text(title), _modality_table(record, modalities, common)]
    method = [m for m in own if m.per_modality]
    if method:
        parts.append(_modality_table(record, modalities, method))
    return Group(*parts)


def _modality_table(record: dict[str, Any], modalities: list[str], columns: list[Metric]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("modality")
    for metric in columns:
        table.add_column(metric.column, justify="right")
    for modality in modalities:
        table.add_row(modality, *(f"{record[metric.keys([modality])[0]]:.4f}" for metric in columns))
    return table


class ConsoleSink(Sink):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.bar = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[phase]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task: Any = None
        self.modalities: list[str] = []
        self.declarations: list[Metric] = list(COMMON)

    def start(self, config: dict[str, Any], info: dict[str, Any]) -> None:
        self.modalities = info["modalities"]
        self.declarations = declared_metrics(config["method"])
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
            "train", total=None, completed=0, epoch=done + 1, epochs=config["epochs"], loss="-", phase=""
        )
        self.first_epoch = done + 1
        self.epochs_left = config["epochs"] - done

    def progress(self, epoch: int, step: int, steps: int, epochs: int, loss: float | None) -> None:
        if self.bar.tasks[0].total is None:
            self.bar.update(self.task, total=steps * self.epochs_left)
        self.bar.update(
            self.task,
            completed=(epoch - self.first_epoch) * steps + step,
            epoch=epoch, epochs=epochs, loss=f"{loss:.4f}" if loss is not None else "-", phase=""
        )

    def phase(self, epoch: int, what: str, done: int, total: int) -> None:
        self.bar.update(self.task, epoch=epoch, phase=f"{what} {done}/{total}")

    def epoch(self, record: dict[str, Any]) -> None:
        self.bar.console.print(epoch_table(record, self.modalities, self.declarations))

    def event(self, event: dict[str, Any]) -> None:
        if event["kind"] in {"dominance_switch", "guard_clamp", "warning", "failed"}:
            colour = "yellow" if event["level"] == "warning" else "cyan"
            # The message is plain text: "[w_min, w_max]" in it is not markup, and must not vanish.
            self.bar.console.print(f"[{colour}]{event['kind']}[/] {escape(event['message'])}")

    def finish(self, status: str, error: str | None) -> None:
        self.bar.stop()
        colour = {"succeeded": "green", "cancelled": "yellow"}.get(status, "red")
        self.console.print(f"[{colour}]{status}[/]" + (f": {escape(error)}" if error else ""))
