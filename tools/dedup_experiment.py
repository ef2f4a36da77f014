#!/usr/bin/env python3
"""The single-layer dedup experiment (issue: filter-repetition dedup, step 1).

For each chosen layer of a model, builds the fully unrolled constant-weight
layer of :mod:`bnnhw.dedup` in its three forms -- ``flat`` (one adder tree
per output over the im2col row: the baseline), ``grouped`` (per-(group,
output) popcounts, then a tree: Yosys' opt_merge may share duplicates),
``shared`` (explicit per-(group, kernel up to complement) popcounts) -- and
synthesises each with the project's out-of-context Yosys flow
(:func:`bnnhw.cores.synth.synth_stats`, ``synth_ecp5`` / ``synth_ice40``).

Checks on every row: no block or distributed RAM, and flip-flops = the
registered input and output bits only (the weights are netlist constants).
Prints, per layer, the kernel statistics (groups x outputs, distinct kernels,
distinct up to complement) and LUT4 per form and family, with the saving of
``shared`` over the better of the two baselines.

Usage::

    python tools/dedup_experiment.py --model runs/cnv-cifar10/cnv.pt --layers conv0,conv1
    python tools/dedup_experiment.py --model tfc-mnist --layers fc0,fc1,fc2
    python tools/dedup_experiment.py ... --families ecp5 --modes flat,shared --json out.json

fc layers have no 2D kernels; their inputs are grouped ``--fc-group``
consecutive columns at a time (default 9, a 3x3 kernel's size).  The output
layer (no thresholds) is not a candidate.  Synthesis is single-threaded and
takes minutes for a 64x576 layer.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnhw.zoo import resolve as resolve_model_name              # noqa: E402
from bnnhw.cores.synth import synth_stats                      # noqa: E402
from bnnhw.dedup import MODES, UnrolledDense, share_plan       # noqa: E402
from bnnhw import layout                                       # noqa: E402
from bnnhw.export import load_model_any                        # noqa: E402


def kernel_stats(layer, group):
    groups, classes, use = share_plan(layer, group)
    w = np.asarray(layer.weights, dtype=np.uint8)
    distinct = sum(len(np.unique(w[:, cols], axis=0)) for cols in groups)
    merged = sum(len(c) for c in classes)
    pairs = len(groups) * layer.mh
    return {"groups": len(groups), "outputs": layer.mh, "pairs": pairs,
            "distinct": distinct, "distinct_frac": distinct / pairs,
            "merged": merged, "merged_frac": merged / pairs}


def slice_channels(layer, n):
    """The conv layer restricted to input channels ``0..n-1`` (see ``--in-channels``)."""
    import dataclasses
    k, c = layer.kernel, layer.in_shape[-1]
    cols = [layout.im2col_index(ky, kx, ch, k, c) for ky in range(k) for kx in range(k)
            for ch in range(n)]                      # im2col order of the smaller window
    w = np.asarray(layer.weights)[:, cols]
    mw = w.shape[1]
    if layer.input_bits == 1:
        lo, hi, mid = 0, mw, mw // 2
    else:
        big = 1 << layer.input_bits
        lo, hi, mid = -mw * big, mw * big, 0
    return dataclasses.replace(layer, name=f"{layer.name}[:{n}]", weights=w,
                               in_shape=(*layer.in_shape[:-1], n), acc_min=lo, acc_max=hi,
                               thresholds=np.full(layer.mh, mid, np.int64))


def logic_cells(st, family):
    """LUT4s a design occupies: on ECP5 a CCU2C carry cell holds two LUT4s; an iCE40
    SB_CARRY rides along a LUT4 that is already counted."""
    return st["lut"] + (2 * st["carry"] if family == "ecp5" else 0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint, IR file or zoo name")
    ap.add_argument("--layers", required=True, help="comma-separated layer names")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--families", default="ecp5,ice40")
    ap.add_argument("--fc-group", type=int, default=9)
    ap.add_argument("--in-channels", type=int, default=None, metavar="N",
                    help="conv layers: keep only the first N input channels (all output "
                         "channels; the per-input-channel kernel statistics are unchanged, "
                         "thresholds are set to the middle of the smaller range)")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)

    ir, _ = load_model_any(resolve_model_name(args.model))
    by_name = {l.name: l for l in ir.layers}
    rows = []
    for name in args.layers.split(","):
        if name not in by_name:
            sys.exit(f"no layer {name!r} in {args.model}; layers: {', '.join(by_name)}")
        layer = by_name[name]
        if args.in_channels and layer.kind == "conv":
            layer = slice_channels(layer, args.in_channels)
        ks = kernel_stats(layer, args.fc_group)
        print(f"{name}: {layer.kind} {layer.mh}x{layer.mw} input_bits={layer.input_bits}; "
              f"{ks['pairs']} (group, output) kernels, distinct {ks['distinct']} "
              f"({ks['distinct_frac']:.1%}), up to complement {ks['merged']} "
              f"({ks['merged_frac']:.1%})", flush=True)
        io_bits = layer.mw * layer.input_bits + layer.mh
        for fam in args.families.split(","):
            for mode in args.modes.split(","):
                t = time.time()
                st = synth_stats(UnrolledDense(layer, mode, args.fc_group), fam)
                row = {"layer": layer.name, "family": fam, "mode": mode, "lut": st["lut"],
                       "logic": logic_cells(st, fam),
                       "ff": st["ff"], "ram": st["ram"], "lutram": st["lutram"],
                       "carry": st["carry"], "seconds": round(time.time() - t, 1), **ks}
                row["constant_weights"] = (st["ram"] == 0 and st["lutram"] == 0
                                           and st["ff"] <= io_bits)
                rows.append(row)
                print(f"  {fam:5s} {mode:8s} LUT4 {st['lut']:7d} (+carry: {row['logic']:7d})"
                      f"  FF {st['ff']:5d} "
                      f"RAM {st['ram']} carry {st['carry']:6d}  {row['seconds']:6.1f}s"
                      + ("" if row["constant_weights"] else "  NOT constant-weight!"),
                      flush=True)
    print()
    print("| layer | family | kernels distinct / up to compl. | " +
          " | ".join(f"{m} LUT4" for m in args.modes.split(",")) + " | shared saves |")
    print("(LUT4 incl. the two in each ECP5 CCU2C carry cell)")
    print("|---|---|---|" + "---|" * len(args.modes.split(",")) + "---|")
    for name in dict.fromkeys(x["layer"] for x in rows):
        for fam in args.families.split(","):
            r = {x["mode"]: x for x in rows if x["layer"] == name and x["family"] == fam}
            if not r:
                continue
            any_r = next(iter(r.values()))
            base = min(r[m]["logic"] for m in r if m != "shared") if len(r) > 1 else None
            save = (f"{1 - r['shared']['logic'] / base:.1%}" if base and "shared" in r else "-")
            print(f"| {name} | {fam} | {any_r['distinct_frac']:.1%} / {any_r['merged_frac']:.1%} | "
                  + " | ".join(str(r[m]["logic"]) if m in r else "-"
                               for m in args.modes.split(",")) + f" | {save} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "rows": rows}, indent=1))
    bad = [r for r in rows if not r["constant_weights"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
