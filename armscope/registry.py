"""Name -> builder registries for data sets, methods and encoders.

A new data set or method is one file that calls ``REGISTRY.register``; the
rest of the system (CLI, config validation, API catalog) discovers it by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

F = TypeVar("F", bound=Callable[..., Any])


class UnknownNameError(KeyError):
    """A name that no registry entry has; the message lists the valid choices."""

    def __init__(self, kind: str, name: str, choices: list[str]) -> None:
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(f"unknown {kind} {name!r}; choose from: {', '.join(choices)}")

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class Entry(Generic[F]):
    name: str
    factory: F
    options: type[BaseModel]
    summary: str

    def options_schema(self) -> dict[str, Any]:
        return self.options.model_json_schema()


class Registry(Generic[F]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[F]] = {}

    def register(self, name: str, options: type[BaseModel], summary: str = "") -> Callable[[F], F]:
        def decorate(factory: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = summary or (factory.__doc__ or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, factory, options, doc)
            return factory

        return decorate

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Entry[F]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def entries(self) -> list[Entry[F]]:
        return [self._entries[n] for n in self.names()]

    def parse_options(self, name: str, raw: dict[str, Any], field: str) -> BaseModel:
        """Validate ``raw`` against the entry's options model.

        Errors are re-raised with ``field`` prefixed to their location, and an
        unknown option key names the valid ones, so a user sees e.g.
        ``dataset_options.n_samples`` rather than a bare ``n_samples``.
        """
        options_model = self.get(name).options
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
