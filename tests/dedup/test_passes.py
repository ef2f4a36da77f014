"""bnnhw.passes.fold_dead_channels: constant channels removed and folded, bit-exact.

Dead channels are planted in random networks (thresholds at ``acc_min``: always
1, at ``acc_max + 1``: always 0) and the folded IR must give the input IR's
class scores on every input tried: all 4,096 inputs of a 1-bit 3x4 net, and
random images of conv nets with padding, max-pools (OR and AND) and a
flattening fc.  The hardware built from a folded IR is simulated with random
stalls against the *original* IR's golden scores.
"""
from __future__ import annotations

import copy
import json
import itertools

import numpy as np
import pytest

from bnnhw.dataflow import build_design, plan_folding, simulate_design
from bnnhw.golden import GoldenModel
from bnnhw.passes import dead_channels, fold_dead_channels

from ..system.netgen import random_images, random_ir
from ..system.test_random_foldings import score_words


def _plant(ir, layer, channels_values):
    l = next(x for x in ir.layers if x.name == layer)
    for c, v in channels_values:
        l.thresholds[c] = l.acc_min if v else l.acc_max + 1
    ir.validate("planted")
    return ir


def _same_scores(a, b, imgs, removed=()):
    """Class scores equal, and every layer's output bits equal on the channels kept."""
    ca, sa, pa = GoldenModel(a).run(imgs, collect=True)
    cb, sb, pb = GoldenModel(b).run(imgs, collect=True)
    np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(ca, cb)
    gone = {}
    for d in removed:
        gone.setdefault(d.layer, set()).add(d.channel)
    src = None
    for la, oa, ob in zip(a.layers, pa, pb):
        src = la.name if hasattr(la, "thresholds") else src      # a pool keeps its source's
        if "bits" in oa:
            keep = [c for c in range(oa["bits"].shape[-1]) if c not in gone.get(src, ())]
            np.testing.assert_array_equal(oa["bits"][..., keep], ob["bits"], err_msg=la.name)
    return sa


CONV = dict(input=(6, 6, 2, 8), layers=[("conv", 6, 3, 1, 1), ("conv", 6, 2, 1, 1),
                                       ("pool", 2), ("fc", 8), ("fc", 5)], seed=33)


def test_every_input_of_a_one_bit_fc_net():
    ir = random_ir(input=(3, 4, 1, 1), layers=[("fc", 9), ("fc", 7), ("fc", 4)], seed=5)
    _plant(ir, "fc0", [(1, 1), (4, 0), (8, 1)])
    res = fold_dead_channels(ir)
    assert [(d.layer, d.channel, d.value, d.folded_into) for d in res.removed] == [
        ("fc0", 1, 1, "fc1"), ("fc0", 4, 0, "fc1"), ("fc0", 8, 1, "fc1")]
    assert res.channels["fc0"] == (9, 6) and res.ir.layers[1].mw == 6
    allx = np.array(list(itertools.product([0, 255], repeat=12)), np.uint8).reshape(-1, 1, 3, 4)
    scores = _same_scores(ir, res.ir, allx, res.removed)
    assert len({tuple(s) for s in scores.tolist()}) >= 8      # the inputs tell nets apart
    # negative control: the same removal without lowering fc1's thresholds is not exact
    wrong = copy.deepcopy(res.ir)
    wrong.layers[1].thresholds = np.minimum(ir.layers[1].thresholds, wrong.layers[1].mw + 1)
    assert not np.array_equal(GoldenModel(wrong).run(allx)[1], scores)


@pytest.mark.parametrize("pad_value", [0, 1])
def test_conv_net_with_pool_and_flatten(pad_value):
    ir = random_ir(**CONV, pad_value=pad_value)
    # conv0 feeds conv1 (padding 1 with pad_value); conv1 feeds fc3 through the pool
    _plant(ir, "conv0", [(0, 1), (3, 0)])
    _plant(ir, "conv1", [(2, 0), (5, 1)])
    res = fold_dead_channels(ir)
    got = {(d.layer, d.channel): d for d in res.removed}
    kept = {(d.layer, d.channel): d for d in res.kept}
    # conv1 pads with pad_value: only the channel whose constant equals it folds
    folded0 = {(0, 1), (3, 0)} & {(c, v) for c, v in [(0, 1), (3, 0)] if v == pad_value}
    assert {(c, got[("conv0", c)].value) for (l, c) in got if l == "conv0"} == folded0
    for c, v in [(0, 1), (3, 0)]:
        if v != pad_value:
            assert "pads with" in kept[("conv0", c)].reason
    assert {c for (l, c) in got if l == "conv1"} == {2, 5}       # through the max-pool
    assert all(d.folded_into == "fc3" for d in res.removed if d.layer == "conv1")
    pool = res.ir.layers[2]
    assert pool.in_shape[-1] == pool.out_shape[-1] == 4 == len(pool.pool_op)
    imgs = random_images(ir, 300, seed=7)
    scores = _same_scores(ir, res.ir, imgs, res.removed)
    assert len({tuple(s) for s in scores.tolist()}) >= 8


def test_the_output_layer_keeps_its_inputs_and_the_pass_reaches_a_fixed_point():
    ir = random_ir(input=(4, 4, 1, 1), layers=[("fc", 8), ("fc", 6), ("fc", 4)], seed=9)
    _plant(ir, "fc1", [(2, 1)])                   # feeds the output layer: kept
    fc1 = ir.layers[1]
    # row 0 of fc1 is at least the constant part of its popcount once fc0's channel 0
    # is known to be 1 with weights 1 on its column: fc1.0 becomes dead in pass 2
    _plant(ir, "fc0", [(0, 1)])
    fc1.weights[0, 0] = 1
    fc1.thresholds[0] = 1                         # acc >= 1 always holds once column 0 is 1
    assert (0, 1) not in dead_channels(fc1)
    res = fold_dead_channels(ir)
    assert [(d.layer, d.channel) for d in res.removed] == [("fc0", 0)]
    assert {(d.layer, d.channel) for d in res.kept} == {("fc1", 2), ("fc1", 0)}
    assert all("output layer" in d.reason for d in res.kept)
    assert fold_dead_channels(res.ir).removed == []               # fixed point
    _same_scores(ir, res.ir, random_images(ir, 200, seed=2), res.removed)


def test_cascade_removes_channels_that_become_dead():
    ir = random_ir(input=(4, 4, 1, 1), layers=[("fc", 8), ("fc", 6), ("fc", 5), ("fc", 3)],
                   seed=4)
    _plant(ir, "fc0", [(0, 1)])
    fc1 = ir.layers[1]
    fc1.weights[3, 0] = 1
    fc1.thresholds[3] = 1                         # always 1 once fc0.0 is folded
    res = fold_dead_channels(ir)
    assert [(d.layer, d.channel, d.value) for d in res.removed] == [("fc0", 0, 1),
                                                                  ("fc1", 3, 1)]
    assert res.passes == 2 and res.channels == {"fc0": (8, 7), "fc1": (6, 5),
                                                "fc2": (5, 5), "fc3": (3, 3)}
    _same_scores(ir, res.ir, random_images(ir, 200, seed=2), res.removed)


def test_no_dead_channels_changes_nothing():
    ir = random_ir(**CONV)
    res = fold_dead_channels(ir)
    assert res.ir is ir and not res.changed and res.passes == 0


def test_hardware_of_the_folded_ir_matches_the_original_golden():
    ir = random_ir(**CONV, pad_value=1)
    _plant(ir, "conv0", [(1, 1), (4, 1)])
    _plant(ir, "conv1", [(0, 0)])
    res = fold_dead_channels(ir)
    assert res.channels["conv0"] == (6, 4) and res.channels["conv1"] == (6, 5)
    imgs = random_images(ir, 6, seed=3)
    plan = plan_folding(res.ir, target_cycles=600)
    design = build_design(res.ir, plan, scores=True)
    run = simulate_design(design, imgs, stall=0.3, seed=1)
    assert not run.timed_out and run.violations == []
    assert run.outputs == score_words(ir, design, imgs)


@pytest.mark.parametrize("mode", ["on", "off", "auto"])
def test_build_dedup_modes(tmp_path, mode):
    """``bnnhw build --dedup``: the build folder's IR is the folded one exactly when the
    report says it is applied, and its golden scores equal the model's."""
    from bnnhw.cli import main
    from bnnhw.ir import load_ir
    from bnnhw.dataflow import read_build_dir

    ir = random_ir(input=(4, 4, 1, 1), layers=[("fc", 12), ("fc", 8), ("fc", 4)], seed=9)
    _plant(ir, "fc0", [(0, 1), (5, 0), (7, 1)])
    model = tmp_path / "m.bnn"
    ir.save(str(model))
    out = tmp_path / "b"
    rc = main(["build", "--model", str(model), "--board", "icebreaker", "-o", str(out),
               "--dry-run", "--json", "--no-plot", "--target-cycles", "24", "--dedup", mode])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    built, _plan, _text, _meta = read_build_dir(str(out))
    dd = rep["dedup"]
    if mode == "off":
        assert dd is None and built.layers[0].mh == 12
        return
    assert [(d["layer"], d["channel"]) for d in dd["removed"]] == [
        ("fc0", 0), ("fc0", 5), ("fc0", 7)]
    assert dd["with"] and dd["without"]
    if mode == "on":
        assert dd["applied"]
    assert built.layers[0].mh == (9 if dd["applied"] else 12)
    if dd["applied"]:
        assert dd["with"]["lut"] <= dd["without"]["lut"] or mode == "on"
        assert any(dd["summary"] in n for n in rep["notes"])
    _same_scores(ir, built, random_images(ir, 100, seed=4),
                 [] if not dd["applied"] else
                 [type("D", (), {"layer": "fc0", "channel": c}) for c in (0, 5, 7)])
