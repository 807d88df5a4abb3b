"""Greedy: balancing the greedy multimodal learner (Wu, Geras et al., ICML 2022; METHODS.md Part C section 3).

A multimodal network trained jointly leans on the modality it learns fastest
and under-trains the other. The paper measures this through MMTM blocks placed
between the two encoders' stages: each block pools both branches' channels,
passes them through a shared squeeze layer and gives each branch channel
scales (its excitation), so each branch also learns through a cross-modal
path, its bypass. Per step the squared-gradient-to-squared-weight ratio of
each branch's bypass and of its encoder are accumulated; BDR_m = log10 of
their ratio is how much the branch relies on the cross-modal path. When the
two branches' BDR differ by more than alpha, the next Q steps replace the
excitations of the branch with the larger BDR (the caring modality) by their
running means in every block: its cross-modal input is cut, so it must learn
from its own encoder. At test time the blocks run as trained (no replacement).

The blocks sit between encoder stages, so the encoders cannot run one by one:
``Greedy.encode`` runs both stage by stage (``encoder_stages``) and the head
(``GreedyHead``) holds the blocks, built in ``bind`` from the encoders' stage
widths so that they are trained by the run's optimiser. Choices where the
sources differ: the running mean of each branch's excitation is that branch's
own (the authors' code updates branch 1's from branch 0's) and is kept over the
training steps only; frames of a video branch are pooled per sample with the
real batch size (BalanceMM hard-codes 64); BalanceMM's ``MMTM.forward`` resets
its running means before reading them, which is not copied. Two modalities
only. Its options and metric declarations: ``armscope.builtin.methods.greedy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.encoders.resnet import STAGE_WIDTHS
from armscope.builtin.methods.greedy import GreedyOptions, greedy_head_size
from armscope.methods.base import EpochSummary, Method
from armscope.models.heads import ConcatHead, MultimodalModel
from armscope.models.resnet import FrameEncoder
from armscope.step import Batch, StepContext


def learning_speed(parameters: Iterable[nn.Parameter]) -> Tensor:
    """mu(G) = sum ||grad||^2 / sum ||theta||^2 over the group, in float32; 0 for a group without gradients or weights."""
    parameters = list(parameters)
    grads = [p.grad.float().square().sum() for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros((), device=parameters[0].device)
    weights = torch.stack([p.detach().float().square().sum() for p in parameters]).sum()
    return torch.stack(grads).sum() / weights.clamp_min(torch.finfo(torch.float32).tiny)


def conditional_speed(bypass: Tensor, main: Tensor) -> Tensor:
    """BDR_m = log10(M_b,m / M_m,m) per branch; 0 while either accumulator is still empty."""
    known = (bypass > 0) & (main > 0)
    ratio = torch.where(known, bypass, 1.0) / torch.where(known, main, 1.0)
    return torch.log10(ratio)


def speed_gap(bdr: Tensor) -> Tensor:
    """d = BDR_0 - BDR_1."""
    return bdr[0] - bdr[1]


def rebalancing_decision(bdr: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """(start, caring): whether |d| > alpha, and the modality to care for, 0 if d > 0 else 1."""
    d = speed_gap(bdr)
    return d.abs() > alpha, torch.where(d > 0, 0, 1)


def mixed_excitation(excitation: Tensor, running: Tensor, replace: Tensor) -> Tensor:
    """The branch's excitation (B x C), or its running mean for every sample where ``replace`` (a 0-d bool) holds.

    The running mean does not depend on the batch, so with it the branch's scales carry nothing of
    the other branch: the cross-modal path into it is cut.
    """
    return torch.where(replace, running.to(excitation.dtype).expand_as(excitation), excitation)


# The per-epoch measures mask a modality by zeroing its features after encoding; with mid-fusion the other
# branch has already taken in the masked modality's signal by then, which a researcher must be told.
MASKING_CAVEAT = {
    "step": 0,
    "kind": "masking_after_fusion",
    "level": "warning",
    "message": "greedy fuses the encoders between their stages, and the masked accuracies and Shapley values zero "
    "a modality's features after that fusion: the other modality's features still carry what its MMTM blocks took "
    "from the masked one, so these measures overstate how well a modality does alone",
    "data": {},
}


@dataclass
class Flow:
    """One branch between stages: activations of ``batch`` samples of ``frames`` frames each (B*T first)."""

    x: Tensor
    batch: int
    frames: int = 1


def squeezed(flow: Flow) -> Tensor:
    """B x C: a feature map averaged over its positions and frames; a vector as it is."""
    if flow.x.dim() == 2:
        return flow.x
    pooled = flow.x.mean((2, 3))
    return pooled.view(flow.batch, flow.frames, -1).mean(1)


def scaled(flow: Flow, scales: Tensor) -> Flow:
    """The branch with its channels multiplied by per-sample scales (B x C), shared by a sample's frames."""
    if flow.x.dim() == 2:
        return Flow(flow.x * scales, flow.batch, flow.frames)
    per_frame = scales.repeat_interleave(flow.frames, 0)[:, :, None, None]
    return Flow(flow.x * per_frame, flow.batch, flow.frames)


class Stages(Protocol):
    """An encoder taken apart: the part before its first stage, its stages, and what follows the last."""

    widths: list[int]

    def start(self, x: Tensor) -> Flow: ...

    def stage(self, index: int, flow: Flow) -> Flow: ...

    def finish(self, flow: Flow) -> Tensor: ...


class MLPStages:
    """The MLP encoder (Flatten, then Linear, ReLU(, Dropout) groups): each group is a stage."""

    def __init__(self, encoder: nn.Sequential) -> None:
        groups: list[list[nn.Module]] = []
        for module in list(encoder)[1:]:
            if isinstance(module, nn.Linear):
                groups.append([module])
            else:
                groups[-1].append(module)
        self.flatten = encoder[0]
        self.groups = groups
        self.widths = [group[0].out_features for group in groups]

    def start(self, x: Tensor) -> Flow:
        return Flow(self.flatten(x), x.shape[0])

    def stage(self, index: int, flow: Flow) -> Flow:
        x = flow.x
        for module in self.groups[index]:
            x = module(x)
        return Flow(x, flow.batch)

    def finish(self, flow: Flow) -> Tensor:
        return flow.x


class FrameStages:
    """The ResNet-18 encoder: stem and layer1 first, then layer2..layer4 as stages (the authors' placement)."""

    def __init__(self, encoder: FrameEncoder) -> None:
        self.encoder = encoder
        trunk = encoder.trunk
        self.layers = [trunk.layer2, trunk.layer3, trunk.layer4]
        self.widths = list(STAGE_WIDTHS[1:])

    def start(self, x: Tensor) -> Flow:
        batch, frames = x.shape[0], (x.shape[1] if x.dim() == 5 else 1)
        if x.dim() == 5:
            x = x.flatten(0, 1)
        trunk = self.encoder.trunk
        if trunk.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        x = trunk.layer1(trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(x)))))
        return Flow(x, batch, frames)

    def stage(self, index: int, flow: Flow) -> Flow:
        return Flow(self.layers[index](flow.x), flow.batch, flow.frames)

    def finish(self, flow: Flow) -> Tensor:
        pooled = torch.flatten(self.encoder.trunk.avgpool(flow.x), 1)
        return self.encoder.project(pooled.view(flow.batch, flow.frames, -1).mean(1))


def encoder_stages(encoder: nn.Module) -> Stages:
    """The stage view of an armscope encoder; Greedy needs to know where its stages end."""
    if isinstance(encoder, FrameEncoder):
        return FrameStages(encoder)
    if isinstance(encoder, nn.Sequential) and len(encoder) > 1 and isinstance(encoder[0], nn.Flatten):
        return MLPStages(encoder)
    raise ValueError(
        f"greedy places MMTM blocks between encoder stages and knows those of the mlp and resnet18 encoders, "
        f"not of {type(encoder).__name__}"
    )


class MMTM(nn.Module):
    """One multimodal transfer block: a shared squeeze of both branches, then channel scales per branch.

    ``running{i}`` is the mean over the training steps so far of branch i's batch-mean excitation,
    ``updates`` how many steps it averages: buffers, checkpointed with the model.
    """

    def __init__(self, widths: Sequence[int], ratio: float) -> None:
        super().__init__()
        hidden = max(1, int(2 * sum(widths) / ratio))
        self.squeeze = nn.Linear(sum(widths), hidden)
        self.excite = nn.ModuleList(nn.Linear(hidden, width) for width in widths)
        for i, width in enumerate(widths):
            self.register_buffer(f"running{i}", torch.zeros(width))
        self.register_buffer("updates", torch.zeros(()))

    def running(self, branch: int) -> Tensor:
        return getattr(self, f"running{branch}")

    def excitations(self, squeezes: Sequence[Tensor]) -> list[Tensor]:
        joint = F.relu(self.squeeze(torch.cat(list(squeezes), 1)))
        return [torch.sigmoid(excite(joint)) for excite in self.excite]

    @torch.no_grad()
    def record(self, excitations: Sequence[Tensor]) -> None:
        """Adds the step's batch-mean excitations to the running means (a plain mean over steps, in float32)."""
        count = self.updates
        for i, excitation in enumerate(excitations):
            running = self.running(i)
            running.copy_((running * count + excitation.float().mean(0)) / (count + 1))
        self.updates += 1

    def forward(self, flows: Sequence[Flow], replace: Tensor | None = None, record: bool = False) -> list[Flow]:
        """Both branches rescaled; where ``replace[i]`` holds, branch i by its running mean instead."""
        excitations = self.excitations([squeezed(flow) for flow in flows])
        if record:
            self.record(excitations)
        if replace is not None:
            excitations = [mixed_excitation(e, self.running(i), replace[i]) for i, e in enumerate(excitations)]
        return [scaled(flow, e) for flow, e in zip(flows, excitations)]


class GreedyHead(ConcatHead):
    """The concat classifier, plus the MMTM blocks between the two encoders' stages (built in ``bind``)."""

    def __init__(
        self,
        modalities: list[str],
        feature_dim: int,
        n_classes: int,
        ratio: float = 4,
        fusion_stages: int | None = None,
    ) -> None:
        super().__init__(modalities, feature_dim, n_classes)
        self.ratio, self.fusion_stages = ratio, fusion_stages
        self.blocks = nn.ModuleList()

    size = staticmethod(greedy_head_size)

    def bind(self, encoders: nn.ModuleDict) -> None:
        """One MMTM block after each of the last k stages of both encoders, sized by those stages' widths."""
        if len(self.modalities) != 2:
            raise ValueError(f"greedy supports at most 2 modalities; this model has {len(self.modalities)}")
        widths = [encoder_stages(encoders[m]).widths for m in self.modalities]
        available = min(len(w) for w in widths)
        count = available if self.fusion_stages is None else self.fusion_stages
        if count > available:
            raise ValueError(f"greedy: fusion_stages {count} exceeds the {available} stages of the shallower encoder")
        for b in range(count):
            self.blocks.append(MMTM([w[len(w) - count + b] for w in widths], self.ratio))


def greedy_head(model: MultimodalModel) -> GreedyHead:
    head = model.head
    assert isinstance(head, GreedyHead)
    return head


def mid_fused_features(
    head: GreedyHead,
    stages: Sequence[Stages],
    inputs: Sequence[Tensor],
    replace: Tensor | None = None,
    record: bool = False,
) -> list[Tensor]:
    """Both branches' features, each block applied after its pair of stages (the last k of each encoder)."""
    flows = [s.start(x) for s, x in zip(stages, inputs)]
    done = [0] * len(stages)
    count = len(head.blocks)
    for b, block in enumerate(head.blocks):
        for i, s in enumerate(stages):
            paired = len(s.widths) - count + b
            while done[i] <= paired:
                flows[i] = s.stage(done[i], flows[i])
                done[i] += 1
        flows = block(flows, replace, record)
    for i, s in enumerate(stages):
        while done[i] < len(s.widths):
            flows[i] = s.stage(done[i], flows[i])
            done[i] += 1
    return [s.finish(flow) for s, flow in zip(stages, flows)]


class Greedy(Method):
    options: GreedyOptions
    head_type = GreedyHead

    def __init__(self, options: GreedyOptions, modalities: list[str], n_classes: int, feature_dim: int) -> None:
        super().__init__(options, modalities, n_classes, feature_dim)
        self.bypass_speed = torch.zeros(2)
        self.main_speed = torch.zeros(2)
        self.remaining = torch.zeros((), dtype=torch.long)
        self.caring = torch.zeros((), dtype=torch.long)

    def build_head(self) -> GreedyHead:
        return GreedyHead(
            self.modalities, self.feature_dim, self.n_classes, self.options.ratio, self.options.fusion_stages
        )

    def encode(
        self, model: MultimodalModel, inputs: dict[str, Tensor], modalities: list[str] | None = None
    ) -> dict[str, Tensor]:
        """Both branches through the MMTM blocks as trained, none replaced (the test-time forward)."""
        feats = self._features(model, inputs)
        return {m: feats[m] for m in (modalities or self.modalities)}

    def _features(
        self, model: MultimodalModel, inputs: dict[str, Tensor], replace: Tensor | None = None, record: bool = False
    ) -> dict[str, Tensor]:
        stages = [encoder_stages(model.encoders[m]) for m in self.modalities]
        outputs = mid_fused_features(greedy_head(model), stages, [inputs[m] for m in self.modalities], replace, record)
        return dict(zip(self.modalities, outputs))

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.bypass_speed, self.main_speed = self.bypass_speed.to(device), self.main_speed.to(device)
        self.remaining, self.caring = self.remaining.to(device), self.caring.to(device)
        self.rebalanced = torch.zeros(2, device=device)
        self.steps = 0
        self.first_epoch = epoch == 1

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        """One fused cross-entropy step; a re-balancing step cuts the caring branch's cross-modal input."""
        model = step.model
        rebalancing = self.remaining > 0
        replace = rebalancing & (self.caring == torch.arange(2, device=self.caring.device))
        with step.autocast():
            feats = self._features(model, batch.inputs, replace, record=True)
            loss = F.cross_entropy(model.head(feats), batch.labels)
        step.zero_grad()
        loss.backward()
        self._schedule(model, rebalancing)
        self.rebalanced += replace.float()
        self.steps += 1
        step.update()
        return loss.detach()

    def _speeds(self, model: MultimodalModel) -> tuple[Tensor, Tensor]:
        """(bypass, main) learning speeds per branch: the excitation FCs with the shared squeeze FCs, and the encoder."""
        blocks = greedy_head(model).blocks
        squeeze = [p for block in blocks for p in block.squeeze.parameters()]
        bypass = [learning_speed([*squeeze, *(p for b in blocks for p in b.excite[i].parameters())]) for i in range(2)]
        main = [learning_speed(model.encoders[m].parameters()) for m in self.modalities]
        return torch.stack(bypass), torch.stack(main)

    def _schedule(self, model: MultimodalModel, rebalancing: Tensor) -> None:
        """Accumulates the speeds outside a re-balancing, starts one where |d| > alpha, counts one down otherwise."""
        bypass, main = self._speeds(model)
        learning = ~rebalancing
        self.bypass_speed = torch.where(learning, self.bypass_speed + bypass, self.bypass_speed)
        self.main_speed = torch.where(learning, self.main_speed + main, self.main_speed)
        start, caring = rebalancing_decision(conditional_speed(self.bypass_speed, self.main_speed), self.options.alpha)
        start = start & learning & (self.epoch >= self.options.rebalance_start)
        self.caring = torch.where(start, caring, self.caring)
        counted_down = torch.where(rebalancing, self.remaining - 1, self.remaining)
        self.remaining = torch.where(start, self.options.rebalance_steps, counted_down)

    def end_epoch(self) -> EpochSummary:
        bdr = conditional_speed(self.bypass_speed, self.main_speed)
        metrics: dict[str, Tensor] = {"greedy_d": speed_gap(bdr)}
        for i, m in enumerate(self.modalities):
            metrics[f"greedy_bdr.{m}"] = bdr[i]
            metrics[f"greedy_rebalance.{m}"] = self.rebalanced[i] / max(self.steps, 1)
        return EpochSummary(metrics=metrics, events=[dict(MASKING_CAVEAT)] if self.first_epoch else [])

    def state_dict(self) -> dict[str, Any]:
        return {
            "bypass_speed": self.bypass_speed,
            "main_speed": self.main_speed,
            "remaining": self.remaining,
            "caring": self.caring,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bypass_speed, self.main_speed = state["bypass_speed"], state["main_speed"]
        self.remaining, self.caring = state["remaining"], state["caring"]
