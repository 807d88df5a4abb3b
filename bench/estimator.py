"""Time the ARM information estimators for one training step (two modalities).

One ARM step needs NMI(h_a; f), NMI(h_v; f) (30 bins) and NCMI(h_a; f | h_v),
NCMI(h_v; f | h_a) (2 bins), each over B*d flattened elements. Compared:

  (a) armscope.information.arm_information, plug-in estimator
  (b) armscope.information.arm_information, reference estimator
  (c) a straightforward torch port: four separate calls, each binning its own
      inputs with torch.bucketize on float64 edges and computing its entropies
      on its own
  (d) the reference numerics in plain numpy on the host (np.histogram2d /
      np.histogramdd on the ARM.md §2 edges), as the published code runs them
  (e) (a) as one torch.compile graph, as ARM's ``compile`` option runs it

The table shows the median time per ARM step (four estimator calls) and its
ratio to (c). Run: python bench/estimator.py [--batch B] [--dim D] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from armscope.information import arm_information

NMI_BINS = 30
NCMI_BINS = 2


# (c) the straightforward torch port ---------------------------------------------------------


def _torch_bins(values: Tensor, bins: int) -> Tensor:
    flat = values.detach().reshape(-1).double()
    low, high = flat.min(), flat.max()
    constant = low == high
    low = torch.where(constant, low - 0.5, low)
    high = torch.where(constant, high + 0.5, high)
    k = torch.arange(bins + 1, dtype=torch.float64, device=flat.device)
    edges = low + k * (high - low) / bins
    edges[-1] = high
    return torch.bucketize(flat, edges[1:-1], right=True)


def _entropy(p: Tensor) -> Tensor:
    return -torch.xlogy(p, p).sum()


def torch_nmi(x: Tensor, y: Tensor, bins: int = NMI_BINS) -> Tensor:
    ix, iy = _torch_bins(x, bins), _torch_bins(y, bins)
    joint = torch.bincount(ix * bins + iy, minlength=bins * bins).double().reshape(bins, bins)
    joint = joint / joint.sum()
    px, py = joint.sum(1), joint.sum(0)
    hx, hy = _entropy(px), _entropy(py)
    mutual = hx + hy - _entropy(joint)
    return torch.where(hx + hy > 0, 2 * mutual / (hx + hy), 0.0)


def torch_ncmi(x: Tensor, y: Tensor, z: Tensor, bins: int = NCMI_BINS) -> Tensor:
    ix, iy, iz = _torch_bins(x, bins), _torch_bins(y, bins), _torch_bins(z, bins)
    keys = (ix * bins + iy) * bins + iz
    joint = torch.bincount(keys, minlength=bins**3).double().reshape(bins, bins, bins)
    joint = joint / joint.sum()
    h_xz, h_yz = _entropy(joint.sum(1)), _entropy(joint.sum(0))
    h_z, h_xyz = _entropy(joint.sum((0, 1))), _entropy(joint)
    mutual = h_xz + h_yz - h_xyz - h_z
    denominator = h_xz + h_yz - 2 * h_z
    return torch.where(denominator > 0, 2 * mutual / denominator, 0.0)


def torch_port_step(a: Tensor, v: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
    nmis = torch.stack([torch_nmi(a, f), torch_nmi(v, f)])
    ncmis = torch.stack([torch_ncmi(a, f, v), torch_ncmi(v, f, a)])
    return nmis, ncmis


# (d) the reference numerics in numpy ---------------------------------------------------------


def _numpy_edges(values: np.ndarray, bins: int) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.array([low + k * (high - low) / bins for k in range(bins + 1)])
    edges[-1] = high
    return edges


def _numpy_entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def numpy_nmi(x: np.ndarray, y: np.ndarray, bins: int = NMI_BINS) -> float:
    counts, _, _ = np.histogram2d(x, y, bins=[_numpy_edges(x, bins), _numpy_edges(y, bins)])
    p = counts / counts.sum()
    px, py = p.sum(1), p.sum(0)
    cells = p > 0
    mutual = float((p[cells] * np.log(p[cells] / np.outer(px, py)[cells])).sum())
    return 2 * mutual / (_numpy_entropy(px) + _numpy_entropy(py))


def numpy_reference_ncmi(x: np.ndarray, y: np.ndarray, z: np.ndarray, bins: int = NCMI_BINS) -> float:
    edges = [_numpy_edges(values, bins) for values in (x, y, z)]
    counts, _ = np.histogramdd(np.stack([x, y, z], axis=1), bins=edges)
    joint = counts / counts.sum()
    pz = joint.sum((0, 1))
    pz[pz <= 0] = 1e-10

    def q(table: np.ndarray) -> float:
        c = table / pz[:, None, None]
        c = c[c > 0]
        return float(-(c * np.log(c)).sum())

    q_xz, q_yz, q_xyz = q(joint.sum(1)), q(joint.sum(0)), q(joint)
    denominator = q_xz + q_yz
    return 0.0 if denominator == 0 else (q_xz + q_yz - q_xyz) / denominator


def numpy_step(a: Tensor, v: Tensor, f: Tensor) -> tuple[list[float], list[float]]:
    a_np, v_np, f_np = (t.detach().cpu().numpy().reshape(-1) for t in (a, v, f))
    nmis = [numpy_nmi(a_np, f_np), numpy_nmi(v_np, f_np)]
    ncmis = [numpy_reference_ncmi(a_np, f_np, v_np), numpy_reference_ncmi(v_np, f_np, a_np)]
    return nmis, ncmis


# the measurement ------------------------------------------------------------------------------


def features(batch: int, dim: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Post-ReLU encoder features and an untrained linear probe fusion, as in ARM.md §1."""
    torch.manual_seed(seed)
    h_a = torch.relu(torch.randn(batch, dim))
    h_v = torch.relu(torch.randn(batch, dim))
    probe = torch.nn.Linear(2 * dim, dim)
    with torch.no_grad():
        fused = probe(torch.cat([h_v, h_a], dim=1))
    return h_a, h_v, fused


def median_ms(
    candidates: dict[str, Callable[[], object]], repeats: int, rounds: int = 5
) -> dict[str, float]:
    """Median wall time per call, in ms.

    Each candidate runs in short blocks of consecutive calls (its own steady
    state, as in a training loop), and the blocks alternate over several
    rounds so that drifting background load hits every candidate alike.
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    block = max(1, repeats // rounds)
    for _ in range(rounds):
        for name, run in candidates.items():
            for _ in range(3):
                run()
            for _ in range(block):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    h_a, h_v, fused = features(args.batch, args.dim)
    plugin = arm_information([h_a, h_v], fused, [h_v, h_a])
    reference = arm_information([h_a, h_v], fused, [h_v, h_a], estimator="reference")
    ported = torch_port_step(h_a, h_v, fused)
    on_host = numpy_step(h_a, h_v, fused)
    # (a) and (c) compute the same numbers, as do (b) and (d): only the speed differs.
    torch.testing.assert_close(plugin, ported, rtol=0, atol=1e-9)
    host = tuple(torch.tensor(scores, dtype=torch.float64) for scores in on_host)
    torch.testing.assert_close(reference, host, rtol=0, atol=1e-9)

    compiled = torch.compile(arm_information, fullgraph=True, dynamic=False)
    torch.testing.assert_close(compiled([h_a, h_v], fused, [h_v, h_a]), plugin, rtol=0, atol=1e-12)

    candidates = {
        "(a) arm_information, plugin": lambda: arm_information([h_a, h_v], fused, [h_v, h_a]),
        "(b) arm_information, reference": lambda: arm_information(
            [h_a, h_v], fused, [h_v, h_a], estimator="reference"
        ),
        "(c) torch port, 4 separate calls": lambda: torch_port_step(h_a, h_v, fused),
        "(d) numpy reference on the host": lambda: numpy_step(h_a, h_v, fused),
        "(e) (a) compiled": lambda: compiled([h_a, h_v], fused, [h_v, h_a]),
    }
    timings = median_ms(candidates, args.repeats)
    port = timings["(c) torch port, 4 separate calls"]

    print(f"torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} CPU threads")
    elements = args.batch * args.dim
    print(f"B={args.batch}, d={args.dim}: {elements:,} elements per tensor, median of {args.repeats}")
    print(f"NMI {plugin[0].tolist()}")
    print(f"NCMI plugin {plugin[1].tolist()}, reference {reference[1].tolist()}")
    print()
    print(f"{'one ARM step (four estimator calls)':<38} {'median ms':>10} {'vs (c)':>8}")
    for name, ms in timings.items():
        print(f"{name:<38} {ms:>10.3f} {ms / port:>8.2f}")


if __name__ == "__main__":
    main()
