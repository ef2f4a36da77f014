"""``bnnhw sim``: stream a test set through the generated Verilog, bit-exact against golden.

Builds the accelerator for the chosen folding (or takes a build folder's exact
Verilog with ``--from DIR``), streams the images through it in Verilator (or
Icarus) with random back-pressure on both sides, and compares every class
index with the golden model.  Timing is measured without stalls: when
``--stall`` is above 0 a second, stall-free pass over the same images gives
``cycles_per_frame`` (same simulator build).

JSON keys (DESIGN.md 3b, plus more): ``frames``, ``mismatches``,
``cycles_per_frame`` (steady state without stalls: mean spacing of the frame
completions over the second half of the images), ``bound_cycles_per_frame``
(analytic: the slowest layer), ``efficiency`` (bound / measured),
``latency_cycles`` (first input beat to the class index of the first image,
no stalls), ``accuracy`` (of the hardware's answers against the labels),
``golden_accuracy``, ``cycles_per_frame_with_stalls``, ``folding``,
``fifo_depths``, estimates, and timings.  On a mismatch the command exits 1
with ``ok: false``, the first differing image, the first layer that differs
(each layer re-simulated alone in Amaranth's simulator on that image against
the golden model's per-layer outputs) and the waveform of the failing run.
"""
from __future__ import annotations

import json
import os
import sys
import time

from ..errors import BnnhwError
from .common import add_dataset_args, add_threads_arg, log, set_threads

NAME = "sim"
HELP = "simulate the generated accelerator on a test set, bit-exact against the golden model"


def add_folding_args(p):
    """The folding options shared by ``sim`` and ``build``."""
    g = p.add_argument_group("folding (choose one; default: as fast as the input stream "
                             "allows)")
    g.add_argument("--folding", default=None, metavar="FILE",
                   help="folding JSON file (e.g. a build's folding.json, edited)")
    g.add_argument("--target-cycles", type=int, default=None, metavar="N",
                   help="every layer at most N cycles per frame, with the fewest LUTs")
    g.add_argument("--target-fps", type=float, default=None, metavar="F",
                   help="frames per second to reach at --clock-mhz")
    g.add_argument("--clock-mhz", type=float, default=None, metavar="C",
                   help="clock frequency for --target-fps (alone: the clock fps_at_clock "
                        "is reported at)")
    g.add_argument("--max-luts", type=int, default=None, metavar="N",
                   help="fastest folding whose LUT estimate fits N")
    g.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                   help="use a build folder's exact design (its IR, folding and Verilog)")


def add_arguments(p):
    p.add_argument("--model", default=None,
                   help="training checkpoint (.pt) or IR file (optional with --from)")
    add_dataset_args(p)
    p.add_argument("--count", type=int, default=None, help="simulate only the first N images")
    p.add_argument("--stall", type=float, default=0.25,
                   help="probability that the source withholds valid / the sink drops "
                        "ready on a cycle (default 0.25; 0 = one stall-free pass)")
    p.add_argument("--seed", type=int, default=1, help="seed of the stall pattern")
    add_folding_args(p)
    p.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")
    p.add_argument("--save-folding", default=None, metavar="FILE",
                   help="write the chosen folding (folding.json format)")
    p.add_argument("--work-dir", default=None, metavar="DIR",
                   help="keep the simulation files (beats, logs, waves) here")
    p.add_argument("--no-locate", action="store_true",
                   help="on a mismatch, skip the layer-by-layer search")
    add_threads_arg(p)


def _plan_kwargs(args) -> dict:
    # --clock-mhz alone only sets the clock that fps_at_clock is reported at
    return {"target_cycles": args.target_cycles, "target_fps": args.target_fps,
            "clock_mhz": args.clock_mhz if args.target_fps is not None else None,
            "max_luts": args.max_luts}


def load_model_for(args):
    """``(ir, ck, built)`` for ``--model`` / ``--from``: ``built`` is ``(plan, verilog,
    meta)`` of a build folder, else None (shared with ``bnnhw build``)."""
    from ..dataflow import read_build_dir
    from ..export import load_model_any

    if args.from_dir:
        clash = [n for n, v in (("--folding", args.folding),
                                ("--target-cycles", args.target_cycles),
                                ("--target-fps", args.target_fps),
                                ("--clock-mhz", args.clock_mhz),
                                ("--max-luts", args.max_luts)) if v is not None]
        if clash:
            raise BnnhwError(f"--from uses the build's folding; do not also give "
                             f"{', '.join(clash)}", "drop them, or build a new folder")
        ir, plan, text, meta = read_build_dir(args.from_dir)
        est_path = os.path.join(args.from_dir, "estimates.json")
        if os.path.isfile(est_path):
            with open(est_path, encoding="utf-8") as f:
                meta = dict(meta, estimates=json.load(f))
        ck = None
        if args.model:
            other, ck = load_model_any(args.model)
            if not _same_network(ir, other):
                raise BnnhwError(f"--model {args.model} is not the network built in "
                                 f"{args.from_dir}", "drop --model, or rebuild the folder "
                                 "from this model")
        return ir, ck, (plan, text, meta)
    if not args.model:
        raise BnnhwError("no model given", "pass --model m.pt (or an IR file), or --from DIR")
    ir, ck = load_model_any(args.model)
    return ir, ck, None


def design_for(args, ir, built):
    """``(plan, design_or_None, verilog_text, meta, generate_s)`` for the folding options
    of ``args`` (or the build folder's design)."""
    from ..dataflow import build_design, load_folding_file, plan_folding
    if built is not None:
        plan, text, meta = built
        return plan, None, text, meta, 0.0
    folding = load_folding_file(args.folding) if args.folding else None
    plan = plan_folding(ir, folding=folding, source=args.folding, **_plan_kwargs(args))
    t0 = time.perf_counter()
    design = build_design(ir, plan)
    text = design.verilog()
    gen_s = time.perf_counter() - t0
    meta = {"input_width": design.input_width, "output_width": design.output_width,
            "fifo_depths": design.fifo_depths, "bound_cycles_per_frame": design.bound_cycles}
    return plan, design, text, meta, gen_s


def _same_network(a, b) -> bool:
    ha, hb = a.header(), b.header()
    keys = ("input", "num_classes", "output")
    return (all(ha[k] == hb[k] for k in keys)
            and {k: v["sha256"] for k, v in ha["arrays"].items()}
            == {k: v["sha256"] for k, v in hb["arrays"].items()}
            and [(l["name"], l["kind"]) for l in ha["layers"]]
            == [(l["name"], l["kind"]) for l in hb["layers"]])


def _steady_cycles(res) -> float | None:
    """Mean spacing of frame completions over the second half of the frames."""
    done = res.frame_done_cycles
    if done is None or len(done) < 2:
        return None
    n = len(done)
    m = n // 2 if n >= 4 else 0
    return float(done[-1] - done[m]) / (n - 1 - m)


def run(args):
    """Check the options and output paths first, then simulate (:func:`_run`)."""
    from ..outputs import atomic_write, check_output_folder, claim_folder
    from .common import check_count, check_output_path

    set_threads(args.threads)
    check_count(args.count)
    if not 0.0 <= args.stall < 1.0:
        raise BnnhwError(f"--stall {args.stall} is outside [0, 1)", "e.g. --stall 0.3")
    if args.save_folding:
        check_output_path(args.save_folding, "--save-folding")
    if args.work_dir:
        check_output_folder(args.work_dir, "--work-dir")
        with claim_folder(args.work_dir, kind="sim", option="--work-dir"):
            return _run(args, atomic_write)
    return _run(args, atomic_write)


def _run(args, atomic_write):
    """``run`` after the option checks (in the held ``--work-dir`` folder, if any)."""
    import numpy as np

    from ..dataflow import estimates_summary
    from ..dataflow.design import TOP_NAME, encode_images
    from ..golden import GoldenModel
    from ..kinds import get_kind
    from ..sim import simulate
    from .common import model_images

    ir, ck, built = load_model_for(args)
    # the images first: a wrong dataset fails before any generation
    ds, x, y = model_images(ir, ck, args.dataset, args.split, args.data_dir, count=args.count,
                            hint="simulate on the dataset the model was trained on")
    q = ir.input

    plan, design, text, meta, gen_s = design_for(args, ir, built)
    log(f"folding ({plan.mode}): bound {plan.bound_cycles} cycles/frame "
        f"(bottleneck {plan.bottleneck})\n{plan.describe()}")
    if gen_s:
        log(f"generated Verilog in {gen_s:.1f} s ({len(text) // 1024} KiB)")
    if args.save_folding:
        atomic_write(args.save_folding, json.dumps(plan.to_json(), indent=1, sort_keys=True)
                     + "\n", text=True)
    golden = GoldenModel(ir).predict(x)
    beats = encode_images(ir, x)
    n, elems = len(x), q.height * q.width * q.channels
    bound = int(meta.get("bound_cycles_per_frame") or plan.bound_cycles)
    wi, wo = int(meta["input_width"]), int(meta["output_width"])

    def timeout(stall):
        slow = 1.0 / max(1e-3, (1 - stall) ** 2)
        return int(((n + 4) * bound * 2 + 200_000) * slow)

    work = args.work_dir
    common = dict(wi=wi, wo=wo, seed=args.seed, simulator=args.simulator,
                  frame_in_beats=elems, frame_out_beats=1, bench="hdl")
    passes = {}
    t0 = time.perf_counter()
    log(f"simulating {n} images with {args.simulator}"
        + (f", stall probability {args.stall}" if args.stall else ", no stalls"))
    if args.stall > 0:
        passes["stall"] = simulate(text, TOP_NAME, beats, golden, stall=args.stall,
                                   waves="on_failure", timeout_cycles=timeout(args.stall),
                                   work_dir=os.path.join(work, "stall") if work else None,
                                   **common)
    passes["timing"] = simulate(text, TOP_NAME, beats, golden, stall=0.0,
                                waves="on_failure" if args.stall == 0 else False,
                                timeout_cycles=timeout(0.0),
                                work_dir=os.path.join(work, "timing") if work else None,
                                **common)
    sim_s = time.perf_counter() - t0
    timing = passes["timing"]
    main = passes.get("stall", timing)
    cpf = _steady_cycles(timing)
    hw = np.asarray(main.out_beats[:n]).astype(np.int64)
    answered = len(hw)
    accuracy = float((hw == np.asarray(y[:answered])).mean()) if answered else None
    build_s = sum(p.build_s for p in passes.values())
    run_s = sum(p.sim_wall_s for p in passes.values())
    result = {
        "frames": n,
        "mismatches": int(main.mismatches + main.missing_beats + main.extra_beats),
        "mismatches_no_stall": int(timing.mismatches + timing.missing_beats
                                   + timing.extra_beats),
        "cycles_per_frame": cpf,
        "cycles_per_frame_with_stalls": _steady_cycles(main) if "stall" in passes else None,
        "bound_cycles_per_frame": bound,
        "efficiency": (bound / cpf) if cpf else None,
        "latency_cycles": timing.latency_cycles,
        "accuracy": accuracy,
        "golden_accuracy": float((golden == np.asarray(y)).mean()),
        "stall": args.stall,
        "simulator": args.simulator,
        "folding": [f.as_dict() | ({"planes": f.planes}
                                   if "planes" in get_kind(f.kind).fold_keys else {})
                    for f in plan.folds],
        "folding_mode": plan.mode,
        "fifo_depths": list(meta.get("fifo_depths", [])),
        "generate_s": round(gen_s, 3),
        "build_s": round(build_s, 3),
        "sim_s": round(sim_s, 3),
        "sim_run_s": round(run_s, 3),
        "cache_hit": all(p.cache_hit for p in passes.values()),
        "frames_per_second_simulated": (round(n / timing.sim_wall_s, 2)
                                        if timing.sim_wall_s else None),
    }
    if design is not None:
        result.update(estimates_summary(design))
    elif meta.get("estimates"):
        result.update(estimates_summary(meta["estimates"]))
    clock = plan.clock_mhz or args.clock_mhz
    if clock and cpf:
        result["clock_mhz"] = clock
        result["fps_at_clock"] = clock * 1e6 / cpf
    bad = result["mismatches"] or result["mismatches_no_stall"] or main.timed_out \
        or timing.timed_out
    if not bad:
        log(f"{n} images bit-exact; {cpf:.1f} cycles/frame (bound {bound}, efficiency "
            f"{bound / cpf:.3f}), accuracy {accuracy:.4f}")
        return result
    failing = main if (main.mismatches or main.timed_out or main.missing_beats) else timing
    first = failing.first_mismatch_beat
    if first is None:
        first = int(min(failing.out_received, n - 1))
    result["first_mismatch_image"] = int(first)
    result["waves"] = str(failing.waves_path) if failing.waves_path else None
    where = None
    if not args.no_locate:
        from ..dataflow import locate_mismatch
        log(f"locating the first layer that differs on image {first} (Amaranth simulator)")
        diff = locate_mismatch(ir, plan, x[first])
        result["first_mismatch_layer"] = diff.layer
        result["first_mismatch_detail"] = diff.detail
        where = diff.layer
    what = (f"{result['mismatches']} of {n} images differ from the golden model"
            + (" (timed out)" if failing.timed_out else "")
            + f"; first: image {first}"
            + (f", first differing layer: {where}" if where else ""))
    result.update(ok=False, error=what,
                  hint=(f"waveform: {result['waves']}" if result.get("waves") else
                        "rerun with --work-dir DIR to keep the simulation files"))
    if getattr(args, "json", False):
        print(json.dumps(result, sort_keys=True, default=str))
    else:
        print(f"error: {what}", file=sys.stderr)
        print(f"hint: {result['hint']}", file=sys.stderr)
    raise SystemExit(1)
