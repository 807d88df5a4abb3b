"""What a plugin declares: a method, data set or encoder described without its training code.

A spec holds everything that is asked of a plugin before anything trains: its
name and summary, the pydantic model of its options, what a method logs (its
metric declarations) and the fusion head it builds, how big an encoder is.
Its code, which needs torch, is named by ``build``, a ``"module:attr"``
reference imported only when a run is built. So the API validates configs,
sizes runs and serves the catalog without importing torch, and a worker
loads only the training code of the run it trains.

A spec module imports pydantic and the engine's light modules only
(``armscope.specs``, ``armscope.metrics``, ``armscope.models.sizes``,
``armscope.data.options``, ``armscope.data.footprint``, ``armscope.data.paths``);
``tests/test_light_import.py`` holds every registered spec to it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, model_validator

from armscope.data.options import DatasetOptions
from armscope.metrics import Metric, check_declarations
from armscope.models.sizes import CONCAT_HEAD, HeadSize, ModuleSize

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
EncoderCount = Callable[[Any, tuple[int, ...], int], ModuleSize]
EncoderStages = Callable[[Any, tuple[int, ...], int], tuple[int, ...]]
# The modules a head builds between the encoders' stages, from the method's options and each modality's stage widths.
StagedCount = Callable[[Any, Sequence[tuple[int, ...]]], ModuleSize]


def load_reference(reference: str) -> Any:
    """The object a ``"module:attr"`` reference names, its module imported on the way."""
    module, _, attribute = reference.partition(":")
    found: Any = importlib.import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


@dataclass(frozen=True)
class PluginSpec:
    """Name, builder, options model and one-line summary: what every plugin declares.

    ``build`` is the builder itself or, for a spec that must stay light, a
    ``"module:attr"`` reference to it.
    """

    name: str
    build: str | Callable[..., Any]
    options: type[BaseModel]
    summary: str

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(
                f"plugin name {self.name!r} must be 1-64 lower-case letters, digits, '-' or '_', starting with a letter"
            )
        if isinstance(self.build, str) and not REFERENCE.match(self.build):
            raise ValueError(f"{self.name}: build {self.build!r} is not a 'module:attribute' reference")
        if not isinstance(self.build, str) and not callable(self.build):
            raise TypeError(f"{self.name}: build must be a callable or a 'module:attribute' reference")
        if not (isinstance(self.options, type) and issubclass(self.options, BaseModel)):
            raise TypeError(f"{self.name}: options must be a pydantic model class")

    @property
    def factory(self) -> Callable[..., Any]:
        """The builder, its module imported on first use (training code: torch)."""
        return load_reference(self.build) if isinstance(self.build, str) else self.build

    @property
    def reference(self) -> str:
        """Where the builder lives, as a ``"module:attr"`` reference (what the catalog shows)."""
        if isinstance(self.build, str):
            return self.build
        return f"{self.build.__module__}:{self.build.__qualname__}"

    def options_schema(self) -> dict[str, Any]:
        return self.options.model_json_schema()


class ModulationWindow(BaseModel):
    """The options of a method that changes training only within a window of epochs.

    A method's options derive from it and declare ``modulation_start`` and
    ``modulation_end`` (1-based, inclusive; None: to the run's last epoch) with
    their own defaults and help texts; the check of their order and the test of
    an epoch are shared.
    """

    modulation_start: int
    modulation_end: int | None

    @model_validator(mode="after")
    def _window_in_order(self) -> "ModulationWindow":
        if self.modulation_end is not None and self.modulation_end < self.modulation_start:
            raise ValueError("modulation_end must not be before modulation_start")
        return self

    def modulates(self, epoch: int) -> bool:
        """Whether the 1-based ``epoch`` lies in the window."""
        end = self.modulation_end
        return epoch >= self.modulation_start and (end is None or epoch <= end)


@dataclass(frozen=True)
class Control:
    """A variant of a method that a comparison runs beside it, ``options`` over the method's own.

    The control tells what a method's mechanism adds from what its other parts do (ARM's head and
    loss without the re-weighting). ``label`` names it in run names (letters, digits and '-').
    """

    label: str
    options: Mapping[str, Any] = field(hash=False)
    description: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.label):
            raise ValueError(f"control label {self.label!r} must be lower-case letters, digits and '-'")

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "options": dict(self.options), "description": self.description}


@dataclass(frozen=True)
class StagedHeadSize(HeadSize):
    """A head that also builds modules between the encoders' stages when it is bound (mid-fusion: Greedy's MMTM).

    ``count`` sizes the head as it is built, before ``bind``; ``staged(method_options, stage_widths)`` sizes
    what ``bind`` adds, from the method's options (None: its defaults) and each modality's stage widths as
    its encoder's spec declares them (``EncoderSpec.stages``), so that a run budget counts them too.
    ``option`` is the method option that grows them, named when they put a run over budget.
    """

    staged: StagedCount = field(kw_only=True)
    option: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class MethodSpec(PluginSpec):
    """A training method: ``build(options, modalities, n_classes, feature_dim) -> Method``.

    ``metrics`` declares every key its ``end_epoch`` reports (beyond the
    measures every run logs, ``armscope.metrics.COMMON``); ``head`` is the
    fusion head its ``build_head`` makes, sized when a config is validated.
    ``compare`` puts it among the methods launched beside any other when a
    comparison is asked for (the launch form's "compare methods", the demo);
    a comparison with it also runs each of its ``controls``.
    """

    metrics: tuple[Metric, ...] = ()
    head: HeadSize = CONCAT_HEAD
    compare: bool = False
    controls: tuple[Control, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "metrics", check_declarations(self.metrics, f"method {self.name!r}"))
        for control in self.controls:
            self.options.model_validate(dict(control.options))  # a control's options are the method's


@dataclass(frozen=True)
class DatasetSpec(PluginSpec):
    """A data set: ``build(options, seed) -> DatasetBundle``.

    Its options derive from ``DatasetOptions``, which names the modalities
    and gives the data's footprint before anything is read.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        if not issubclass(self.options, DatasetOptions):
            raise TypeError(f"{self.name}: a data set's options must derive from armscope.data.options.DatasetOptions")


@dataclass(frozen=True)
class EncoderSpec(PluginSpec):
    """An encoder: ``build(options, input_shape, feature_dim) -> nn.Module``.

    ``count(options, input_shape, feature_dim)`` gives the numbers the built
    module would hold, so a config is sized without building it;
    ``size_option`` is the option that grows it, named when a run is over budget;
    ``stages(options, input_shape, feature_dim)`` the widths after each of its
    stages, where a mid-fusion head puts its blocks (None: not split into stages).
    """

    count: EncoderCount = field(kw_only=True)
    size_option: str | None = field(default=None, kw_only=True)
    stages: EncoderStages | None = field(default=None, kw_only=True)
