"""``bnnhw build``: model -> folded accelerator -> board shell -> bitstream, with a report.

    bnnhw build --model m.pt --board icebreaker -o DIR [folding options]
                [--clock-mhz C] [--self-test [N]] [--seed S] [--json]

Stages (progress on stderr, one line each; a failing stage names itself and
its log, and leaves no bitstream):

1. **load** the checkpoint or IR (``--from DIR``: a build folder's exact design);
2. **plan** the folding: the user's (``--folding FILE``, ``--target-cycles N``,
   ``--target-fps F`` at the build clock, ``--max-luts N``; the same options as
   ``bnnhw sim``), or by default the *fastest folding that fits the board*.
   Either way a fit check runs before synthesis (:mod:`bnnhw.dataflow.fit`): the
   estimated LUT4s, block RAMs and shell of the design against the device.  An
   explicit folding that does not fit is an error naming the layers to fold
   further; a network that does not fit even fully folded (PE=SIMD=1) is an
   error naming what it needs.
3. **design**: stitch the cores, write the build folder
   (:func:`bnnhw.dataflow.write_build_dir`: ``model.bnn``, ``folding.json``,
   ``bnnhw_top.v``, ``estimates.json``, ``design.json``) -- ``bnnhw sim --from
   DIR`` simulates exactly this design;
4. wrap it in the board's **shell**: the UART link (``bnnhw run``), or with
   ``--self-test`` the first N test images of the model's dataset and their
   golden classes in on-chip ROM (pass: steady LED, fail: blinking LED);
5. **synth / pnr / pack** through YoWASP (:func:`bnnhw.boards.build.build_bitstream`,
   fixed ``--seed``; the synthesised netlist is kept as ``build/top.netlist.v``),
   then **hier** (per-module resources);
6. **report** (:mod:`bnnhw.report`): ``report.json``, ``report.txt``, ``report.png``
   (matplotlib), and the table on stdout (``--json``: the DESIGN.md 3b keys on the
   last stdout line);
7. optionally (``--gate-sim N``) synthesise the accelerator alone with the same
   Yosys script and stream N test images through its netlist against the golden
   model (:mod:`bnnhw.sim.gatesim`).

The function for programs (the demo): :func:`run_build`.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback

from ..errors import BnnhwError

NAME = "build"
HELP = "build a bitstream of the accelerator for a board (folding, shell, Yosys, nextpnr)"

DEFAULT_SELFTEST_IMAGES = 8

def _log(msg: str) -> None:
    print(f"[bnnhw build] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- CLI

def add_arguments(p):
    from .common import add_dataset_args, add_threads_arg
    from .sim import add_folding_args
    p.add_argument("--model", default=None,
                   help="training checkpoint (.pt) or IR file (optional with --from)")
    p.add_argument("--board", required=True,
                   help="board name (see `bnnhw boards`) or an amaranth-boards platform as "
                        "module:Class")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="build folder: IR, folding.json, Verilog, logs, reports, bitstream")
    add_folding_args(p)
    for a in p._actions:   # same options as `bnnhw sim`; the clock means more here
        if "--clock-mhz" in a.option_strings:
            a.help = ("accelerator clock through the board's PLL (default: the board "
                      "oscillator); also the clock of --target-fps")
        if "--target-fps" in a.option_strings:
            a.help = "frames per second to reach at the build clock"
    p.add_argument("--self-test", nargs="?", type=int, const=DEFAULT_SELFTEST_IMAGES,
                   default=None, metavar="N",
                   help="self-test bitstream: the first N (default "
                        f"{DEFAULT_SELFTEST_IMAGES}) test images and their golden classes "
                        "in on-chip memory, pass/fail on the LEDs (no host link)")
    add_dataset_args(p, required=False)
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    p.add_argument("--dedup", choices=("auto", "on", "off"), default="auto",
                   help="fold constant (dead) channels into the next layer's thresholds "
                        "(bit-exact): auto (default) where the estimate is faster or "
                        "smaller, on, off; see docs/dedup.md")
    p.add_argument("--baud", type=int, default=None,
                   help="UART baud rate (default: 3000000 where the clock divides it within "
                        "1.5%%, else 1000000)")
    p.add_argument("--allow-timing-fail", action="store_true",
                   help="keep the bitstream even when nextpnr's fmax is below the clock")
    p.add_argument("--no-per-module", action="store_true",
                   help="skip the second (hierarchical) synthesis that gives per-layer "
                        "resources")
    p.add_argument("--no-plot", action="store_true", help="do not draw report.png")
    p.add_argument("--dry-run", action="store_true",
                   help="stop before the tools: write the build folder and the board's build "
                        "plan (DIR/build: RTLIL, Yosys script, constraints, commands)")
    p.add_argument("--gate-sim", type=int, default=0, metavar="N",
                   help="after the build, simulate the synthesised accelerator netlist "
                        "(same Yosys script) on N test images against the golden model")
    add_threads_arg(p)


def run(args) -> dict:
    from .common import set_threads
    set_threads(args.threads)
    res = run_build(
        args.model, args.board, args.output, folding=args.folding,
        target_cycles=args.target_cycles, target_fps=args.target_fps,
        clock_mhz=args.clock_mhz, max_luts=args.max_luts, from_dir=args.from_dir,
        self_test=args.self_test, dataset=args.dataset, split=args.split,
        data_dir=args.data_dir, seed=args.seed, baud=args.baud,
        allow_timing_fail=args.allow_timing_fail, per_module=not args.no_per_module,
        plot=not args.no_plot, gate_sim=args.gate_sim, dry_run=args.dry_run,
        dedup=args.dedup)
    if not getattr(args, "json", False):
        print(res["_table"])
    return {k: v for k, v in res.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------- stages

@contextlib.contextmanager
def _stage(name: str, out_dir: str | None = None):
    """Turn an unexpected exception of a stage into a BnnhwError that names the stage
    (an OSError as an environment problem; any other exception as a probable bug, its
    traceback in DIR/logs/STAGE.log when the folder exists)."""
    try:
        yield
    except (BnnhwError, KeyboardInterrupt, SystemExit):
        raise
    except OSError as e:     # the environment (disk full, permissions), not a bug
        raise BnnhwError(f"build stage {name} failed: {e.strerror or e}"
                         + (f": {e.filename!r}" if e.filename else ""),
                         "check the free disk space and the permissions of the output "
                         "folder") from None
    except Exception as e:   # a bug: no traceback on screen
        where = ""
        if out_dir and os.path.isdir(out_dir):
            logs = os.path.join(out_dir, "logs")
            os.makedirs(logs, exist_ok=True)
            path = os.path.join(logs, f"{name}.log")
            with open(path, "w", encoding="utf-8") as f:
                traceback.print_exc(file=f)
            where = f"; log: {path}"
        raise BnnhwError(f"build stage {name} failed: {type(e).__name__}: {e}{where}",
                         "this is probably a bnnhw bug: please report it with the model "
                         "and the command line") from e


# ---------------------------------------------------------------------------- helpers

def _try_plan(plan_ir, ir):
    """``plan_ir(ir)`` quietly, or the error's message when it cannot be planned."""
    try:
        return plan_ir(ir, quiet=True)
    except BnnhwError as e:
        return str(e)


def _figures(planned) -> dict | None:
    if planned is None or isinstance(planned, str):
        return None
    plan, _design, fit = planned
    return {"bound_cycles": int(plan.bound_cycles), "lut": int(fit.lut), "ebr": int(fit.ebr)}


def _dedup_report(dd, mode, with_, without) -> dict:
    """The build's ``dedup`` section: what :func:`bnnhw.passes.fold_dead_channels`
    found, the estimates with and without it, and whether it is applied.  ``auto``
    applies it when its folding is faster, or as fast and no larger in LUT4 and EBR
    with one of them smaller."""
    fw, fo = _figures(with_), _figures(without)
    if not dd.changed:
        applied, reason = False, "no dead channel folds"
    elif mode == "on":
        applied, reason = True, "--dedup on"
    elif fw is None:
        applied, reason = False, f"the folded network cannot be planned: {with_}"
    else:
        faster = fw["bound_cycles"] < fo["bound_cycles"]
        smaller = (fw["bound_cycles"] == fo["bound_cycles"] and fw["lut"] <= fo["lut"]
                   and fw["ebr"] <= fo["ebr"] and (fw["lut"], fw["ebr"]) != (fo["lut"], fo["ebr"]))
        applied = faster or smaller
        reason = ("faster" if faster else "smaller" if smaller else
                  "no saving at the chosen folding")
    out = {"mode": mode, "applied": applied, "reason": reason, **dd.as_dict(),
           "with": fw, "without": fo}
    figs = "".join(f"; {k}: {v['bound_cycles']} cycles/frame, {v['lut']} LUT4, "
                   f"{v['ebr']} EBR" for k, v in (("with", fw), ("without", fo)) if v)
    out["summary"] = (f"dedup ({mode}): {len(dd.removed)} dead channel(s) folded, "
                      f"{len(dd.kept)} kept; {'applied' if applied else 'not applied'} "
                      f"({reason}){figs}")
    return out


def _read_from_dir(from_dir, model, folding_opts: dict):
    """(ir, ck, plan, verilog text) of a build folder (``--from DIR``)."""
    from ..dataflow import read_build_dir
    from ..export import load_model_any
    clash = [n for n, v in folding_opts.items() if v is not None]
    if clash:
        raise BnnhwError(f"--from uses the build's folding; do not also give "
                         f"{', '.join(clash)}", "drop them, or build from --model")
    ir, plan, text, _meta = read_build_dir(from_dir)
    ck = None
    if model:
        other, ck = load_model_any(model)
        if other.to_bytes() != ir.to_bytes():
            from .sim import _same_network
            if not _same_network(ir, other):
                raise BnnhwError(f"--model {model} is not the network built in {from_dir}",
                                 "drop --model, or build from the model")
    return ir, ck, plan, text


def _selftest_images(ir, ck, count, dataset, split, data_dir, what="--self-test"):
    """(raw images, beats (N, frame_len), golden classes, dataset name) of the first
    ``count`` images of ``split`` (``what``: the option that asked, for messages)."""
    import numpy as np

    from ..dataflow import encode_images
    from ..golden import GoldenModel
    from .common import model_images
    name = dataset or (ck or {}).get("dataset", {}).get("name") or ir.dataset.get("name")
    if not name or name in ("synthetic",):
        raise BnnhwError(f"{what} needs test images, and the model does not name a "
                         "dataset bnnhw can load", "give --dataset NAME or a path (.npz, "
                         "image folder)")
    ds, x, y = model_images(ir, ck, name, split, data_dir)
    if count < 1:
        raise BnnhwError(f"{what} needs at least 1 image, not {count}", f"e.g. {what} 8")
    if len(x) < count:
        raise BnnhwError(f"the {split} split of {ds.name} has only {len(x)} images",
                         f"use {what} {len(x)} or less")
    x = x[:count]
    golden = np.asarray(GoldenModel(ir).predict(x)).astype(int)
    beats = encode_images(ir, x).reshape(count, -1)
    return x, beats, golden, ds.name


def _clear_old_outputs(out_dir):
    """A new build must not leave the previous build's bitstream or report behind (only
    called on a folder held by :func:`bnnhw.outputs.claim_folder`: an earlier bnnhw
    build's files, never a user's)."""
    for name in ("top.bin", "top.bit", "report.json", "report.txt", "report.png"):
        p = os.path.join(out_dir, name)
        if os.path.isfile(p):
            os.unlink(p)


# ---------------------------------------------------------------------------- the build

def run_build(model, board, out_dir, **kwargs) -> dict:
    """Build a bitstream of ``model`` for ``board`` into the output folder ``out_dir``
    (see :func:`_run_build` for the options and the result).

    The folder must be new, empty or an earlier bnnhw output folder; it is held
    exclusively for the whole build (:func:`bnnhw.outputs.claim_folder`: a concurrent
    build into it fails at once) and bnnhw deletes only files it wrote there."""
    from ..outputs import check_output_folder, claim_folder
    if not out_dir:
        raise BnnhwError("no output folder given", "pass -o DIR")
    out_dir = os.fspath(out_dir)
    check_output_folder(out_dir)
    with claim_folder(out_dir, kind="build"):
        return _run_build(model, board, out_dir, **kwargs)


def _run_build(model, board, out_dir, *, folding=None, target_cycles=None, target_fps=None,
               clock_mhz=None, max_luts=None, from_dir=None, self_test=None, dataset=None,
               split="test", data_dir=None, seed=1, baud=None, allow_timing_fail=False,
               per_module=True, plot=True, gate_sim=0, dry_run=False, dedup="auto",
               progress=_log) -> dict:
    """Build a bitstream of ``model`` (checkpoint/IR path, or a NetworkIR) for ``board``
    into ``out_dir`` and return the report's summary (DESIGN.md 3b keys ``board``,
    ``device``, ``lut``, ``ff``, ``ebr``, ``spram``, ``fmax_mhz``, ``clock_mhz``,
    ``fps_compute``, ``fps_link``, ``bitstream`` and more; ``report`` is the path of
    ``report.json``; ``_table`` the printable report).  ``folding`` is a folding file
    path or its JSON object; ``self_test`` a number of images (None: UART shell).
    ``dry_run``: stop after the board's build plan (``Platform.build(do_build=False)``,
    extracted to ``out_dir/build``; no tools run, synthesised figures are None).
    ``dedup``: "auto", "on" or "off" (:func:`_dedup_report`; ignored with ``from_dir``).
    Raises :class:`BnnhwError` with a message naming the stage that failed."""
    from ..boards.build import build_bitstream, check_tools
    from ..boards.clock import plan_clock
    from ..boards.registry import get_board
    from ..boards.shell import make_top
    from .. import report as R

    t_start = time.monotonic()
    seconds: dict = {}
    # cheap checks first: board, tools, clock, seed
    b = get_board(board)
    tools = {} if dry_run else check_tools(b.family)
    clock = plan_clock(b, clock_mhz)
    if not isinstance(seed, int) or seed < 0:
        raise BnnhwError(f"--seed must be a non-negative integer, not {seed!r}", "e.g. --seed 1")
    shell = "uart" if self_test is None else "selftest"
    if shell == "uart" and b.uart is None:
        raise BnnhwError(f"board {b.name} has no UART to a host", "build with --self-test")
    if shell == "selftest" and b.pass_led is None:
        raise BnnhwError(f"board {b.name} has no LED for the self-test result",
                         "build without --self-test")
    progress(f"{b.name}: {b.device}, clock {clock.mhz:g} MHz ({clock.source}), "
             f"{'self-test shell' if shell == 'selftest' else 'UART shell'}")

    # load
    t0 = time.monotonic()
    with _stage("load", out_dir):
        from ..ir import NetworkIR
        built_text = None
        fold_opts = {"--folding": folding, "--target-cycles": target_cycles,
                     "--target-fps": target_fps, "--max-luts": max_luts}
        if from_dir:
            ir, ck, from_plan, built_text = _read_from_dir(from_dir, model, fold_opts)
        elif isinstance(model, NetworkIR):
            ir, ck, from_plan = model, None, None
        elif model:
            from ..export import load_model_any
            ir, ck = load_model_any(os.fspath(model))
            from_plan = None
        else:
            raise BnnhwError("no model given", "pass --model m.pt (or an IR file), or --from DIR")
    seconds["load"] = time.monotonic() - t0

    # self-test images (before anything is written: a wrong dataset fails early)
    st = None
    if shell == "selftest":
        with _stage("selftest-data", out_dir):
            st = _selftest_images(ir, ck, self_test, dataset, split, data_dir)
        progress(f"self-test: {len(st[2])} {split} images of {st[3]}, golden classes "
                 f"{st[2].tolist()[:12]}{'...' if len(st[2]) > 12 else ''}")

    gate_x = None
    if gate_sim:
        with _stage("gate-sim-data", out_dir):
            gate_x = _selftest_images(ir, ck, gate_sim, dataset, split, data_dir,
                                      "--gate-sim")[0]

    # plan + fit
    t0 = time.monotonic()
    with _stage("plan", out_dir):
        from ..dataflow import build_design, load_folding_file
        from ..dataflow.fit import estimate_fit, fold_further_hint, plan_for_board
        kw = dict(shell=shell, selftest_count=self_test or 0)
        dd_report = None
        if from_plan is not None:
            design = build_design(ir, from_plan)
            plan, fit = from_plan, estimate_fit(design, b, **kw)
            if not fit.fits:
                what, hint = fold_further_hint(design, fit)
                raise BnnhwError(f"the design of {from_dir} does not fit {b.name}: estimated "
                                 f"{fit.over()}; {what}", hint)
        else:
            fdata, fsrc = folding, None
            if isinstance(folding, (str, os.PathLike)):
                fsrc = os.fspath(folding)
                fdata = load_folding_file(fsrc)

            def plan_ir(the_ir, quiet=False):
                return plan_for_board(
                    the_ir, b, folding=fdata, folding_source=fsrc,
                    target_cycles=target_cycles, target_fps=target_fps,
                    clock_mhz=clock.mhz, max_luts=max_luts,
                    progress=None if quiet else progress, **kw)

            if dedup == "off":
                plan, design, fit = plan_ir(ir)
            else:
                from ..passes import fold_dead_channels
                dd = fold_dead_channels(ir)
                if not dd.changed:
                    plan, design, fit = plan_ir(ir)
                    dd_report = _dedup_report(dd, dedup, None, None)
                elif dedup == "on":
                    with_ = plan_ir(dd.ir)
                    dd_report = _dedup_report(dd, dedup, with_, _try_plan(plan_ir, ir))
                    ir, (plan, design, fit) = dd.ir, with_
                else:
                    without = plan_ir(ir)
                    with_ = _try_plan(plan_ir, dd.ir)
                    dd_report = _dedup_report(dd, dedup, with_, without)
                    if dd_report["applied"]:
                        ir, (plan, design, fit) = dd.ir, with_
                    else:
                        plan, design, fit = without
            if dd_report is not None:
                progress(dd_report["summary"])
    seconds["plan"] = time.monotonic() - t0
    progress(f"plan ({plan.mode}): bound {plan.bound_cycles} cycles/frame (bottleneck "
             f"{plan.bottleneck}); estimated {fit.lut} LUT4 / {fit.lut_capacity}, "
             f"{fit.ebr} EBR / {fit.ebr_capacity}\n{plan.describe()}")

    # design + build folder
    t0 = time.monotonic()
    with _stage("design", out_dir):
        from ..dataflow import write_build_dir
        text = design.verilog()
        if built_text is not None and text != built_text:
            raise BnnhwError(f"the design rebuilt from {from_dir} differs from its "
                             f"{'bnnhw_top.v'} (another bnnhw version?)",
                             "rebuild the folder from the model")
        os.makedirs(out_dir, exist_ok=True)
        _clear_old_outputs(out_dir)
        paths = write_build_dir(out_dir, ir, plan, design)
    seconds["design"] = time.monotonic() - t0
    progress(f"design: {len(design.chain.cores)} cores, FIFOs {design.fifo_depths}; build "
             f"folder {out_dir} ({len(text) // 1024} KiB Verilog, {seconds['design']:.1f} s)")

    # shell + bitstream
    q = ir.input
    frame_len = q.height * q.width * q.channels
    with _stage("shell", out_dir):
        top = make_top(b, design.top, frame_len, clock_mhz=clock_mhz,
                       baud=baud if shell == "uart" else None,
                       selftest=(list(st[1]), list(st[2])) if st else None)
    if dry_run:
        with _stage("build-plan", out_dir):
            from ..boards.build import platform_overrides
            t0 = time.monotonic()
            bplan = b.make_platform().build(top, name="top", do_build=False,
                                            **platform_overrides("top", seed=seed,
                                                                 netlist=True))
            bplan.extract(os.path.join(out_dir, "build"))
            seconds["elaborate"] = time.monotonic() - t0
        rep = None
        progress(f"build plan (no tools run): {os.path.join(out_dir, 'build')}")
    else:
        rep = build_bitstream(top, b, out_dir, seed=seed, per_module=per_module,
                              allow_timing_fail=allow_timing_fail, netlist=True)
        for k, v in rep.seconds.items():
            seconds[k if k != "total" else "board_build"] = v

    # report
    t0 = time.monotonic()
    with _stage("report", out_dir):
        shell_obj = top.core
        link = R.link_figures(shell_obj, frame_len) if shell == "uart" else None
        gate = None
        report = R.build_report(
            ir=ir, plan=plan, design=design, board=b, clock=clock, board_report=rep,
            fit=fit.to_dict(), link=link, tools=tools, out_dir=out_dir,
            selftest=({"images": int(len(st[2])), "dataset": st[3], "split": split,
                       "golden_classes": st[2].tolist()} if st else None),
            files=dict(paths, bitstream=rep.bitstream if rep else None,
                       netlist=None if dry_run else os.path.join(out_dir, "build",
                                                                 "top.netlist.v"),
                       build_plan=os.path.join(out_dir, "build")),
            seconds=seconds)
        report["dedup"] = dd_report
        if dd_report is not None and (dd_report["removed"] or dd_report["kept"]):
            report.setdefault("notes", []).append(dd_report["summary"])
    if gate_sim:
        t1 = time.monotonic()
        with _stage("gate-sim", out_dir):
            gate = _gate_sim(design, b, gate_x, out_dir, progress)
        report["gate_sim"] = gate
        seconds["gate_sim"] = time.monotonic() - t1
        t0 += seconds["gate_sim"]
    with _stage("report", out_dir):
        seconds["report"] = time.monotonic() - t0
        seconds["total"] = time.monotonic() - t_start
        report["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
        report["plot"] = R.write_plot(report, os.path.join(out_dir, "report.png")) \
            if plot else None
        if plot and report["plot"] is None:
            report.setdefault("notes", []).append(
                "matplotlib is not installed: no report.png (pip install matplotlib)")
        table = R.format_report(report)
        R.write_report(report, out_dir, table)
    if gate is not None and not gate["ok"]:
        raise BnnhwError(f"gate-level simulation: {gate['mismatches']} of {gate['frames']} "
                         f"images differ from the golden model"
                         + (" (timed out)" if gate.get("timed_out") else ""),
                         f"the bitstream was built, but its synthesised netlist misbehaves "
                         f"(files in {gate.get('work_dir')}); please report it")
    progress(f"done in {seconds['total']:.1f} s: "
             f"{report['bitstream'] or 'build plan only (--dry-run)'}")
    out = R.summary(report)
    out["_table"] = table
    return out


def _gate_sim(design, board, x, out_dir, progress):
    from ..sim.gatesim import gate_level_check
    res = gate_level_check(design, board, x, os.path.join(out_dir, "gatesim"),
                           progress=progress)
    progress(f"gate-level: {res['frames']} images, {res['mismatches']} mismatches "
             f"(synth {res['synth_s']} s, Verilator build {res['sim_build_s']} s)")
    return res
