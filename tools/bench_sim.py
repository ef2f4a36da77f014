#!/usr/bin/env python3
"""Benchmark the dataflow builder and the whole-network simulation.

For each network (TFC, LFC, CNV; trained checkpoints or IR files when given,
otherwise FINN-sized specs with random binary weights and BatchNorm
calibrated on random images, exported by the real exporter) and a folding:

* ``plan_s``, ``design_s`` (lowering + FIFO sizing), ``verilog_s`` (Amaranth
  elaboration and Verilog emission), the Verilog size;
* ``verilator_build_s`` (0 on a build-cache hit) and, for ``--images`` images
  through Verilator without stalls: simulated ``frames_per_s`` and
  ``cycles_per_s`` (wall clock of the simulator process), ``cycles_per_frame``
  measured (steady state) against the analytic bound (``efficiency``), and
  ``mismatches`` against the golden model.

With ``--lfc-mnist PATH`` it also runs ``bnnhw sim`` on the MNIST test set
(10,000 images by default) with that LFC checkpoint and reports its JSON and
wall time.

Usage::

    python tools/bench_sim.py                                  # tfc, lfc, cnv (random)
    python tools/bench_sim.py --nets lfc --target lfc=4096     # one net, a target
    python tools/bench_sim.py --model cnv=/work/runs/cnv_short.pt --target cnv=50000
    python tools/bench_sim.py --nets none --lfc-mnist /work/runs/lfc_mnist.pt
    python tools/bench_sim.py --json rows.json

Designs of tens of thousands of LUTs take minutes to generate and to compile
with Verilator on a 2-core machine; the defaults pick moderate targets.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPECS = {   # arch, input (C, H, W), dataset kind for the input quantisation
    "tfc": ("tfc", (1, 28, 28), "image"),
    "lfc": ("lfc", (1, 28, 28), "image"),
    "cnv": ("cnv", (3, 32, 32), "image_signed"),
}
DEFAULT_TARGETS = {"tfc": None, "lfc": 4096, "cnv": 50000}   # None: fastest


def random_model_ir(arch, shape, kind, seed=0):
    """Export a spec with random binary weights (BatchNorm from random images)."""
    import torch

    from bnnhw.export import export_model
    from bnnhw.train.models import build_model, input_quant_for, make_spec

    torch.manual_seed(seed)
    spec = make_spec(arch, input_shape=shape, num_classes=10,
                     input_quant=input_quant_for(kind, 8))
    model = build_model(spec)
    x = torch.randint(0, 256, (64, *shape))
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(x)
    return export_model(model, dataset={"name": "random"}, split={}, self_check=4)


def load_ir_for(name, model_path):
    if model_path:
        from bnnhw.export import load_model_any
        ir, _ = load_model_any(model_path)
        return ir, model_path
    arch, shape, kind = SPECS[name]
    return random_model_ir(arch, shape, kind), "random weights"


def bench_net(name, model_path, target, images, simulator):
    from bnnhw.dataflow import build_design, encode_images, plan_folding
    from bnnhw.dataflow.design import TOP_NAME
    from bnnhw.golden import GoldenModel
    from bnnhw.sim import simulate

    row = {"net": name}
    t = time.perf_counter()
    ir, source = load_ir_for(name, model_path)
    row["source"] = source
    row["load_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    plan = plan_folding(ir, target_cycles=target)
    row["plan_s"] = round(time.perf_counter() - t, 3)
    row["folding"] = [(f.name, f.simd, f.pe, f.planes) for f in plan.folds]
    t = time.perf_counter()
    design = build_design(ir, plan)
    row["design_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    text = design.verilog()
    row["verilog_s"] = round(time.perf_counter() - t, 2)
    row["verilog_kib"] = len(text) // 1024
    row["bound_cycles_per_frame"] = design.bound_cycles
    row["lut_estimate"] = design.estimates["total"]["lut"]
    row["ebr_estimate"] = design.estimates["total"]["ebr"]
    row["fifo_depths"] = [d for d in design.fifo_depths if d]
    row["latency_cycles_estimate"] = design.estimates["latency_cycles_estimate"]
    print(f"# {name}: generated in {row['design_s'] + row['verilog_s']:.1f} s, "
          f"bound {design.bound_cycles}", file=sys.stderr, flush=True)
    if images <= 0:
        return row
    q = ir.input
    rng = np.random.default_rng(1)
    lo, hi = q.raw_range
    raw = rng.integers(lo, hi + 1, (images, q.channels, q.height, q.width)).astype(np.uint8)
    gold = GoldenModel(ir).predict(raw)
    beats = encode_images(ir, raw)
    elems = q.channels * q.height * q.width
    res = simulate(text, TOP_NAME, beats, gold, wi=design.input_width,
                   wo=design.output_width, simulator=simulator, bench="hdl",
                   frame_in_beats=elems, frame_out_beats=1,
                   timeout_cycles=(images + 4) * design.bound_cycles * 2 + 200_000)
    done = res.frame_done_cycles
    m = len(done) // 2
    cpf = float(done[-1] - done[m]) / (len(done) - 1 - m) if len(done) > 2 else None
    row.update(verilator_build_s=round(res.build_s, 1), cache_hit=res.cache_hit,
               frames=images, mismatches=res.mismatches + res.missing_beats,
               sim_wall_s=round(res.sim_wall_s, 2),
               frames_per_s=round(images / res.sim_wall_s, 1),
               cycles_per_s=round(res.cycles / res.sim_wall_s),
               cycles_per_frame=cpf, efficiency=(design.bound_cycles / cpf) if cpf else None,
               latency_cycles=res.latency_cycles)
    return row


def lfc_mnist(path, count, target, stall):
    cmd = [sys.executable, "-m", "bnnhw", "sim", "--model", path, "--dataset", "mnist",
           "--stall", str(stall), "--json"]
    if count:
        cmd += ["--count", str(count)]
    if target:
        cmd += ["--target-cycles", str(target)]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        res = {"ok": False, "error": r.stderr[-2000:]}
    res["wall_s"] = round(wall, 1)
    res["returncode"] = r.returncode
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", default="tfc,lfc,cnv", help="comma list of tfc, lfc, cnv (or none)")
    p.add_argument("--model", action="append", default=[], metavar="NET=PATH",
                   help="use a checkpoint or IR file for NET instead of random weights")
    p.add_argument("--target", action="append", default=[], metavar="NET=CYCLES",
                   help="target cycles per frame for NET (0 = fastest); defaults: "
                        + ", ".join(f"{k}={v or 'fastest'}" for k, v in DEFAULT_TARGETS.items()))
    p.add_argument("--images", type=int, default=200, help="images per Verilator run")
    p.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--lfc-mnist", default=None, metavar="PATH",
                   help="also run `bnnhw sim` with this LFC on the MNIST test set")
    p.add_argument("--mnist-count", type=int, default=None, help="images (default: all)")
    p.add_argument("--mnist-target", type=int, default=None,
                   help="target cycles for the MNIST run (default: bnnhw sim's default)")
    p.add_argument("--mnist-stall", type=float, default=0.25)
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    models = dict(kv.split("=", 1) for kv in args.model)
    targets = dict(DEFAULT_TARGETS)
    for kv in args.target:
        k, v = kv.split("=", 1)
        targets[k] = int(v) or None
    rows = []
    nets = [n for n in args.nets.split(",") if n and n != "none"]
    for name in nets:
        if name not in SPECS:
            p.error(f"unknown net {name!r}; choose from {sorted(SPECS)}")
        row = bench_net(name, models.get(name), targets.get(name), args.images, args.simulator)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.lfc_mnist:
        res = lfc_mnist(args.lfc_mnist, args.mnist_count, args.mnist_target, args.mnist_stall)
        res["net"] = "lfc-mnist"
        rows.append(res)
        print(json.dumps(res), flush=True)
    print("\nnet   gen_s  build_s  bound  cyc/frame  eff    frames/s  cycles/s  mismatches",
          file=sys.stderr)
    for r in rows:
        if r.get("net") == "lfc-mnist":
            print(f"lfc on MNIST: {r.get('frames')} images, {r.get('mismatches')} mismatches, "
                  f"accuracy {r.get('accuracy')}, {r.get('cycles_per_frame')} cycles/frame, "
                  f"efficiency {r.get('efficiency')}, wall {r.get('wall_s')} s",
                  file=sys.stderr)
            continue
        gen = r["design_s"] + r["verilog_s"]
        print(f"{r['net']:<5} {gen:6.1f} {r.get('verilator_build_s', '-')!s:>8} "
              f"{r['bound_cycles_per_frame']:6d} {r.get('cycles_per_frame') or 0:10.1f} "
              f"{r.get('efficiency') or 0:5.3f} {r.get('frames_per_s', '-')!s:>9} "
              f"{r.get('cycles_per_s', '-')!s:>9} {r.get('mismatches', '-')!s:>6}",
              file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
