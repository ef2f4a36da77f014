"""Lowering: layer descriptions -> core chains; a whole tiny network against golden."""
from types import SimpleNamespace

import numpy as np
import pytest

from bnnhw import golden_ops, layout
from bnnhw.cores import lowering
from bnnhw.cores.lowering import LayerHW, lower, lower_network, layer_hw_from_ir, ChainTop
from bnnhw.cores.maxpool import encode_fmap
from bnnhw.cores.simulate import run_stream


def _tiny_net(rng):
    w0 = rng.integers(0, 2, (4, 9)).astype(np.uint8)
    t0 = rng.integers(-200, 200, 4)
    ops = ["or", "and", "or", "and"]
    w2 = rng.integers(0, 2, (6, 16)).astype(np.uint8)
    t2 = rng.integers(5, 12, 6)
    w3 = rng.integers(0, 2, (5, 24)).astype(np.uint8)
    layers = [
        LayerHW(name="conv0", kind="conv", in_shape=(6, 6, 1), weights=w0, thresholds=t0,
                kernel=3, stride=1, padding=1, pad_value=0, input_bits=8, simd=3, pe=2),
        LayerHW(name="pool0", kind="maxpool", in_shape=(6, 6, 4), kernel=2, pool_op=ops,
                simd=2),
        LayerHW(name="conv1", kind="conv", in_shape=(3, 3, 4), weights=w2, thresholds=t2,
                kernel=2, stride=1, padding=0, pad_value=1, simd=4, pe=3),
        LayerHW(name="fc2", kind="fc", in_shape=(24,), weights=w3, thresholds=None,
                simd=6, pe=5, score="popcount"),
    ]

    def golden(x):
        a = golden_ops.first_layer_acc(golden_ops.sliding_window(x, 3, 1, 1, 0), w0, 8, False)
        b = golden_ops.maxpool(golden_ops.threshold(a, t0), 2, ops)
        c = golden_ops.threshold(
            golden_ops.xnor_popcount(golden_ops.sliding_window(b, 2, 1, 0, 1), w2), t2)
        return int(golden_ops.argmax(golden_ops.xnor_popcount(c.reshape(-1), w3)))
    return layers, golden


def _unused(chain):
    """These cores are inspected, never elaborated: no UnusedElaboratable warning."""
    for c in chain.cores:
        c._MustUse__silence = True
    return chain


def test_tiny_network_end_to_end():
    rng = np.random.default_rng(7)
    layers, golden = _tiny_net(rng)
    chain = _unused(lower_network(layers, input_width=8))
    kinds = [c.kind for c in chain.cores]
    assert kinds == ["swu", "width_converter", "first_layer_mvau", "maxpool",
                     "width_converter", "swu", "mvau", "width_converter", "mvau",
                     "label_select"]
    assert chain.repeats[0] == 1 and chain.repeats[2] == 36 and chain.repeats[-1] == 1
    assert chain.cycles_per_image() == max(c.throughput * r
                                           for c, r in zip(chain.cores, chain.repeats))
    images = [rng.integers(0, 256, (6, 6, 1)) for _ in range(3)]
    images.append(np.full((6, 6, 1), 255))
    beats = [b for x in images for b in encode_fmap(x, 1, 8)]
    want = [golden(x) for x in images]
    for depth, stalls in [(None, (0.0, 0.0)), (4, (0.3, 0.5))]:
        top = ChainTop(lower_network(layers, input_width=8), fifo_depth=depth)
        run = run_stream(top, beats, len(want), in_stall=stalls[0], out_stall=stalls[1],
                         seed=3, max_cycles=20000)
        assert not run.timed_out
        assert run.violations == []
        assert run.outputs == want


def test_rank_table_scores_end_to_end():
    """fc with a per-class score table: MVAU(popcount) -> ScoreTable -> LabelSelect."""
    rng = np.random.default_rng(11)
    w = rng.integers(0, 2, (6, 12)).astype(np.uint8)
    table = rng.integers(-50, 50, (6, 13))
    dense = SimpleNamespace(name="out", kind="fc", in_shape=(12,), weights=w, thresholds=None,
                            input_bits=1, input_signed=False, score_kind="rank_table",
                            score_table=table, acc_min=0, acc_max=12)
    layers = [layer_hw_from_ir(dense, simd=4, pe=3)]
    chain = _unused(lower_network(layers))
    assert [c.kind for c in chain.cores] == ["mvau", "score_table", "label_select"]
    xs = [rng.integers(0, 2, 12).astype(np.uint8) for _ in range(6)]
    want = [int(golden_ops.argmax(table[np.arange(6), golden_ops.xnor_popcount(x, w)]))
            for x in xs]
    top = ChainTop(lower_network(layers), fifo_depth=3)
    beats = [b for x in xs for b in chain.cores[0].encode(x)]
    run = run_stream(top, beats, len(want), in_stall=0.2, out_stall=0.3, seed=1)
    assert run.outputs == want and run.violations == []


def test_lowering_errors_name_the_layer():
    w = np.zeros((4, 10), np.uint8)
    with pytest.raises(ValueError, match="layer c3: weights have MW=10 columns, expected"):
        lower(LayerHW(name="c3", kind="conv", in_shape=(4, 4, 1), weights=w, kernel=3))
    with pytest.raises(ValueError, match="layer x: kind 'lstm' has no lowering"):
        lower(LayerHW(name="x", kind="lstm"))
    with pytest.raises(ValueError, match="fc1: PE=3 does not divide MH=4"):
        lower(LayerHW(name="fc1", kind="fc", weights=w, thresholds=np.zeros(4), pe=3))


def test_layer_hw_from_ir_duck_typed():
    dense = SimpleNamespace(name="fc9", kind="fc", in_shape=(16,),
                            weights=np.ones((4, 16), np.uint8), thresholds=None,
                            input_bits=1, input_signed=False, score_kind="popcount")
    hw = layer_hw_from_ir(dense, simd=4, pe=2)
    chain = _unused(lower(hw))
    assert chain.cores[0].score == "popcount" and chain.cores[0].pe == 2
    dense.score_kind = "softmax"
    with pytest.raises(ValueError, match="fc9: score_kind 'softmax' has no core"):
        layer_hw_from_ir(dense)
    pool = SimpleNamespace(name="p", kind="maxpool", in_shape=(4, 4, 2), kernel=2,
                           pool_op=np.array(["or", "and"]))
    assert _unused(lower(layer_hw_from_ir(pool, simd=2))).cores[0].pool_op == ["or", "and"]
