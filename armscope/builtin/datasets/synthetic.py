"""``synthetic-shift``: vector data whose dominant modality changes with the environment (its spec).

Every modality ``m`` gives each class ``k`` a fixed prototype, a random unit vector
``p[m, k]`` in ``dims[m]`` dimensions. A sample of class ``y`` drawn in environment ``e``
has, for every modality,

    x_m = strength[e][m] * p[m, y] * flip + noise * N(0, I)

``strength`` is thus the length of the class signal measured in noise standard deviations
per coordinate. ``flip`` is 1 for a *linear* modality. For a modality listed as
``nonlinear`` in that environment, its coordinates are cut into ``nonlinear_blocks``
contiguous blocks and each block is multiplied by its own random sign per sample: the class
means are then zero, a linear read-out of that modality is at chance, and an MLP has to
learn the class from block energies, which takes it longer.

Schedules (the ``schedule`` option) say which environments exist, how many samples each
gets (``weight``) and each modality's strength there. Preset ``"shift"`` (the default) has
one environment per modality: in environment 0 the first modality (e.g. audio) is the
strongest, in environment k the k-th modality is. The first modality is linear everywhere,
the others are non-linear, and the first stays fairly informative in every environment, so
plain joint training leans on it and under-uses the others, although each of them alone does
decently and is the stronger one in its own environment. Preset ``"balanced"``: one
environment, every modality linear with the same strength. Preset ``"static"``: one
environment with the imbalance of ``"shift"`` but no change of dominance.

The generator is ``armscope.data.synthetic``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from armscope.data.errors import DataError
from armscope.data.footprint import FLOAT_BYTES, LABEL_BYTES, DataFootprint, furthest_above_default
from armscope.data.options import DatasetOptions
from armscope.specs import DatasetSpec

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
PRESETS = ("shift", "balanced", "static")

# Preset strengths (see the module docstring); tuned so that a concat-fusion MLP trained
# jointly for ~10 epochs clearly leans on the first modality.
STRONG_LINEAR = 3.0
STRONG_NONLINEAR = 5.0
WEAK = 2.5
BALANCED = 3.0

DEFAULT_N_SAMPLES = 4000
DEFAULT_DIMS = 32
PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE


class Environment(BaseModel):
    """One environment of a custom schedule."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None,
        max_length=64,
        description="A label for reports; default 'env<i>'.",
    )
    weight: float = Field(
        default=1.0,
        gt=0,
        le=1e6,
        description="Relative share of the samples drawn in this environment (weights are normalised).",
    )
    strength: dict[str, float] = Field(
        description=(
            "Signal strength of every modality here: the length of the class signal in noise "
            "standard deviations per coordinate (0 = no signal, ~3 = strong)."
        ),
    )
    nonlinear: list[str] = Field(
        default_factory=list,
        description="Modalities whose signal is non-linear (random block sign flips) here.",
    )

    @field_validator("strength")
    @classmethod
    def _check_strength(cls, value: dict[str, float]) -> dict[str, float]:
        for name, s in value.items():
            if not (0.0 <= s <= 1000.0):
                raise ValueError(f"strength of {name!r} must be between 0 and 1000, got {s}")
        return value


def _schedule_kind(value: object) -> str:
    return "preset" if isinstance(value, str) else "custom"


# A preset name or a list of environments; the discriminator makes a bad value report the
# errors of the branch the user meant, not of both.
Schedule = Annotated[
    Annotated[Literal["shift", "balanced", "static"], Tag("preset")]
    | Annotated[list[Environment], Tag("custom")],
    Discriminator(_schedule_kind),
]


class SyntheticShiftOptions(DatasetOptions):
    """Options of ``synthetic-shift``."""

    model_config = ConfigDict(extra="forbid")

    n_samples: int = Field(
        default=DEFAULT_N_SAMPLES,
        ge=10,
        le=2_000_000,
        description="Total number of samples over all splits.",
    )
    n_classes: int = Field(default=10, ge=2, le=1000, description="Number of classes.")
    modalities: list[str] = Field(
        default_factory=lambda: ["audio", "visual"],
        min_length=2,
        max_length=8,
        description="Modality names (2 to 8, unique; letters, digits, '_' or '-').",
    )
    dims: int | list[int] = Field(
        default=DEFAULT_DIMS,
        description="Feature size per modality: one int for all, or a list with one per modality (1..65536).",
    )
    schedule: Schedule = Field(
        default="shift",
        description=(
            "Dominance schedule: a preset ('shift': the dominant modality changes across "
            "environments; 'balanced'; 'static': one modality dominates everywhere) or a list "
            "of environments {weight, strength: {modality: float}, nonlinear: [modality], name}."
        ),
    )
    noise: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="Standard deviation of the Gaussian noise per coordinate.",
    )
    nonlinear_blocks: int = Field(
        default=3,
        ge=1,
        le=64,
        description="Blocks of independently sign-flipped coordinates of a non-linear modality (more = harder).",
    )
    val_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Fraction of the samples held out for validation."
    )
    test_fraction: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Fraction of the samples held out as a test split (0 = none).",
    )

    @field_validator("modalities")
    @classmethod
    def _check_modalities(cls, value: list[str]) -> list[str]:
        for name in value:
            if not NAME_PATTERN.match(name) or len(name) > 64:
                raise ValueError(
                    f"modality name {name!r} must start with a letter and contain only letters, "
                    "digits, '_' or '-' (at most 64 characters)"
                )
        duplicates = sorted({n for n in value if value.count(n) > 1})
        if duplicates:
            raise ValueError(f"modality names must be unique; repeated: {', '.join(duplicates)}")
        return value

    @field_validator("dims")
    @classmethod
    def _check_dims(cls, value: int | list[int], info: ValidationInfo) -> int | list[int]:
        values = [value] if isinstance(value, int) else value
        for d in values:
            if not 1 <= d <= 65536:
                raise ValueError(f"every feature size must be between 1 and 65536, got {d}")
        modalities = info.data.get("modalities")
        if isinstance(value, list) and modalities is not None and len(value) != len(modalities):
            raise ValueError(
                f"dims lists {len(value)} sizes but there are {len(modalities)} modalities "
                f"({', '.join(modalities)}); give one size per modality or a single int"
            )
        return value

    @field_validator("schedule")
    @classmethod
    def _check_schedule(
        cls, value: str | list[Environment], info: ValidationInfo
    ) -> str | list[Environment]:
        if isinstance(value, str):
            return value
        if not value:
            raise ValueError("a custom schedule needs at least one environment")
        if len(value) > 256:
            raise ValueError(f"at most 256 environments, got {len(value)}")
        modalities = info.data.get("modalities")
        if modalities is None:  # already reported as invalid
            return value
        known = set(modalities)
        for i, env in enumerate(value):
            where = f"environment {i}" + (f" ({env.name!r})" if env.name else "")
            unknown = [n for n in env.strength if n not in known]
            if unknown:
                raise ValueError(
                    f"{where}: strength names unknown modality {', '.join(map(repr, unknown))}; "
                    f"the modalities are: {', '.join(modalities)}"
                )
            missing = [n for n in modalities if n not in env.strength]
            if missing:
                raise ValueError(
                    f"{where}: strength must give every modality; missing {', '.join(map(repr, missing))}"
                )
            unknown = [n for n in env.nonlinear if n not in known]
            if unknown:
                raise ValueError(
                    f"{where}: nonlinear names unknown modality {', '.join(map(repr, unknown))}; "
                    f"the modalities are: {', '.join(modalities)}"
                )
            if len(set(env.nonlinear)) != len(env.nonlinear):
                raise ValueError(f"{where}: nonlinear lists a modality twice")
        return value

    @model_validator(mode="after")
    def _check_sizes(self) -> SyntheticShiftOptions:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must be below 1, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        n_train, n_val, n_test = split_sizes(self.n_samples, self.val_fraction, self.test_fraction)
        if n_val < 1 or n_train < 1 or (self.test_fraction > 0 and n_test < 1):
            raise ValueError(
                f"n_samples={self.n_samples} with val_fraction={self.val_fraction} and "
                f"test_fraction={self.test_fraction} leaves an empty split "
                f"(train {n_train}, val {n_val}, test {n_test})"
            )
        envs = self.environments()
        counts = environment_counts(self.n_samples, [e.weight for e in envs])
        for i, (env, count) in enumerate(zip(envs, counts, strict=True)):
            if count == 0:
                raise ValueError(
                    f"schedule environment {i} (weight {env.weight}) gets no samples out of "
                    f"n_samples={self.n_samples}; raise n_samples or its weight"
                )
        return self

    def modality_names(self) -> list[str]:
        return list(self.modalities)

    def dims_by_modality(self) -> dict[str, int]:
        dims = self.dims if isinstance(self.dims, list) else [self.dims] * len(self.modalities)
        return dict(zip(self.modalities, dims, strict=True))

    def footprint(self, batch_size: int) -> DataFootprint:
        """Every sample is generated into memory: float32 features, int64 labels and environment ids.

        Generating them needs more for a moment: float64 working arrays and the split copies.
        """
        dims = self.dims_by_modality()
        features = sum(dims.values())
        field = furthest_above_default(
            {
                ("dataset_options", "n_samples"): self.n_samples / DEFAULT_N_SAMPLES,
                ("dataset_options", "dims"): max(dims.values()) / DEFAULT_DIMS,
            }
        )
        return DataFootprint(
            modalities=list(self.modalities),
            input_shapes={m: (d,) for m, d in dims.items()},
            n_classes=self.n_classes,
            memory_bytes=self.n_samples * (FLOAT_BYTES * features + 2 * LABEL_BYTES),
            memory_formula=(
                f"n_samples {self.n_samples:,} x ({features:,} features x {FLOAT_BYTES} bytes "
                f"+ {2 * LABEL_BYTES} bytes of label and environment)"
            ),
            memory_field=field,
        )

    def environments(self) -> list[Environment]:
        """The schedule as a list of environments (a preset expanded)."""
        if isinstance(self.schedule, list):
            return [
                env if env.name else env.model_copy(update={"name": f"env{i}"})
                for i, env in enumerate(self.schedule)
            ]
        return preset_schedule(self.schedule, self.modalities)


def preset_schedule(preset: str, modalities: list[str]) -> list[Environment]:
    first, others = modalities[0], modalities[1:]
    if preset == "balanced":
        return [Environment(name="balanced", strength={m: BALANCED for m in modalities})]
    if preset == "static":
        # The average strengths of "shift", without the change across environments.
        strength = {
            first: (STRONG_LINEAR + WEAK) / 2,
            **{m: (STRONG_NONLINEAR + WEAK) / 2 for m in others},
        }
        return [Environment(name="static", strength=strength, nonlinear=list(others))]
    if preset == "shift":
        envs = []
        for k, leader in enumerate(modalities):
            strength = {m: WEAK for m in modalities}
            strength[leader] = STRONG_LINEAR if k == 0 else STRONG_NONLINEAR
            envs.append(
                Environment(name=f"{leader}-dominant", strength=strength, nonlinear=list(others))
            )
        return envs
    raise DataError(f"schedule: unknown preset {preset!r}; choose from {', '.join(PRESETS)}")


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    n_val = int(round(n * val_fraction))
    n_test = int(round(n * test_fraction))
    return n - n_val - n_test, n_val, n_test


def environment_counts(n: int, weights: list[float]) -> list[int]:
    """Split ``n`` samples over environments in proportion to ``weights`` (largest remainder).

    Plain Python, so that validating a config needs no numpy, with numpy's float64
    arithmetic in numpy's order (its pairwise sum of the weights, then ``n * w / total``,
    a stable sort of the remainders): the counts every run has drawn since they were
    computed with numpy.
    """
    total = pairwise_sum(weights)
    exact = [n * w / total for w in weights]
    counts = [math.floor(e) for e in exact]
    remainder = n - sum(counts)
    if remainder > 0:
        order = sorted(range(len(weights)), key=lambda i: -(exact[i] - counts[i]))
        for i in order[:remainder]:
            counts[i] += 1
    return counts


def pairwise_sum(values: list[float]) -> float:
    """``numpy.sum`` of a float64 vector, bit for bit: eight running sums per block of 128, blocks halved."""
    n = len(values)
    if n < 8:
        total = 0.0
        for value in values:
            total += value
        return total
    if n <= PAIRWISE_BLOCK:
        sums = list(values[:8])
        whole = n - n % 8
        for start in range(8, whole, 8):
            for j in range(8):
                sums[j] += values[start + j]
        total = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]))
        for value in values[whole:]:
            total += value
        return total
    half = n // 2
    half -= half % 8
    return pairwise_sum(values[:half]) + pairwise_sum(values[half:])


SPECS = [
    DatasetSpec(
        "synthetic-shift",
        "armscope.data.synthetic:build_synthetic_shift",
        SyntheticShiftOptions,
        "Synthetic vectors whose dominant modality changes across environments (quick demo).",
    )
]
