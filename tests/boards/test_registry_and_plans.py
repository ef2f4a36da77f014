# amaranth: UnusedElaboratable=no
"""Board registry, and the build plan (Platform.build(do_build=False)) of the shell with
a stand-in accelerator for EVERY supported board: files, tool commands, pins, PLL."""
import json
import re

import pytest

from bnnhw.boards.clock import plan_clock
from bnnhw.boards.registry import DEVICES, board_names, get_board, list_boards
from bnnhw.boards.shell import make_top
from bnnhw.boards.standin import SumModAccelerator, sum_mod
from bnnhw.errors import BnnhwError

# a clock each board's PLL makes exactly (iCE40 from 12 MHz, ECP5 from 25 or 100 MHz)
PLL_MHZ = {"ice40": 24.0, "ecp5": 50.0}


def test_required_boards_are_there():
    names = board_names()
    for n in ("icebreaker", "ulx3s-12f", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f", "ecpix5-85f"):
        assert n in names
    assert get_board("ulx3s").name == "ulx3s-85f"          # alias
    assert get_board("ICEBREAKER").name == "icebreaker"


def test_board_facts():
    b = get_board("icebreaker")
    assert (b.family, b.device, b.package, b.osc_mhz) == ("ice40", "iCE40UP5K", "SG48", 12.0)
    assert (b.capacity.lut4, b.capacity.ebr, b.capacity.ebr_total_bits, b.capacity.spram) == \
        (5280, 30, 120 * 1024, 4)
    assert (b.uart, b.clock_resource) == (("uart", 0), ("clk12", 0))
    assert (b.pnr_tool, b.pack_tool, b.bitstream_suffix) == ("nextpnr-ice40", "icepack", ".bin")
    u = get_board("ulx3s-85f")
    assert (u.family, u.device, u.package, u.speed, u.osc_mhz) == \
        ("ecp5", "LFE5U-85F", "BG381", "6", 25.0)
    assert (u.capacity.ebr, u.capacity.ebr_bits) == (208, 18432)
    assert get_board("ulx3s-45f").capacity.ebr == 108
    assert (u.pnr_tool, u.pack_tool, u.bitstream_suffix) == ("nextpnr-ecp5", "ecppack", ".bit")
    e = get_board("ecpix5-85f")
    assert (e.osc_mhz, e.pass_led.resource, e.pass_led.sub) == (100.0, "rgb_led", "g")
    for spec in list_boards():
        assert spec.device in DEVICES and spec.uart is not None and spec.pass_led is not None
        json.dumps(spec.to_dict())


def test_unknown_board_lists_the_names():
    with pytest.raises(BnnhwError) as e:
        get_board("ulx3s-99f")
    assert "unknown board" in e.value.message
    for n in board_names():
        assert n in e.value.hint


def test_module_class_boards():
    b = get_board("amaranth_boards.icestick:ICEStickPlatform")
    assert (b.family, b.device, b.osc_mhz, b.uart) == ("ice40", "iCE40HX1K", 12.0, ("uart", 0))
    with pytest.raises(BnnhwError, match="no class"):
        get_board("amaranth_boards.icestick:Nope")
    with pytest.raises(BnnhwError, match="cannot import"):
        get_board("not_a_module_xyz:Foo")
    with pytest.raises(BnnhwError, match="not an iCE40 or ECP5"):
        get_board("amaranth_boards.arty_a7:ArtyA7_35Platform")


def _plan(board, clock_mhz=None, selftest=None, n=16):
    top = make_top(board, SumModAccelerator(n), n, clock_mhz=clock_mhz, selftest=selftest)
    spec = get_board(board)
    return top, spec.make_platform().build(top, name="top", do_build=False)


@pytest.mark.parametrize("board", board_names())
@pytest.mark.parametrize("use_pll", [False, True], ids=["osc", "pll"])
def test_build_plan(board, use_pll):
    spec = get_board(board)
    mhz = PLL_MHZ[spec.family] if use_pll else None
    top, plan = _plan(board, mhz)
    files = set(plan.files)
    cons = "top.pcf" if spec.family == "ice40" else "top.lpf"
    assert {"top.il", "top.ys", cons, "build_top.sh", "build_top.json"} <= files
    cmds = json.loads(plan.files["build_top.json"])["commands"]
    tools = [c[0] for c in cmds]
    assert tools[:3] == ["yosys", spec.pnr_tool, spec.pack_tool]
    pnr = cmds[1]
    assert "--json" in pnr and ("--pcf" in pnr if spec.family == "ice40" else "--lpf" in pnr)
    assert f"synth_{spec.family}" in plan.files["top.ys"]
    # UART and LED pins are constrained
    platform = spec.make_platform()
    uart = platform.resources[spec.uart]
    pins = [p for sub in uart.ios if hasattr(sub, "ios") for p in sub.ios[0].names]
    constraints = plan.files[cons]
    for pin in pins[:2]:
        assert re.search(rf"\b{pin}\b", constraints), (pin, constraints)
    il = plan.files["top.il"]
    assert "uart_rx" in il and "uart_tx" in il and "accelerator" in il
    # the clock: PLL instance with the planned parameters, or none
    clock = plan_clock(spec, mhz)
    assert top.clock == clock
    assert abs(top.core.clock_hz - clock.hz) < 1
    if use_pll:
        p = clock.pll.params
        if spec.family == "ice40":
            assert "SB_PLL40_PAD" in il
            assert f"parameter \\DIVF 7'{p['divf']:07b}" in il
            assert f"parameter \\DIVQ 3'{p['divq']:03b}" in il
        else:
            assert "EHXPLLL" in il
            assert f"parameter \\CLKOP_DIV {p['clkop_div']}" in il
            assert f"parameter \\CLKFB_DIV {p['clkfb_div']}" in il
            assert f"parameter \\CLKI_DIV {p['clki_div']}" in il
    else:
        assert "PLL" not in il
    # the baud divisor matches the clock
    assert top.core.divisor == round(clock.hz / top.core.baud)


def test_selftest_plan_uses_the_leds():
    imgs = [[k] * 16 for k in range(3)]
    top, plan = _plan("icebreaker", selftest=(imgs, [sum_mod(i, 10) for i in imgs]))
    pcf = plan.files["top.pcf"]
    assert "led_g_0__io 37" in pcf and "led_r_0__io 11" in pcf
    assert "uart" not in pcf
    top, plan = _plan("ulx3s-85f", selftest=(imgs, [sum_mod(i, 10) for i in imgs]))
    lpf = plan.files["top.lpf"]
    assert '"led_0__io" SITE "B2"' in lpf and '"led_1__io" SITE "C2"' in lpf


def test_ice40_pll_core_for_a_board_whose_clock_is_not_the_pll_pad():
    top, plan = _plan("amaranth_boards.icestick:ICEStickPlatform", 48.0)
    assert "SB_PLL40_CORE" in plan.files["top.il"]


def test_ulx3s_default_baud_follows_the_clock():
    top, _ = _plan("ulx3s-85f")            # 25 MHz: 3 Mbaud is 4 % off -> 1 Mbaud
    assert (top.core.baud, top.core.divisor) == (1_000_000, 25)
    top, _ = _plan("ulx3s-85f", 75.0)      # 75 MHz: 3 Mbaud exactly
    assert (top.core.baud, top.core.divisor) == (3_000_000, 25)
    top, _ = _plan("icebreaker")
    assert (top.core.baud, top.core.divisor) == (3_000_000, 4)


def test_impossible_clock_fails_before_building():
    with pytest.raises(BnnhwError, match="cannot make 48 MHz"):
        make_top("ulx3s-85f", SumModAccelerator(4), 4, clock_mhz=48)
