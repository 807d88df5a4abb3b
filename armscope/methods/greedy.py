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
widths so that they are trained by the run's optimiser. For the same reason
zeroing a modality's features at the fusion input does not remove it: the
other branch took it in through the blocks. So a modality is removed as the
paper removes it to estimate its conditional utilisation rate: its squeezed
features entering every block are replaced by their mean over the training
data (here the epoch's training steps), and the per-epoch measures encode
each modality alone that way (``GreedyHead.coalition_measures`` adds the
paper's utilisation rates). Choices where the sources differ: the running
mean of each branch's excitation is that branch's own (the authors' code
updates branch 1's from branch 0's) and is kept over the training steps only;
frames of a video branch are pooled per sample with the real batch size
(BalanceMM hard-codes 64); BalanceMM's ``MMTM.forward`` resets its running
means before reading them, which is not copied. Two modalities only. Its
options and metric declarations: ``armscope.builtin.methods.greedy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from armscope.builtin.encoders.resnet import STAGE_WIDTHS
from armscope.builtin.methods.greedy import GreedyOptions, fused_stage_widths, greedy_head_size, squeeze_width
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


def utilisation_rates(accuracy: Mapping[frozenset[str], Tensor], modalities: Sequence[str]) -> dict[str, Tensor]:
    """u(m | rest) = (A(all) - A(all but m)) / A(all) per modality: the share of the fused accuracy gained by
    adding m to the others, the paper's conditional utilisation rate; 0 where A(all) is 0 (nothing to share)."""
    everything = frozenset(modalities)
    full = accuracy[everything]
    known = full > 0
    return {
        m: torch.where(known, (full - accuracy[everything - {m}]) / torch.where(known, full, 1), 0)
        for m in modalities
    }


def utilisation_gap(rates: Mapping[str, Tensor], modalities: Sequence[str]) -> Tensor:
    """d_util = u(m1 | m0) - u(m0 | m1), the modalities in their order (the paper's sign)."""
    first, second = modalities
    return rates[second] - rates[first]


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
    ``updates`` how many steps it averages; ``mean_squeeze{i}`` the mean of branch i's squeezed features
    over the samples of the epoch's training steps so far, ``squeeze_samples`` how many it averages (what
    replaces a removed branch's squeeze). Buffers, checkpointed with the model.
    """

    def __init__(self, widths: Sequence[int], ratio: float) -> None:
        super().__init__()
        hidden = squeeze_width(widths, ratio)
        self.squeeze = nn.Linear(sum(widths), hidden)
        self.excite = nn.ModuleList(nn.Linear(hidden, width) for width in widths)
        for i, width in enumerate(widths):
            self.register_buffer(f"running{i}", torch.zeros(width))
        self.register_buffer("updates", torch.zeros(()))
        for i, width in enumerate(widths):
            self.register_buffer(f"mean_squeeze{i}", torch.zeros(width))
        self.register_buffer("squeeze_samples", torch.zeros(()))

    def running(self, branch: int) -> Tensor:
        return getattr(self, f"running{branch}")

    def mean_squeeze(self, branch: int) -> Tensor:
        return getattr(self, f"mean_squeeze{branch}")

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

    @torch.no_grad()
    def record_squeezes(self, squeezes: Sequence[Tensor]) -> None:
        """Adds the step's squeezed features (B x C per branch) to their means over samples, in float32."""
        count, batch = self.squeeze_samples, squeezes[0].shape[0]
        for i, squeeze in enumerate(squeezes):
            mean = self.mean_squeeze(i)
            mean.copy_((mean * count + squeeze.float().sum(0)) / (count + batch))
        self.squeeze_samples += batch

    @torch.no_grad()
    def reset_squeezes(self) -> None:
        """Starts the means of the squeezed features afresh: each epoch's measures remove a branch by its own."""
        for i in range(len(self.excite)):
            self.mean_squeeze(i).zero_()
        self.squeeze_samples.zero_()

    def squeezes(self, flows: Sequence[Flow | None]) -> list[Tensor]:
        """Each branch's squeezed features (B x C); an absent branch's are their recorded mean, for every sample."""
        known = [None if flow is None else squeezed(flow) for flow in flows]
        like = next(squeeze for squeeze in known if squeeze is not None)
        return [
            squeeze if squeeze is not None else self.mean_squeeze(i).to(like.dtype).expand(like.shape[0], -1)
            for i, squeeze in enumerate(known)
        ]

    def forward(
        self, flows: Sequence[Flow | None], replace: Tensor | None = None, record: bool = False
    ) -> list[Flow | None]:
        """Both branches rescaled; where ``replace[i]`` holds, branch i by its running mean instead.

        An absent branch (None) is removed: its squeeze is its recorded mean, so nothing of its input reaches
        the other branch, and it has no output.
        """
        squeezes = self.squeezes(flows)
        excitations = self.excitations(squeezes)
        if record:
            self.record(excitations)
            self.record_squeezes(squeezes)
        if replace is not None:
            excitations = [mixed_excitation(e, self.running(i), replace[i]) for i, e in enumerate(excitations)]
        return [None if flow is None else scaled(flow, e) for flow, e in zip(flows, excitations)]


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
        for pair in fused_stage_widths(widths, self.fusion_stages):
            self.blocks.append(MMTM(pair, self.ratio))

    def coalition_measures(self, accuracy: Mapping[frozenset[str], Tensor]) -> dict[str, Tensor]:
        """The paper's conditional utilisation rates and their gap, from the validation accuracies of every
        coalition (each encoded apart, the absent modality removed from the blocks: ``armscope.dominance``)."""
        rates = utilisation_rates(accuracy, self.modalities)
        measures = {f"greedy_util.{m}": rates[m] for m in self.modalities}
        measures["greedy_d_util"] = utilisation_gap(rates, self.modalities)
        return measures


def greedy_head(model: MultimodalModel) -> GreedyHead:
    head = model.head
    assert isinstance(head, GreedyHead)
    return head


def through(stages: Stages, flow: Flow | None, start: int, stop: int) -> Flow | None:
    """The branch through its stages ``start`` to ``stop - 1``; an absent branch stays absent."""
    if flow is None:
        return None
    for index in range(start, stop):
        flow = stages.stage(index, flow)
    return flow


def mid_fused_features(
    head: GreedyHead,
    stages: Sequence[Stages],
    inputs: Sequence[Tensor | None],
    replace: Tensor | None = None,
    record: bool = False,
) -> list[Tensor | None]:
    """Each branch's features, each block applied after its pair of stages (the last k of each encoder).

    A branch without input (None) is absent: it is not run, the blocks remove it, and its features are None.
    """
    flows = [None if x is None else s.start(x) for s, x in zip(stages, inputs)]
    done = [0] * len(stages)
    count = len(head.blocks)
    for b, block in enumerate(head.blocks):
        ends = [len(s.widths) - count + b + 1 for s in stages]
        flows = block([through(s, f, d, e) for s, f, d, e in zip(stages, flows, done, ends)], replace, record)
        done = ends
    flows = [through(s, f, d, len(s.widths)) for s, f, d in zip(stages, flows, done)]
    return [None if flow is None else s.finish(flow) for s, flow in zip(stages, flows)]


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
        """The wanted modalities' features as encoded with only them present.

        Both: the branches through the MMTM blocks as trained, none replaced (the test-time forward). One: the
        other is removed as the paper removes it to measure A(m), its squeezed features entering every block
        replaced by their mean over the epoch's training steps, so nothing of its input reaches this branch.
        """
        wanted = self.modalities if modalities is None else list(modalities)
        if not wanted:
            return {}
        feats = self._features(model, {m: inputs[m] for m in wanted})
        return {m: feats[m] for m in wanted}

    def _features(
        self, model: MultimodalModel, inputs: dict[str, Tensor], replace: Tensor | None = None, record: bool = False
    ) -> dict[str, Tensor]:
        """The features of the branches ``inputs`` holds; a branch it lacks is removed from the blocks."""
        stages = [encoder_stages(model.encoders[m]) for m in self.modalities]
        given = [inputs.get(m) for m in self.modalities]
        outputs = mid_fused_features(greedy_head(model), stages, given, replace, record)
        return {m: h for m, h in zip(self.modalities, outputs) if h is not None}

    def begin_epoch(self, epoch: int, first_step: int, steps: int, device: torch.device) -> None:
        super().begin_epoch(epoch, first_step, steps, device)
        self.bypass_speed, self.main_speed = self.bypass_speed.to(device), self.main_speed.to(device)
        self.remaining, self.caring = self.remaining.to(device), self.caring.to(device)
        self.rebalanced = torch.zeros(2, device=device)
        self.steps = 0

    def train_step(self, step: StepContext, batch: Batch) -> Tensor:
        """One fused cross-entropy step; a re-balancing step cuts the caring branch's cross-modal input.

        The blocks' squeeze means restart with the epoch's first step, so the measures after the epoch remove a
        modality by the mean of the model they measure, not of its first epochs.
        """
        model = step.model
        if self.steps == 0:
            for block in greedy_head(model).blocks:
                block.reset_squeezes()
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
        return EpochSummary(metrics=metrics)

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
