"""One optimisation step, shared by the training loop and the overhead benchmark.

Nothing here reads a value back to the host, so on a GPU the step queues its
kernels and returns at once; the caller decides when to synchronise.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor, nn

from armscope.methods import Method
from armscope.models import MultimodalModel


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


class TrainingStep:
    def __init__(
        self,
        model: MultimodalModel,
        method: Method,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        precision: str = "fp32",
        channels_last: bool = False,
    ) -> None:
        self.model, self.method, self.optimizer, self.device = model, method, optimizer, device
        self.precision, self.channels_last = precision, channels_last
        self.encoders = list(model.encoders)

    def __call__(self, inputs: dict[str, Tensor], labels: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """Forward, backward, the method's gradient hook, and the update.

        Returns the detached loss and each encoder's gradient norm, as device tensors.
        """
        model, method = self.model, self.method
        inputs = to_device(inputs, self.device, self.channels_last)
        labels = labels.to(self.device, non_blocking=True)
        with autocast(self.device, self.precision):
            feats = model.encode(inputs, method.encoded_modalities())
            loss = method.loss(model, feats, labels, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        method.after_backward(model, step)
        norms = torch.stack([grad_norm(model.encoders[m]) for m in self.encoders])
        self.optimizer.step()
        return loss.detach(), norms
