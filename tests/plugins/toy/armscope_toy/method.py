"""The toy method's training code: the only module of the plugin that imports torch."""

import torch

from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import MultimodalModel


class Damped(Method):
    def after_backward(self, model: MultimodalModel, step: int) -> None:
        for modality in self.modalities:
            for parameter in model.encoders[modality].parameters():
                if parameter.grad is not None:
                    parameter.grad.mul_(self.options.damping)

    def end_epoch(self) -> EpochSummary:
        scale = torch.tensor(self.options.damping)
        return EpochSummary(metrics={f"toy_grad_scale.{m}": scale for m in self.modalities})
