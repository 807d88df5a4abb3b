"""The three plugin registries: methods, data sets and encoders, found rather than listed.

Each registry is filled, on first use, from two places:

- the in-tree specs: every module of ``armscope.builtin.<kind>`` whose name
  does not start with ``_`` (found by ``pkgutil``; its ``SPECS`` are
  registered), so an in-tree plugin is one new spec module and no list is
  edited;
- the entry points of the group ``armscope.<kind>`` of every installed
  distribution (a package installed next to armscope, or any ``*.dist-info``
  folder with an ``entry_points.txt`` on ``sys.path``); an entry point names a
  spec, or a sequence of specs.

In-tree specs come first, so an installed package cannot take an in-tree
name (it is reported instead). Nothing here imports torch: the specs name
their training code by reference (``armscope.specs``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points

from armscope.registry import BrokenPlugin, Registry, Source
from armscope.specs import DatasetSpec, EncoderSpec, MethodSpec

BUILTIN = "armscope.builtin"
GROUP = "armscope"


def in_tree(kind: str) -> Iterator[Source]:
    """One source per public module of ``armscope.builtin.<kind>``: its ``SPECS``."""
    package = importlib.import_module(f"{BUILTIN}.{kind}")
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        name = f"{package.__name__}.{module.name}"
        yield Source(module.name, name, lambda name=name: importlib.import_module(name).SPECS)


def installed(kind: str) -> Iterator[Source]:
    """One source per entry point of the group ``armscope.<kind>``."""
    for point in sorted(entry_points(group=f"{GROUP}.{kind}"), key=lambda p: p.name):
        yield Source(point.name, _origin(point), point.load)


def _origin(point: EntryPoint) -> str:
    dist = point.dist
    package = f" ({dist.metadata['Name']} {dist.version})" if dist is not None else ""
    return f"entry point {point.name} = {point.value}{package}"


def _sources(kind: str) -> Iterator[Source]:
    yield from in_tree(kind)
    yield from installed(kind)


METHODS: Registry[MethodSpec] = Registry("method", f"{GROUP}.methods", MethodSpec, lambda: _sources("methods"))
DATASETS: Registry[DatasetSpec] = Registry("data set", f"{GROUP}.datasets", DatasetSpec, lambda: _sources("datasets"))
ENCODERS: Registry[EncoderSpec] = Registry("encoder", f"{GROUP}.encoders", EncoderSpec, lambda: _sources("encoders"))
REGISTRIES = (METHODS, DATASETS, ENCODERS)


def broken_plugins() -> list[BrokenPlugin]:
    """Every plugin that failed to register, of any kind, with its error."""
    return [broken for registry in REGISTRIES for broken in registry.broken]
