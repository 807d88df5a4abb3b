"""``synthetic-shift``'s generator (its options, schedules and spec: ``armscope.builtin.datasets.synthetic``).

Each split is an :class:`EnvironmentSplit`, a ``TensorSplit`` that also holds the
environment index of every row (``split.environment``, int64); ``info["environments"]``
describes the environments in that order. Generation uses its own numpy generators seeded
from ``seed`` (never the global RNG) and is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from armscope.builtin.datasets.synthetic import SyntheticShiftOptions, environment_counts, split_sizes
from armscope.data.base import DataError, DatasetBundle, TensorSplit


@dataclass
class EnvironmentSplit(TensorSplit):
    """A ``TensorSplit`` that also records the environment index of every row."""

    environment: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.environment.shape[0] != self.labels.shape[0]:
            raise DataError(
                f"environment ids have {self.environment.shape[0]} rows but there are "
                f"{self.labels.shape[0]} labels"
            )


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % (2**63), stream])


def build_synthetic_shift(options: SyntheticShiftOptions, seed: int) -> DatasetBundle:
    modalities = list(options.modalities)
    dims = options.dims_by_modality()
    envs = options.environments()
    k = options.n_classes
    n = options.n_samples

    # Prototypes come from their own stream, so they depend only on the seed, the class
    # count and the feature sizes, not on the schedule or the number of samples.
    proto_rng = _rng(seed, 0)
    prototypes = {}
    for m in modalities:
        p = proto_rng.standard_normal((k, dims[m]))
        norms = np.linalg.norm(p, axis=1, keepdims=True)
        prototypes[m] = p / np.maximum(norms, 1e-12)

    rng = _rng(seed, 1)
    counts = environment_counts(n, [e.weight for e in envs])
    env_ids = np.repeat(np.arange(len(envs), dtype=np.int64), counts)
    # Classes balanced within every environment.
    labels = np.concatenate([rng.permutation(np.arange(c, dtype=np.int64) % k) for c in counts])

    features: dict[str, np.ndarray] = {}
    for m in modalities:
        d = dims[m]
        strength = np.array([e.strength[m] for e in envs], dtype=np.float64)[env_ids]
        signal = prototypes[m][labels] * strength[:, None]
        nonlinear = np.array([m in e.nonlinear for e in envs])[env_ids]
        if nonlinear.any():
            blocks = min(options.nonlinear_blocks, d)
            block_of = np.arange(d) * blocks // d
            signs = rng.choice(np.array([-1.0, 1.0]), size=(n, blocks))[:, block_of]
            signal = np.where(nonlinear[:, None], signal * signs, signal)
        x = signal + options.noise * rng.standard_normal((n, d))
        features[m] = x.astype(np.float32)

    order = rng.permutation(n)
    n_train, n_val, n_test = split_sizes(n, options.val_fraction, options.test_fraction)
    bounds = {"val": (0, n_val), "test": (n_val, n_val + n_test), "train": (n_val + n_test, n)}

    def make(split: str) -> EnvironmentSplit:
        lo, hi = bounds[split]
        idx = order[lo:hi]
        return EnvironmentSplit(
            features={
                m: torch.from_numpy(np.ascontiguousarray(features[m][idx])) for m in modalities
            },
            labels=torch.from_numpy(labels[idx].copy()),
            environment=torch.from_numpy(env_ids[idx].copy()),
        )

    train, val = make("train"), make("val")
    test = make("test") if n_test > 0 else None

    total_weight = sum(e.weight for e in envs)
    env_info = []
    for i, (env, count) in enumerate(zip(envs, counts, strict=True)):
        env_info.append(
            {
                "name": env.name,
                "weight": env.weight / total_weight,
                "strength": {m: env.strength[m] for m in modalities},
                "nonlinear": [m for m in modalities if m in env.nonlinear],
                "dominant": max(modalities, key=lambda m: env.strength[m]),
                "n_samples": count,
                "n_train": int((train.environment == i).sum()),
                "n_val": int((val.environment == i).sum()),
            }
        )

    info: dict[str, object] = {
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "n_classes": k,
        "dims": dims,
        "noise": options.noise,
        "nonlinear_blocks": options.nonlinear_blocks,
        "schedule": options.schedule if isinstance(options.schedule, str) else "custom",
        "environments": env_info,
        "environment_ids": "per row in split.environment (int64 index into environments)",
    }
    return DatasetBundle(
        name="synthetic-shift",
        modalities=modalities,
        class_names=[f"class{i}" for i in range(k)],
        input_shapes={m: (dims[m],) for m in modalities},
        train=train,
        val=val,
        test=test,
        info=info,
    )
