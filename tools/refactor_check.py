#!/usr/bin/env python3
"""Fingerprint the hardware generator: Verilog hashes, estimates and chosen foldings.

For a refactoring that must not change what bnnhw builds: run it before and after
and compare the outputs (they must be identical).  No synthesis runs.

Networks (fixed seeds): TFC and LFC from the zoo (``tfc-digits``, ``tfc-mnist``,
``lfc-mnist``), a
full-size random-weight CNV (8-bit signed input, FINN's CNV shape) and a small
random conv net with a per-class score table (``rank_table``) and an 8-bit input.
For each: a fixed folding (``plan_folding`` at a target), the sha256 of its Verilog,
its estimates and folding (sha256 of the canonical JSON, plus the headline figures),
the fit estimate on ulx3s-85f and icebreaker, and the folding the board-fit search
chooses (``plan_for_board``) on those boards.

    .venv/bin/python tools/refactor_check.py [--quick] > before.txt
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _h(obj) -> str:
    if isinstance(obj, str):
        data = obj.encode()
    else:
        data = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def networks(quick: bool):
    from bnnhw.ir import load_ir
    from bnnhw.zoo import files
    from tests.system.netgen import random_ir
    nets = [("tfc-digits", load_ir(str(files("tfc-digits")["bnn"])), [64, 300]),
            ("tfc", load_ir(str(files("tfc-mnist")["bnn"])), [2000, 800]),
            ("lfc", load_ir(str(files("lfc-mnist")["bnn"])), [20000]),
            ("small_rank", random_ir(input=(12, 12, 3, 8), layers=[
                ("conv", 8, 3, 1, 1), ("pool", 2), ("conv", 16, 3, 1, 0), ("pool", 2),
                ("fc", 32), ("fc", 10)], seed=7, signed=True, rank_table=True), [1400, 5000])]
    if not quick:
        nets.append(("cnv", random_ir(input=(32, 32, 3, 8), layers=[
            ("conv", 64, 3, 1, 0), ("conv", 64, 3, 1, 0), ("pool", 2),
            ("conv", 128, 3, 1, 0), ("conv", 128, 3, 1, 0), ("pool", 2),
            ("conv", 256, 3, 1, 0), ("conv", 256, 3, 1, 0),
            ("fc", 512), ("fc", 512), ("fc", 10)], seed=11, signed=True), [32768]))
    return nets


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the full-size CNV")
    ap.add_argument("--no-fit-search", action="store_true")
    args = ap.parse_args(argv)
    try:
        from bnnhw.dataflow.fit import estimate_fit, plan_for_board
    except ImportError:   # before the board fit moved into the dataflow layer
        from bnnhw.commands.build import estimate_fit, plan_for_board
    from bnnhw.dataflow import build_design, plan_folding
    from bnnhw.boards.registry import get_board
    boards = [get_board("ulx3s-85f"), get_board("icebreaker")]
    quiet = lambda msg: None  # noqa: E731
    for name, ir, targets in networks(args.quick):
        print(f"== {name}: ir sha256 {hashlib.sha256(ir.to_bytes()).hexdigest()[:16]}")
        for t in targets:
            plan = plan_folding(ir, target_cycles=t)
            d = build_design(ir, plan)
            est = d.estimates
            print(f"  target {t}: folding {_h(plan.to_json())} "
                  f"{[(f.simd, f.pe, f.planes) for f in plan.folds]}")
            print(f"    verilog {hashlib.sha256(d.verilog().encode()).hexdigest()}")
            print(f"    estimates {_h(est)}: lut {est['total']['lut']} ebr "
                  f"{est['total']['ebr']} bound {est['bound_cycles_per_frame']} latency "
                  f"{est['latency_cycles_estimate']} fifos {d.fifo_depths}")
            print(f"    figures {_h(plan.figures)}")
            for b in boards:
                fit = estimate_fit(d, b)
                print(f"    fit {b.name}: {_h(fit.to_dict())} lut {fit.lut} ebr {fit.ebr} "
                      f"fits {fit.fits}")
        if name == "tfc":
            plan = plan_folding(ir, max_luts=3000)
            print(f"  budget 3000: folding {_h(plan.to_json())} target {plan.target_cycles}")
        if args.no_fit_search:
            continue
        for b in boards:
            for shell, n in (("uart", 0), ("selftest", 8)):
                try:
                    plan, d, fit = plan_for_board(ir, b, shell=shell, selftest_count=n,
                                                  progress=quiet)
                    print(f"  fit-search {b.name} {shell}: folding {_h(plan.to_json())} "
                          f"bound {plan.bound_cycles} lut {fit.lut} ebr {fit.ebr} "
                          f"{[(f.simd, f.pe, f.planes) for f in plan.folds]}")
                except Exception as e:   # a network that does not fit: the message
                    print(f"  fit-search {b.name} {shell}: {type(e).__name__}: "
                          f"{str(e)[:160]} | {getattr(e, 'hint', '')[:120]}")


if __name__ == "__main__":
    main()
