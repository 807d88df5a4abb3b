"""How many kernels ARM's per-step work launches, eager and as one torch.compile graph.

    python bench/arm_kernels.py [--batch B] [--dim D] [--modalities M]

The work is arm_step: the lens, the contribution scores and weights, and the
updates of the moving average and the epoch's step statistics. On a GPU its cost
is mostly launch overhead: hundreds of kernels on tensors of a few dozen
elements. Eager, every ATen operator that is not a view
launches one kernel (counted with a dispatch mode); compiled, the count is what
Inductor generated (Triton kernels on CUDA, C++ loops on the CPU; its on-disk
cache is bypassed so that nothing is missed) plus the ATen operators it left in
the graph (seen by the profiler). On CUDA the profiler also counts the kernels
that actually ran, both ways.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch
import torch._inductor.config as inductor_config
from torch._inductor import metrics
from torch.autograd.profiler_util import EventList
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from armscope.arm_terms import STEP_STATS, arm_step
from armscope.models.heads import ARMHead

VIEWS = {"view", "_unsafe_view", "unsqueeze", "squeeze", "slice", "select", "expand", "detach", "split",
         "alias", "t", "transpose", "permute", "as_strided", "reshape", "unbind"}


class OperatorCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.launching: Counter[str] = Counter()
        self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.overloadpacket.__name__
        if name in VIEWS:
            self.views += 1
        else:
            self.launching[name] += 1
        return func(*args, **(kwargs or {}))


def profiled(run: object, device: torch.device) -> EventList:
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run()  # type: ignore[operator]
        if device.type == "cuda":
            torch.cuda.synchronize()
    return prof.events()


def aten_calls(events: EventList) -> int:
    """Operators called from Python or compiled code, not those nested in other operators."""
    def is_aten(event: object) -> bool:
        return getattr(event, "name", "").startswith("aten::")

    return sum(1 for e in events if is_aten(e) and not is_aten(e.cpu_parent)
               and e.name.removeprefix("aten::") not in VIEWS)


def device_kernels(events: EventList) -> int:
    return sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--modalities", type=int, default=2)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    names = [f"m{i}" for i in range(args.modalities)]
    head = ARMHead(names, args.dim, 6).to(device)
    feats = {m: torch.relu(torch.randn(args.batch, args.dim, device=device)) for m in names}
    labels = torch.randint(0, 6, (args.batch,), device=device)
    step_stats = torch.zeros(STEP_STATS, args.modalities, dtype=torch.float64, device=device)
    settings = dict(ema_decay=0.99, nmi_bins=30, ncmi_bins=2, w_min=0.1, w_max=10.0)
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {card}; B={args.batch}, d={args.dim}, {args.modalities} modalities")
    cuda = device.type == "cuda"
    print("| estimator | eager: kernel-launching ops (+ views) | compiled: generated kernels + ATen calls |"
          + (" CUDA kernels run, eager / compiled |" if cuda else ""))
    print("|---|---|---|" + ("---|" if cuda else ""))
    inductor_config.fx_graph_cache = False
    for estimator in ("plugin", "reference"):
        def eager_run() -> object:
            return arm_step(feats, head, labels, step_stats, estimator=estimator, **settings)

        def compiled_run() -> object:
            return arm_step(feats, head, labels, step_stats, estimator=estimator, compiled=True, **settings)

        with OperatorCount() as eager:
            eager_run()
        metrics.reset()
        compiled_run()
        generated = metrics.generated_kernel_count
        compiled_events = profiled(compiled_run, device)
        row = (f"| {estimator} | {sum(eager.launching.values())} (+ {eager.views}) | "
               f"{generated} + {aten_calls(compiled_events)} |")
        if cuda:
            row += f" {device_kernels(profiled(eager_run, device))} / {device_kernels(compiled_events)} |"
        print(row)


if __name__ == "__main__":
    main()
