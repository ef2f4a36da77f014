"""Registry of layer cores.

A core registers itself with a name and a *conformance adapter*::

    @register("mvau", conformance=MVAUConformance)
    class MVAU(StreamCore): ...

and thereby joins the shared conformance suite in ``tests/cores`` (output
equals golden under random back-pressure, stream rules, documented
throughput and latency equal measured, bad parameters rejected).

A conformance adapter (subclass of :class:`Conformance`) tells the suite how
to exercise the core:

* ``configs()``: a list of ``(id, params)``; ``params`` are keyword arguments
  of ``build``.  Cover PE=SIMD=1, fully parallel, intermediate foldings and
  non-powers of two;
* ``build(params, rng)``: a core instance (random weights etc. from ``rng``);
* ``frames(core, rng, n, edge)``: ``n`` random input frames (``edge=True``:
  edge cases: all zeros, all ones, extremes);
* ``encode(core, frame)``: the input beats (ints) of one frame;
* ``expected(core, frame)``: the output beats (ints) of one frame, computed
  with :mod:`bnnhw.golden_ops`;
* ``formulas(core)``: optional closed forms of ``throughput``/``latency``
  the suite checks against the measured schedule;
* ``bad_params()``: a list of ``(params, message_fragment)`` that ``build``
  must reject with a ``ValueError`` whose text contains the fragment;
* ``synth_params()``: small parameters for the synthesis check, and
  optionally ``synth_memory_params()`` deep enough that RAM is inferred.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

__all__ = ["register", "get", "names", "entries", "Conformance", "Entry"]


class Conformance:
    """Base conformance adapter; see the module docstring."""

    def configs(self) -> list[tuple[str, dict]]:
        raise NotImplementedError

    def build(self, params: dict, rng):
        raise NotImplementedError

    def frames(self, core, rng, n: int, edge: bool = False) -> list:
        raise NotImplementedError

    def encode(self, core, frame) -> list[int]:
        raise NotImplementedError

    def expected(self, core, frame) -> list[int]:
        raise NotImplementedError

    def bad_params(self) -> list[tuple[dict, str]]:
        return []

    def formulas(self, core) -> dict:
        """Documented closed forms (e.g. ``{"throughput": NF*SF, "latency": ...}``) that
        the suite compares with the core's properties; {} when there are none."""
        return {}

    def synth_params(self) -> dict | None:
        return None

    def synth_memory_params(self) -> dict | None:
        """Parameters for which Yosys must infer at least one RAM (or None)."""
        return None


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    conformance: Conformance | None


_REGISTRY: dict[str, Entry] = {}


def register(name: str, *, conformance: type[Conformance] | None = None):
    """Class decorator: register a core under ``name`` with its conformance adapter."""
    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"core name {name!r} is already registered "
                             f"by {_REGISTRY[name].cls.__qualname__}")
        cls.kind = name
        _REGISTRY[name] = Entry(name, cls, conformance() if conformance else None)
        return cls
    return deco


_LOADED = False


def _load_builtin():
    """Import every module of this package, so a core file registers itself just by
    existing (adding a core = one file with a ``@register``)."""
    global _LOADED
    if _LOADED:
        return
    pkg = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__package__}.{info.name}")
    _LOADED = True


def get(name: str) -> type:
    """The core class registered as ``name``."""
    _load_builtin()
    try:
        return _REGISTRY[name].cls
    except KeyError:
        raise ValueError(f"unknown core {name!r}; registered: {sorted(_REGISTRY)}") from None


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def entries() -> list[Entry]:
    _load_builtin()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]
