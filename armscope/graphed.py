"""A function of tensors replayed as a CUDA graph: one host call where it made dozens or hundreds.

Where a training step is bound by kernel launches (the host takes as long to
queue the step as the GPU takes to run it), each host call a method adds
shows in the step time. ARM's per-step work is a couple of hundred tiny
kernels eager and still about 30 behind a compiled call's wrappers; replayed
from a CUDA graph it costs the host a few copies and one launch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
from torch import Tensor

Output = TypeVar("Output")


@dataclass
class _Captured(Generic[Output]):
    graph: torch.cuda.CUDAGraph
    inputs: list[Tensor]
    outputs: Output


class GraphedCall(Generic[Output]):
    """``fn`` captured once per input signature, then replayed on each call's inputs.

    A signature is the inputs' shapes and dtypes and the autocast state; up to
    ``max_graphs`` are captured, and calls of any further signature run ``fn``
    directly. ``fn`` must not synchronise with the host, must read nothing
    that changes address between calls but its inputs (parameters updated in
    place are fine), and may write in place only into ``state``; the warm-up
    runs before a capture execute ``fn`` for real, so ``state`` is saved before
    them and restored after: capturing changes nothing. The outputs are the
    graph's own buffers, overwritten by the next call: use them before that.
    """

    def __init__(self, fn: Callable[..., Output], state: Sequence[Tensor], max_graphs: int = 4) -> None:
        self.fn, self.state, self.max_graphs = fn, list(state), max_graphs
        self.graphs: dict[tuple[object, ...], _Captured[Output]] = {}

    def __call__(self, *inputs: Tensor) -> Output:
        with torch.no_grad():
            key = signature(inputs)
            captured = self.graphs.get(key)
            if captured is None:
                if len(self.graphs) >= self.max_graphs:
                    return self.fn(*inputs)
                captured = self.graphs[key] = self._capture(inputs)
            for static, x in zip(captured.inputs, inputs):
                static.copy_(x)
            captured.graph.replay()
            return captured.outputs

    def _capture(self, inputs: Sequence[Tensor]) -> _Captured[Output]:
        static = [x.detach().clone() for x in inputs]
        saved = [s.clone() for s in self.state]
        # Warm up on a side stream, as torch.cuda.graph asks: lazy initialisation
        # (cuBLAS workspaces, compiled kernels) must not happen inside the capture.
        # Under the capture's own autocast settings: a compiled fn guards on them,
        # and recompiling inside a capture fails.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side), _uncached_autocast():
                for _ in range(2):
                    self.fn(*static)
        finally:
            torch.cuda.current_stream().wait_stream(side)
            for s, value in zip(self.state, saved):
                s.copy_(value)
        graph = torch.cuda.CUDAGraph()
        # The outer stream context restores the caller's stream should the capture
        # fail (torch.cuda.graph then leaves its capture stream current).
        # thread_local: a DataLoader's pin-memory thread may allocate pinned memory meanwhile.
        with (
            torch.cuda.stream(torch.cuda.current_stream()),
            torch.cuda.graph(graph, capture_error_mode="thread_local"),
            _uncached_autocast(),
            torch.compiler.set_stance("fail_on_recompile"),
        ):
            outputs = self.fn(*static)
        return _Captured(graph, static, outputs)


def signature(inputs: Sequence[Tensor]) -> tuple[object, ...]:
    """What a captured graph is specific to: every input's shape and dtype, and the autocast state."""
    autocast = torch.is_autocast_enabled("cuda")
    return (
        tuple((tuple(x.shape), x.dtype) for x in inputs),
        autocast,
        torch.get_autocast_dtype("cuda") if autocast else None,
    )


def _uncached_autocast() -> AbstractContextManager[object]:
    """The caller's autocast without its cast cache, whose entries would not outlive the capture."""
    if not torch.is_autocast_enabled("cuda"):
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), cache_enabled=False)
