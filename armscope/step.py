"""One training step, shared by the training loop and the overhead benchmark.

The method owns the step (``Method.train_step``); this module hands it the
batch on the run's device and a ``StepContext`` that makes the updates and
measures the gradients they apply. Nothing here reads a value back to the
host, so on a GPU the step queues its kernels and returns at once; the caller
decides when to synchronise.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from armscope.models.heads import MultimodalModel


def autocast(device: torch.device, precision: str) -> AbstractContextManager[object]:
    if precision != "bf16":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def to_device(inputs: dict[str, Tensor], device: torch.device, channels_last: bool) -> dict[str, Tensor]:
    moved = {}
    for m, x in inputs.items():
        x = x.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        moved[m] = x
    return moved


def grad_norm(module: nn.Module) -> Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), dtype=torch.float64, device=next(module.parameters()).device)
    return torch.nn.utils.get_total_norm(grads).double()


@dataclass(frozen=True)
class Batch:
    """One batch on the run's device.

    ``step`` is the run's step counter (0-based, over all epochs). ``index``
    holds the samples' indices in the training split where the loop knows
    them: in an epoch pass, and in the steps of a method that chose the
    epoch's order (``Method.sample_order``); otherwise None.
    """

    inputs: dict[str, Tensor]
    labels: Tensor
    step: int
    index: Tensor | None = None


class StepContext:
    """What a method's step updates the model with.

    ``update`` steps the optimiser, on every parameter or only on those given
    (the others, and their gradients, are left as they are), and adds each
    encoder's gradient norm at that moment to ``norms``: the loop's per-epoch
    ``grad_norm.<modality>``. A step may update any number of times, or not at all.
    """

    def __init__(
        self, model: MultimodalModel, optimizer: torch.optim.Optimizer, device: torch.device, precision: str
    ) -> None:
        self.model, self.optimizer, self.device, self.precision = model, optimizer, device, precision
        self.norms: Tensor | None = None

    def autocast(self) -> AbstractContextManager[object]:
        """The run's precision for forward passes (bf16 autocast, or nothing for fp32)."""
        return autocast(self.device, self.precision)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def update(self, parameters: Iterable[nn.Parameter] | None = None) -> None:
        """One optimiser step with the current gradients, of ``parameters`` only where given.

        Parameters left out keep their values, optimiser state and gradients:
        their gradients are set aside for the step (torch's optimisers skip a
        parameter without one) and put back after it.
        """
        held = self._hold_back(parameters)
        norms = torch.stack([grad_norm(encoder) for encoder in self.model.encoders.values()])
        self.norms = norms if self.norms is None else self.norms + norms
        self.optimizer.step()
        for p, grad in held:
            p.grad = grad

    def _hold_back(self, parameters: Iterable[nn.Parameter] | None) -> list[tuple[nn.Parameter, Tensor]]:
        if parameters is None:
            return []
        stepped = {id(p) for p in parameters}
        held = []
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if id(p) not in stepped and p.grad is not None:
                    held.append((p, p.grad))
                    p.grad = None
        return held


class SteppingMethod(Protocol):
    """What the step needs of a method (``armscope.methods.Method``, which depends on this module)."""

    def train_step(self, step: StepContext, batch: Batch) -> Tensor: ...


class TrainingStep:
    """Runs the method's step on one batch from the loader."""

    def __init__(
        self,
        model: MultimodalModel,
        method: SteppingMethod,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        precision: str = "fp32",
        channels_last: bool = False,
    ) -> None:
        self.model, self.method, self.optimizer, self.device = model, method, optimizer, device
        self.precision, self.channels_last = precision, channels_last

    def __call__(
        self, inputs: dict[str, Tensor], labels: Tensor, step: int, index: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The batch moved to the device, then the method's step.

        Returns the step's detached loss and each encoder's gradient norm (summed
        over the step's updates), as device tensors.
        """
        batch = Batch(
            to_device(inputs, self.device, self.channels_last),
            labels.to(self.device, non_blocking=True),
            step,
            None if index is None else index.to(self.device, non_blocking=True),
        )
        context = StepContext(self.model, self.optimizer, self.device, self.precision)
        loss = self.method.train_step(context, batch)
        if context.norms is None:
            return loss, torch.zeros(len(self.model.encoders), dtype=torch.float64, device=self.device)
        return loss, context.norms
