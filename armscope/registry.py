"""Name -> spec registries, filled on first use from wherever plugins are found, broken ones kept aside.

A registry holds the specs of one kind (methods, data sets or encoders). It
is filled the first time it is asked, from its sources (``armscope.plugins``:
the in-tree spec modules and the entry points), not when imported, so that
importing the engine costs nothing and a spec module may import the engine's
light modules without a cycle. A source that fails (an import error, a spec
that does not validate, a name taken twice) is recorded as a broken plugin,
by name and with its error, and the others are registered all the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from armscope.specs import PluginSpec

S = TypeVar("S", bound=PluginSpec)


class UnknownNameError(KeyError):
    """A name that no registry entry has; the message lists the valid choices."""

    def __init__(self, kind: str, name: str, choices: list[str]) -> None:
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(f"unknown {kind} {name!r}; choose from: {', '.join(choices)}")

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class Source:
    """Where specs may come from: ``load()`` returns one spec or a sequence of them."""

    name: str
    origin: str
    load: Callable[[], Any]


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be registered: its name, where it came from, and why."""

    group: str
    name: str
    origin: str
    error: str

    def as_json(self) -> dict[str, str]:
        return {"group": self.group, "name": self.name, "origin": self.origin, "error": self.error}


class Registry(Generic[S]):
    """The specs of one kind by name; filled from ``sources`` on first use."""

    def __init__(self, kind: str, group: str, spec_type: type[S], sources: Callable[[], Iterable[Source]]) -> None:
        self.kind, self.group, self.spec_type = kind, group, spec_type
        self._sources = sources
        self._entries: dict[str, S] = {}
        self._origins: dict[str, str] = {}
        self._broken: list[BrokenPlugin] = []
        self._loaded = False
        self._lock = threading.Lock()

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                for source in self._sources():
                    self._register(source)
                self._loaded = True

    def _register(self, source: Source) -> None:
        try:
            found = source.load()
            specs = list(found) if isinstance(found, (list, tuple)) else [found]
            wrong = [s for s in specs if not isinstance(s, self.spec_type)]
            if wrong:
                raise TypeError(f"gave a {type(wrong[0]).__name__}, not a {self.spec_type.__name__}")
            taken = [s.name for s in specs if s.name in self._entries]
            if taken:
                raise ValueError(f"{self.kind} {taken[0]!r} is already registered by {self._origins[taken[0]]}")
        except Exception as exc:  # a plugin's import may fail in any way; it must not take the others down
            self._broken.append(BrokenPlugin(self.group, source.name, source.origin, f"{type(exc).__name__}: {exc}"))
            return
        for spec in specs:
            self._entries[spec.name] = spec
            self._origins[spec.name] = source.origin

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def get(self, name: str) -> S:
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def entries(self) -> list[S]:
        return [self._entries[n] for n in self.names()]

    def origin(self, name: str) -> str:
        """Where ``name`` was registered from: an in-tree module or an entry point of an installed package."""
        self.get(name)
        return self._origins.get(name, "registered at run time")

    @property
    def broken(self) -> list[BrokenPlugin]:
        self._ensure_loaded()
        return list(self._broken)

    def parse_options(self, name: str, raw: BaseModel | Mapping[str, Any], field: str) -> BaseModel:
        """Validate ``raw`` against the entry's options model; options already validated pass through.

        Errors are re-raised with ``field`` prefixed to their location, and an
        unknown option key names the valid ones, so a user sees e.g.
        ``dataset_options.n_samples`` rather than a bare ``n_samples``.
        """
        options_model = self.get(name).options
        if isinstance(raw, options_model):
            return raw
        try:
            return options_model.model_validate(raw)
        except ValidationError as exc:
            raise prefixed_validation_error(exc, field, options_model) from None


def prefixed_validation_error(
    exc: ValidationError, field: str, model: type[BaseModel]
) -> ValidationError:
    valid = ", ".join(model.model_fields) or "(none)"
    details: list[InitErrorDetails] = []
    for err in exc.errors():
        loc = (field, *err["loc"])
        if err["type"] == "extra_forbidden":
            error_type: Any = PydanticCustomError(
                "unknown_option",
                "unknown option '{option}'; valid options: {valid}",
                {"option": str(err["loc"][-1]), "valid": valid},
            )
        else:
            error_type = PydanticCustomError(err["type"], err["msg"], err.get("ctx") or {})
        details.append(InitErrorDetails(type=error_type, loc=loc, input=err["input"]))
    return ValidationError.from_exception_data(exc.title, details)
