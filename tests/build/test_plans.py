# amaranth: UnusedElaboratable=no
"""Build plans (``Platform.build(do_build=False)`` through ``bnnhw build --dry-run``) of a
trained digits TFC for EVERY supported board, the self-test variant, and the folding the
fit check chooses."""
from __future__ import annotations

import json
import os

import pytest

from bnnhw.boards.clock import plan_clock
from bnnhw.boards.registry import board_names, get_board
from bnnhw.commands.build import run_build
from bnnhw.dataflow.fit import estimate_fit, plan_for_board
from bnnhw.dataflow import read_build_dir
from bnnhw.export import load_model_any

from .conftest import small_conv_ir

quiet = dict(progress=lambda msg: None)


@pytest.mark.parametrize("board", board_names())
def test_build_plan_for_every_board(tfc_digits, tmp_path, board):
    spec = get_board(board)
    res = run_build(tfc_digits, board, tmp_path, dry_run=True, plot=False, **quiet)
    assert res["board"] == board and res["device"] == spec.device
    assert res["bitstream"] is None and not list(tmp_path.glob("top.bi*"))
    bound = res["bound_cycles_per_frame"]
    assert bound == 64                                 # the input stream: 8x8 elements
    assert res["fps_compute"] == pytest.approx(spec.osc_mhz * 1e6 / bound)
    assert res["fps_link"] > 1000
    # the build folder `bnnhw sim --from DIR` reads
    ir, plan, text, meta = read_build_dir(str(tmp_path))
    assert meta["bound_cycles_per_frame"] == bound and "module bnnhw_top" in text
    # the board's build plan: tools, the accelerator inside the shell, the UART pins
    files = os.listdir(tmp_path / "build")
    cons = "top.pcf" if spec.family == "ice40" else "top.lpf"
    assert {"top.il", "top.ys", cons, "build_top.json"} <= set(files)
    cmds = json.loads((tmp_path / "build" / "build_top.json").read_text())["commands"]
    assert [c[0] for c in cmds][:3] == ["yosys", spec.pnr_tool, spec.pack_tool]
    ys = (tmp_path / "build" / "top.ys").read_text()
    assert f"synth_{spec.family}" in ys and "write_verilog -noattr top.netlist.v" in ys
    il = (tmp_path / "build" / "top.il").read_text()
    for core in ("s01_fc0", "s03_fc1", "s07_fc3", "s08_label_select", "uart_rx", "uart_tx"):
        assert core in il, core
    platform = spec.make_platform()
    pins = [p for sub in platform.resources[spec.uart].ios if hasattr(sub, "ios")
            for p in sub.ios[0].names]
    constraints = (tmp_path / "build" / cons).read_text()
    assert all(p in constraints for p in pins[:2])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["dry_run"] and report["estimate"]["fit"]["fits"]
    assert [L["name"] for L in report["layers"]] == ["input", "fc0", "fc1", "fc2", "fc3"]
    from bnnhw.analyze import analyze
    assert report["repetition"] == json.loads(json.dumps(analyze(ir)))  # bnnhw analyze's figures
    assert "filter repetition:" in (tmp_path / "report.txt").read_text()


def test_self_test_plan_holds_the_images_and_golden_classes(tfc_digits, tmp_path):
    res = run_build(tfc_digits, "icebreaker", tmp_path, self_test=5, dry_run=True,
                    clock_mhz=24, plot=False, **quiet)
    assert res["fps_link"] is None and res["clock_mhz"] == 24.0
    report = json.loads((tmp_path / "report.json").read_text())
    st = report["selftest"]
    assert st["images"] == 5 and st["dataset"] == "digits" and len(st["golden_classes"]) == 5
    from bnnhw.commands.common import dataset_split
    from bnnhw.golden import GoldenModel
    ir, ck = load_model_any(str(tfc_digits))
    _, x, _ = dataset_split("digits", "test", ck)
    assert st["golden_classes"] == GoldenModel(ir).predict(x[:5]).tolist()
    pcf = (tmp_path / "build" / "top.pcf").read_text()
    assert "led_g_0__io" in pcf and "led_r_0__io" in pcf and "uart" not in pcf
    il = (tmp_path / "build" / "top.il").read_text()
    assert "SB_PLL40_PAD" in il and "images" in il and "expected" in il


def test_fit_check_chooses_the_fastest_folding_that_fits():
    """On the iCEBreaker the fastest conv folding is too big: the chosen one is the first
    (fewest cycles) whose estimate fits, and the next faster one does not."""
    from bnnhw.dataflow.folding import achievable_targets as _achievable_targets
    from bnnhw.dataflow import build_design, plan_folding
    ir = small_conv_ir()
    ice, ecp = get_board("icebreaker"), get_board("ulx3s-85f")
    plan, design, fit = plan_for_board(ir, ecp, **quiet)
    fastest = plan_folding(ir)
    assert plan.bound_cycles == fastest.bound_cycles and fit.fits    # room on an 85F
    # a smaller device forces folding: pretend the iCE40 had only the LUT4s halfway
    # between what the fastest and the slowest folding need
    import dataclasses
    from bnnhw.dataflow.fit import LUT_USABLE
    values = _achievable_targets(ir)
    need = [estimate_fit(build_design(ir, plan_folding(ir, target_cycles=v)), ice).lut
            for v in (values[0], values[-1])]
    assert need[0] > need[1]
    lut4 = int((need[0] + need[1]) / 2 / LUT_USABLE)
    small = dataclasses.replace(ice, capacity=dataclasses.replace(ice.capacity, lut4=lut4))
    plan, design, fit = plan_for_board(ir, small, **quiet)
    assert fit.fits and plan.bound_cycles > fastest.bound_cycles
    faster = [v for v in values if v < plan.target_cycles]
    if faster:
        p2 = plan_folding(ir, target_cycles=faster[-1])
        assert not estimate_fit(build_design(ir, p2), small).fits


def test_fit_estimate_matches_the_measured_tfc_on_ice40(tfc_digits):
    """The iCE40 fit model against the synthesised figures of this TFC (2,759 LUT4 and 4
    SB_RAM40_4K measured with the UART shell at 12 MHz)."""
    ir, _ = load_model_any(str(tfc_digits))
    plan, design, fit = plan_for_board(ir, get_board("icebreaker"), **quiet)
    assert 2200 <= fit.lut <= 3300 and 3 <= fit.ebr <= 5
    assert plan_clock(get_board("icebreaker"), None).mhz == 12.0


def test_from_dir_rebuilds_the_same_design(tfc_digits, tmp_path):
    """``--from DIR``: a build folder's own IR and folding give the same Verilog (another
    clock and the self-test shell are fine: they do not change the accelerator)."""
    a, b = tmp_path / "a", tmp_path / "b"
    run_build(tfc_digits, "icebreaker", a, target_cycles=200, dry_run=True, plot=False,
              **quiet)
    res = run_build(None, "icebreaker", b, from_dir=a, clock_mhz=24, self_test=3,
                    dry_run=True, plot=False, **quiet)
    assert res["folding_mode"] == "file" and res["bound_cycles_per_frame"] <= 200
    assert (a / "bnnhw_top.v").read_text() == (b / "bnnhw_top.v").read_text()
    assert (a / "folding.json").read_text() != "" and (b / "model.bnn").exists()
