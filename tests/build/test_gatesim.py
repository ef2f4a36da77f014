"""Synthesis keeps behaviour: a small network's accelerator, synthesised alone with the
Yosys script of a board build, simulated at gate level (Yosys's iCE40 cell models,
Verilator, random back-pressure) bit-exact against the golden model."""
from __future__ import annotations

import numpy as np
import pytest

from bnnhw.boards.build import check_tools
from bnnhw.dataflow import build_design, encode_images, plan_folding
from bnnhw.errors import BnnhwError
from bnnhw.sim.gatesim import gate_level_check, simulate_netlist, synthesize_netlist
from bnnhw.golden import GoldenModel
from tests.system.netgen import random_images, random_ir


def _needs():
    try:
        check_tools("ice40")
    except BnnhwError as e:
        pytest.fail(f"required tool missing (installed by tools/dev.sh): {e.message}")
    from bnnhw.sim.toolchain import get_simulator
    try:
        get_simulator("verilator")
    except BnnhwError as e:
        pytest.fail(f"required tool missing (installed by tools/dev.sh): {e.message}")


@pytest.fixture(scope="module")
def small_design():
    """8x8 5-bit images -> fc 32 -> fc 10, folded so that the weights of fc0 live in
    a block RAM (2,048 x 1 bits) and the input buffer and threshold memories too."""
    ir = random_ir(input=(8, 8, 1, 5), layers=[("fc", 32), ("fc", 10)], seed=11)
    plan = plan_folding(ir, folding={"layers": [{"name": "fc0", "simd": 1, "pe": 1},
                                                {"name": "fc1", "simd": 4, "pe": 1}]})
    return build_design(ir, plan)


def test_gate_level_netlist_is_bit_exact(small_design, tmp_path_factory):
    _needs()
    wd = tmp_path_factory.mktemp("gate")
    x = random_images(small_design.ir, 24, seed=3)
    res = gate_level_check(small_design, "icebreaker", x, wd, stall=0.3)
    print(f"\ngate-level: {res['cells']}, synth {res['synth_s']} s, "
          f"Verilator build {res['sim_build_s']} s, simulation {res['sim_s']} s")
    assert res["ok"] and res["frames"] == 24 and res["mismatches"] == 0
    assert res["cells"]["lut"] > 50 and res["cells"]["ebr"] >= 1
    # every block RAM can be read: read clock enables driven (or default 1)
    assert res["rams"] and all(r["RCLKE"] != "1'h0" for r in res["rams"])
    # the netlist came from the build's own Yosys script, retargeted to the accelerator
    script = (wd / "synth" / "bnnhw_top.ys").read_text()
    assert "synth_ice40" in script and "-top bnnhw_top" in script
    assert "write_json bnnhw_top.json" in script
    assert "write_verilog -noattr bnnhw_top.netlist.v" in script


def test_gate_level_check_sees_a_wrong_answer(small_design, tmp_path_factory):
    """Control: the same netlist against answers that are wrong for image 5 only."""
    _needs()
    wd = tmp_path_factory.mktemp("gate2")
    ir = small_design.ir
    x = random_images(ir, 8, seed=3)
    golden = GoldenModel(ir).predict(x)
    wrong = np.array(golden).copy()
    wrong[5] = (wrong[5] + 1) % ir.num_classes
    net = synthesize_netlist(small_design.top, "icebreaker", wd / "synth")
    res = simulate_netlist(net, encode_images(ir, x), wrong, wi=small_design.input_width,
                           wo=small_design.output_width, stall=0.2, frame_in_beats=64,
                           work_dir=wd / "sim")
    assert res.mismatches == 1 and res.first_mismatch_beat == 5
