"""cocotb test module run inside the simulator by :func:`bnnhw.sim.runner.simulate`.

It never runs Python per clock cycle.  With ``BNNHW_HDL_CLOCK=1`` (the
default build) tb_top makes its own clock and reset and the bench only waits
for reset to fall; otherwise it starts cocotb's C++ ("gpi") clock and holds
reset for ``BNNHW_RESET_CYCLES`` cycles.  Then it waits for a
single rising edge of ``tb_top.finished`` (set by the HDL when every expected
beat arrived or the timeout hit), lets ``BNNHW_DRAIN_CYCLES`` more cycles pass
so that extra output beats are counted, reads the wrapper's counters and
writes them as JSON to ``BNNHW_SIM_RESULT``.  The hex dumps are written by
the wrapper's ``final`` block when the simulator exits.

Not meant to be imported by user code (it imports ``cocotb``, which only
works inside a simulator).
"""
from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from .harness import COUNTERS

CLOCK_PERIOD_NS = 10


def _read(dut, name: str) -> int | None:
    value = getattr(dut, name).value
    try:
        return int(value)
    except ValueError:  # X/Z (Icarus only)
        return None


@cocotb.test()
async def stream_run(dut):
    """Reset, wait for ``finished``, drain, and write the counters."""
    t_start = time.perf_counter()
    result_path = os.environ["BNNHW_SIM_RESULT"]
    reset_cycles = int(os.environ.get("BNNHW_RESET_CYCLES", "4"))
    drain_cycles = int(os.environ.get("BNNHW_DRAIN_CYCLES", "16"))

    if os.environ.get("BNNHW_HDL_CLOCK") == "1":
        # tb_top makes its own clock and reset (+reset_cycles)
        if int(dut.rst.value):
            await FallingEdge(dut.rst)
    else:
        dut.rst.value = 1
        dut.clk.value = 0
        Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start(start_high=False)
        await ClockCycles(dut.clk, reset_cycles)
        dut.rst.value = 0
    t_run = time.perf_counter()
    if not int(dut.finished.value):
        await RisingEdge(dut.finished)
    t_finished = time.perf_counter()
    if drain_cycles > 0:
        await ClockCycles(dut.clk, drain_cycles)
    t_end = time.perf_counter()

    out = {name: _read(dut, name) for name in COUNTERS}
    out.update(
        reset_cycles=reset_cycles,
        drain_cycles=drain_cycles,
        wall_setup_s=t_run - t_start,
        wall_run_s=t_finished - t_run,
        wall_drain_s=t_end - t_finished,
    )
    tmp = result_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, result_path)
