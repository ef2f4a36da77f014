"""Bit-exact stream simulation of generated Verilog (Verilator or Icarus + cocotb).

Main entry point: :func:`bnnhw.sim.runner.simulate` (also importable as
``bnnhw.sim.simulate``).  Submodules: ``toolchain`` (find/configure the
simulators), ``harness`` (the HDL testbench wrapper ``tb_top`` and its file
formats), ``runner`` (cached builds, runs, results), ``bench`` (the cocotb
test module run inside the simulator).
"""

_EXPORTS = {
    "simulate": "runner", "build": "runner", "build_key": "runner", "SimResult": "runner",
    "SimError": "runner", "Build": "runner", "SimulatorNotFound": "toolchain",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    # lazy, so that cocotb importing bnnhw.sim.bench inside the simulator stays light
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
