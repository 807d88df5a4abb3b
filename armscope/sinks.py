"""Where a run reports to besides its folder: the console here, the database in a worker."""

from __future__ import annotations

from typing import Any


class Sink:
    """Receives a run's lifecycle; every hook is optional."""

    def environment(self, record: dict[str, Any]) -> None:
        """Where and with what the run trains (``armscope.environment``): first, before ``start`` (so a run
        that fails while loading its data has it too), and again with its peak memory when it ends."""

    def start(self, config: dict[str, Any], info: dict[str, Any]) -> None:
        """The run is about to train; ``info`` describes data set, device, resume point."""

    def progress(self, epoch: int, step: int, steps: int, epochs: int, loss: float | None) -> None:
        """``step`` of ``steps`` batches of ``epoch`` are done."""

    def phase(self, epoch: int, what: str, done: int, total: int) -> None:
        """``done`` of ``total`` units of a method's pass ``what`` over the training data, before ``epoch``'s steps."""

    def epoch(self, record: dict[str, Any]) -> None:
        """An epoch's measures, after they are durably written to the run folder."""

    def event(self, event: dict[str, Any]) -> None:
        """A notable moment: dominance switch, guard clamp, warning, resume."""

    def finish(self, status: str, error: str | None) -> None:
        """The run ended as succeeded, failed or cancelled, or stopped as interrupted (to be resumed)."""
