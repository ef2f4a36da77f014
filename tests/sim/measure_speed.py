"""Measure the simulation harness: build times, simulated cycles/s, start-up cost.

Not a test (pytest does not collect it).  Run from the repository root:

    .venv/bin/python -m tests.sim.measure_speed [--beats 1000000] [--cold-cache DIR]

Prints one JSON object per measurement.  ``--cold-cache`` points
``BNNHW_CACHE`` at an empty folder first, to time builds from nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from bnnhw.sim import runner
from .duts import AddInvert, to_verilog


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--beats", type=int, default=1_000_000)
    ap.add_argument("--wi", type=int, default=12)
    ap.add_argument("--wo", type=int, default=70)
    ap.add_argument("--cold-cache", default=None)
    ap.add_argument("--configs", default="cocotb,cocotb-gpi-clock,hdl")
    ap.add_argument("--icarus-beats", type=int, default=100_000)
    args = ap.parse_args()
    if args.cold_cache:
        os.makedirs(args.cold_cache, exist_ok=True)
        os.environ["BNNHW_CACHE"] = args.cold_cache
    wi, wo = args.wi, args.wo
    d = AddInvert(wi, wo, 5)
    v = to_verilog(d)

    def out(**kw):
        print(json.dumps(kw), flush=True)

    # build times: from nothing (if --cold-cache), a second design (runtime reused), a hit
    for k in (5, 6):
        vk = to_verilog(AddInvert(wi, wo, k))
        t = time.perf_counter()
        b = runner.build(vk, "dut", wi=wi, wo=wo)
        out(what="build", k=k, cache_hit=b.cache_hit, build_s=round(time.perf_counter() - t, 2))
    t = time.perf_counter()
    b = runner.build(v, "dut", wi=wi, wo=wo)
    out(what="build", k=5, cache_hit=b.cache_hit, build_s=round(time.perf_counter() - t, 3))

    # start-up cost: a 10-beat run, cocotb vs Python-free, Verilator and Icarus
    ins10 = np.arange(10, dtype=np.uint64)
    exp10 = d.model(ins10)
    for sim in ("verilator", "icarus"):
        for bench in ("cocotb", "hdl"):
            r = runner.simulate(v, "dut", ins10, exp10, wi=wi, wo=wo, simulator=sim, bench=bench)
            r = runner.simulate(v, "dut", ins10, exp10, wi=wi, wo=wo, simulator=sim, bench=bench)
            out(what="startup", simulator=sim, bench=bench, ok=r.ok, wall_s=round(r.wall_s, 3),
                sim_process_s=round(r.sim_wall_s, 3), sim_cpu_s=round(r.sim_cpu_s, 3),
                cache_hit=r.cache_hit)

    rng = np.random.default_rng(0)
    n = args.beats
    ins = rng.integers(0, 2**wi, n, dtype=np.uint64)
    exp = np.empty(n, dtype=object) if wo > 64 else np.empty(n, dtype=np.uint64)
    exp[:] = d.model(ins)
    configs = {
        "cocotb": dict(), "cocotb-gpi-clock": dict(hdl_clock=False), "hdl": dict(bench="hdl"),
    }
    for name in args.configs.split(","):
        for stall in (0.0, 0.3):
            r = runner.simulate(v, "dut", ins, exp, wi=wi, wo=wo, stall=stall,
                                frame_out_beats=100, **configs[name])
            out(what="long", config=name, beats=n, stall=stall, ok=r.ok, cycles=r.cycles,
                cycles_per_frame=r.cycles_per_frame, build_s=round(r.build_s, 2),
                cache_hit=r.cache_hit, wall_s=round(r.wall_s, 2),
                sim_process_s=round(r.sim_wall_s, 2), sim_cpu_s=round(r.sim_cpu_s, 2),
                run_s=round(r.run_wall_s, 2),
                cycles_per_s_run=round(r.cycles / r.run_wall_s),
                cycles_per_s_process=round(r.cycles / r.sim_wall_s),
                cycles_per_cpu_s_process=round(r.cycles / r.sim_cpu_s),
                python_side_s=round(r.wall_s - r.sim_wall_s - r.build_s, 2))
    n = args.icarus_beats
    if n:
        for bench in ("cocotb", "hdl"):
            r = runner.simulate(v, "dut", ins[:n], exp[:n], wi=wi, wo=wo, simulator="icarus",
                                bench=bench, frame_out_beats=100)
            out(what="long", config=f"icarus-{bench}", beats=n, ok=r.ok, cycles=r.cycles,
                wall_s=round(r.wall_s, 2), sim_process_s=round(r.sim_wall_s, 2),
                sim_cpu_s=round(r.sim_cpu_s, 2), run_s=round(r.run_wall_s, 2),
                cycles_per_s_run=round(r.cycles / r.run_wall_s))


if __name__ == "__main__":
    main()
