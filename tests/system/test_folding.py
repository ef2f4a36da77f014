"""Folding search, folding files, estimates and FIFO sizing (pure Python, no simulation)."""
from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest

from bnnhw.dataflow import (FoldingError, build_design, min_cycles, plan_folding,
                            write_build_dir)
from bnnhw.dataflow.design import read_build_dir
from bnnhw.dataflow.folding import (evaluate_folding, legal_values, network_geometry,
                                    LayerFold)
from bnnhw import hwmodel as M

from .netgen import random_ir

CONV = dict(input=(10, 10, 1, 8), layers=[("conv", 8, 3, 1, 1), ("conv", 8, 3, 1, 0),
                                          ("pool", 2), ("fc", 16), ("fc", 10)], seed=3)
NETS = [
    CONV,
    dict(input=(9, 9, 3, 8), signed=True,
         layers=[("conv", 6, 3, 2, 1), ("conv", 12, 2, 1, 0), ("pool", 2), ("fc", 10)], seed=4),
    dict(input=(8, 8, 1, 1), layers=[("fc", 24), ("fc", 12), ("fc", 6)], seed=5,
         rank_table=True),
    dict(input=(7, 7, 2, 1), layers=[("conv", 4, 3, 1, 1), ("pool", 3), ("fc", 5)], seed=6),
]


def random_folding(ir, rng):
    out = []
    for g in network_geometry(ir):
        lv = legal_values(g)
        d = {"name": g.name, "simd": rng.choice(lv["simd"])}
        if g.kind != "maxpool":
            d.update(pe=rng.choice(lv["pe"]), planes=rng.choice(lv.get("planes", [1])))
        out.append(d)
    return out


@pytest.fixture(scope="module")
def conv_ir():
    return random_ir(**CONV)


TINY = dict(input=(4, 4, 1, 8), layers=[("conv", 2, 2, 1, 0), ("pool", 1), ("fc", 4),
                                        ("fc", 3)], seed=9)


def test_target_plan_meets_target_with_fewest_luts():
    """Every layer <= target, and no folding of the whole net is cheaper (brute force)."""
    ir = random_ir(**TINY)
    choices = []
    for g in network_geometry(ir):
        lv = legal_values(g)
        if g.kind == "maxpool":
            choices.append([LayerFold(g.name, g.kind, simd=s) for s in lv["simd"]])
        else:
            choices.append([LayerFold(g.name, g.kind, simd=s, pe=p, planes=q)
                            for s in lv["simd"] for p in lv["pe"]
                            for q in lv.get("planes", [1])])
    every = [evaluate_folding(ir, list(f)) for f in itertools.product(*choices)]
    assert len(every) > 1000
    for target in (36, 50, 80, 200, 10**6):
        plan = plan_folding(ir, target_cycles=target)
        assert plan.bound_cycles <= target
        assert all(fg["cycles"] <= target for fg in plan.figures)
        best = min(sum(f["lut"] + 50 * f["ebr"] for f in figs) for figs in every
                   if max(f["cycles"] for f in figs) <= target)
        assert sum(f["lut"] + 50 * f["ebr"] for f in plan.figures) == pytest.approx(best)


def test_cost_falls_as_target_grows_and_simd_goes_first(conv_ir):
    costs = [plan_folding(conv_ir, target_cycles=t).lut_estimate for t in (900, 1800, 3600, 7200)]
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]
    fc = random_ir(**NETS[2])       # fc0: 64 inputs x 24 outputs
    for target, simd in ((96, 16), (192, 8), (384, 4), (768, 2)):
        plan = plan_folding(fc, target_cycles=target)
        f = plan.fold("fc0")
        assert f.simd * f.pe == simd            # no more parallelism than the target needs
        if f.pe > 1:                            # SIMD is raised before PE unless PE is cheaper
            folds = [LayerFold("fc0", "fc", simd=simd, pe=1) if g.name == "fc0" else g
                     for g in plan.folds]
            simd_first = sum(fg["lut"] + 50 * fg["ebr"] for fg in evaluate_folding(fc, folds))
            chosen = sum(fg["lut"] + 50 * fg["ebr"] for fg in evaluate_folding(fc, plan.folds))
            assert chosen < simd_first, (target, f)


def test_default_is_the_fastest_the_net_allows(conv_ir):
    mins = min_cycles(conv_ir)
    plan = plan_folding(conv_ir)
    assert plan.mode == "default"
    assert plan.bound_cycles == max(c for c, _ in mins.values()) == 900   # conv0's window unit


def test_target_fps_and_clock():
    ir = random_ir(**NETS[2])
    plan = plan_folding(ir, target_fps=1e6, clock_mhz=100)     # 100 cycles per frame
    assert plan.target_cycles == 100 and plan.bound_cycles <= 100
    with pytest.raises(FoldingError, match="both --target-fps and --clock-mhz"):
        plan_folding(ir, target_fps=1000)


def test_impossible_target_names_the_layer_and_the_minimum(conv_ir):
    with pytest.raises(FoldingError) as e:
        plan_folding(conv_ir, target_cycles=500)
    assert "target 500 cycles/frame is impossible: conv0 needs at least 900 cycles" in e.value.message
    assert "sliding-window unit" in e.value.message and "900" in e.value.hint
    with pytest.raises(FoldingError, match="input stream carries one element per cycle"):
        plan_folding(conv_ir, target_cycles=50)


def test_budget_gives_the_fastest_folding_that_fits(conv_ir):
    small = plan_folding(conv_ir, target_cycles=10**9).lut_estimate
    big = plan_folding(conv_ir).lut_estimate
    budget = (small + big) // 2
    plan = plan_folding(conv_ir, max_luts=budget)
    total = build_design(conv_ir, plan).estimates["total"]["lut"]      # FIFOs included
    assert plan.lut_estimate <= total <= budget and plan.mode == "budget"
    # the next faster achievable target no longer fits
    values = sorted({c for g in network_geometry(conv_ir) for c in _cycles(conv_ir, g)
                     if 900 <= c < plan.target_cycles})
    faster = plan_folding(conv_ir, target_cycles=values[-1])
    assert values and build_design(conv_ir, faster).estimates["total"]["lut"] > budget
    with pytest.raises(FoldingError, match="even the smallest folding"):
        plan_folding(conv_ir, max_luts=10)
    with pytest.raises(FoldingError, match="over the budget"):
        plan_folding(conv_ir, target_cycles=900, max_luts=small)


def _cycles(ir, g):
    from bnnhw.dataflow.folding import _candidates, in_width, layer_figures
    for f in _candidates(g):
        cyc, _ = layer_figures(g, f, in_width(g, f))
        yield max(cyc.values())


def test_folding_file_round_trip_and_partial_pool(conv_ir, tmp_path):
    plan = plan_folding(conv_ir, target_cycles=2000)
    data = json.loads(json.dumps(plan.to_json()))
    again = plan_folding(conv_ir, folding=data)
    assert again.folds == plan.folds and again.mode == "file"
    # a max-pool without an entry takes the conv's PE
    data["layers"] = [l for l in data["layers"] if l["kind"] != "maxpool"]
    p = plan_folding(conv_ir, folding=data)
    assert p.fold("pool2").simd == p.fold("conv1").pe


@pytest.mark.parametrize("entry, message", [
    ({"name": "fc3", "simd": 4, "pe": 12}, "layer fc3: PE=12 does not divide MH=16; "
                                          "legal: 1,2,4,8,16"),
    ({"name": "fc3", "simd": 5, "pe": 1}, "layer fc3: SIMD=5 does not divide MW=128; "
                                         "legal: 1,2,4,8,16,32,64,128"),
    ({"name": "fc3", "simd": 4, "pe": "2"}, "layer fc3: PE must be a positive integer, not '2'"),
    ({"name": "fc3", "simd": 4}, "layer fc3 has no 'pe'"),
    ({"name": "fc3", "simd": 4, "pe": 1, "PE": 2}, "layer fc3: unknown key PE"),
    ({"name": "conv0", "simd": 9, "pe": 1, "planes": 3},
     "layer conv0: planes=3 does not divide the input width B=8; legal: 1,2,4,8"),
    ({"name": "pool2", "simd": 3}, "layer pool2: SIMD=3 does not divide C=8; legal: 1,2,4,8"),
    ({"name": "fc9", "simd": 1, "pe": 1}, "layer 'fc9' is not in the network; its layers are "
                                          "conv0, conv1, pool2, fc3, fc4"),
])
def test_illegal_folding_files_say_what_would_work(conv_ir, entry, message):
    base = {l["name"]: l for l in plan_folding(conv_ir, target_cycles=2000).to_json()["layers"]}
    base[entry["name"]] = entry
    with pytest.raises(FoldingError) as e:
        plan_folding(conv_ir, folding={"layers": list(base.values())}, source="f.json")
    assert message in e.value.message and e.value.hint


def test_missing_layers_and_bad_files(conv_ir, tmp_path):
    with pytest.raises(FoldingError, match="no folding for layers conv1, fc3, fc4"):
        plan_folding(conv_ir, folding={"layers": [{"name": "conv0", "simd": 1, "pe": 1}]})
    from bnnhw.dataflow import load_folding_file
    bad = tmp_path / "bad.json"
    bad.write_text("{\"layers\": [")
    with pytest.raises(FoldingError, match="not valid JSON"):
        load_folding_file(str(bad))
    with pytest.raises(FoldingError, match="does not exist"):
        load_folding_file(str(tmp_path / "none.json"))
    with pytest.raises(FoldingError, match="do not also give a target"):
        plan_folding(conv_ir, folding={"layers": []}, target_cycles=10)


@pytest.mark.parametrize("k", range(len(NETS)))
def test_plan_figures_equal_the_cores(k):
    """The analytic per-layer cycles and resources equal those computed from the cores
    the design is built from, for random legal foldings."""
    ir = random_ir(**NETS[k])
    rng = random.Random(k)
    for _ in range(25):
        plan = plan_folding(ir, folding={"layers": random_folding(ir, rng)})
        d = build_design(ir, plan)
        assert d.estimates["bound_cycles_per_frame"] == plan.bound_cycles
        figs = {f["name"]: f for f in plan.figures}
        for row in d.estimates["layers"]:
            f = figs[row["name"]]
            assert (row["cycles"], row["lut"], row["ebr"]) == \
                (f["cycles"], int(round(f["lut"])), f["ebr"]), (row["name"], plan.folds)
        assert len(d.fifo_depths) == len(d.chain.cores) - 1
        assert all(x == 0 or x >= 3 for x in d.fifo_depths)


def test_memory_model_matches_measured_facts():
    assert M.memory_cost(32, 64).lut == 128 and M.memory_cost(32, 64).ebr == 0   # TOOLCHAIN.md
    assert M.memory_cost(32, 512).ebr == 1 and M.memory_cost(64, 1024).ebr == 4
    assert M.memory_cost(7, 1).lut == 0
    # ROMs as Yosys's memory_libmap places them (logic 1/16 per bit, a DP16KD 128)
    assert M.memory_cost(32, 64, rom=True).lut == 128             # tie: logic (TOOLCHAIN.md)
    assert M.memory_cost(32, 512, rom=True).ebr == 1
    rom = M.memory_cost(96, 96, 8, rom=True)      # CNV conv3 weights, PE=8 SIMD=96: 24 EBR
    assert (rom.ebr, rom.lut) == (24, 0)                          # as synthesised
    assert M.memory_cost(288, 16, 8, rom=True).ebr == 0           # CNV conv1 weights: LUTs
    assert M.memory_cost(1, 1024, rom=True).lut == 64             # narrow and deep: logic
    mv = M.mvau_cost(mw=256, mh=256, simd=32, pe=4)                          # bench_cores
    assert mv.ebr == 4 and abs(mv.lut - 527) / 527 < 0.1
    mv = M.mvau_cost(mw=256, mh=256, simd=32, pe=16)
    assert mv.ebr == 16 and abs(mv.lut - 1588) / 1588 < 0.1


def test_build_dir_round_trip(conv_ir, tmp_path):
    plan = plan_folding(conv_ir, target_cycles=3000)
    d = build_design(conv_ir, plan)
    paths = write_build_dir(str(tmp_path / "b"), conv_ir, plan, d)
    for key in ("ir", "folding", "verilog", "estimates", "design"):
        assert (tmp_path / "b" / paths[key].split("/")[-1]).is_file()
    ir2, plan2, text, meta = read_build_dir(str(tmp_path / "b"))
    assert plan2.folds == plan.folds and text == d.verilog()
    assert meta["fifo_depths"] == d.fifo_depths and meta["input_width"] == 8
    est = json.loads((tmp_path / "b" / "estimates.json").read_text())
    assert est["bound_cycles_per_frame"] == plan.bound_cycles
    assert {r["name"] for r in est["layers"]} == {l.name for l in conv_ir.layers}
    (tmp_path / "b" / "bnnhw_top.v").write_text(text + "// edited\n")
    from bnnhw.errors import BnnhwError
    with pytest.raises(BnnhwError, match="does not match design.json"):
        read_build_dir(str(tmp_path / "b"))


def test_latency_estimate_composes_the_schedules(conv_ir):
    """Core by core, the estimate is at least each core's own latency summed along the
    critical path, and no more than the sum of whole-image spans."""
    d = build_design(conv_ir, plan_folding(conv_ir, target_cycles=1800))
    est = d.estimates["latency_cycles_estimate"]
    assert est >= sum(c.latency for c in d.chain.cores)
    assert est < sum(c.throughput * r for c, r in zip(d.chain.cores, d.chain.repeats)) * 2
    assert np.isfinite(est)
