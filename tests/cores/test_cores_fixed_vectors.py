"""Fixed vectors for every core's stream format, written by hand from the documented orders.

The conformance suite builds its stimulus and its expectation through the
cores' own encoders, so a misordering shared by an encoder and the hardware
(or by ``layout.pack_weights`` and ``MVAU.encode``) passes there.  Here the
input beats and the output beats are integers worked out by hand in the
comments (element ``j`` of a beat at bits ``[j*E, (j+1)*E)``; PE field ``p``
of output beat ``nf`` = neuron ``nf*PE + p``; im2col ``(ky, kx, c)``; pixels
in raster order, channels-last), fed to the hardware in Amaranth's
simulator, and also checked against the cores' ``encode``/``encode_output``.
"""
from __future__ import annotations

import numpy as np

from bnnhw.cores import MVAU, FirstLayerMVAU, registry
from bnnhw.cores.maxpool import encode_fmap
from bnnhw.cores.simulate import run_stream

# 4 neurons x 6 inputs (bits, 1 = +1); the same matrix as tests/ir/test_layout_vectors.py
W = np.array([[1, 0, 0, 1, 1, 0],
              [0, 1, 0, 0, 0, 1],
              [1, 1, 0, 0, 1, 1],
              [0, 0, 1, 1, 0, 0]], np.uint8)
X1 = [1, 0, 0, 1, 1, 0]
X2 = [0, 1, 1, 0, 0, 1]
# XNOR-popcounts: X1 -> n0 6, n1 1, n2 3, n3 3; X2 (the complement) -> 0, 5, 3, 3
# SIMD = 3: X1 -> words (1,0,0) = 0b001, (1,1,0) = 0b011; X2 -> 0b110, 0b100
X_BEATS = [0b001, 0b011, 0b110, 0b100]


def _run(core, beats, want):
    run = run_stream(core, beats, len(want))
    assert not run.timed_out and run.violations == []
    return run.outputs


def test_mvau_thresholds_hand_vectors():
    core = MVAU(name="fv", mw=6, mh=4, simd=3, pe=2, weights=W, thresholds=[6, 1, 4, 3])
    # X1: acc 6,1,3,3 >= 6,1,4,3 -> 1,1,0,1 -> nf0 = n0|n1<<1 = 0b11, nf1 = n2|n3<<1 = 0b10
    # X2: acc 0,5,3,3 -> 0,1,0,1 -> nf0 = 0b10, nf1 = 0b10
    want = [0b11, 0b10, 0b10, 0b10]
    assert core.encode(X1) + core.encode(X2) == X_BEATS
    assert core.encode_output([1, 1, 0, 1]) == [0b11, 0b10]
    assert core.decode([0b11, 0b10]).tolist() == [1, 1, 0, 1]
    assert _run(core, X_BEATS, want) == want


def test_mvau_scores_hand_vectors():
    core = MVAU(name="fv", mw=6, mh=4, simd=3, pe=2, weights=W, thresholds=None)
    # score_width = bits_for(6) + 1 = 4; dot = 2*acc - 6
    # X1: 6, -4, 0, 0 -> nf0 = 6 | (-4 & 15) << 4 = 6 + 192; nf1 = 0
    # X2: -6, 4, 0, 0 -> nf0 = (-6 & 15) | 4 << 4 = 10 + 64; nf1 = 0
    assert core.score_width == 4
    want = [198, 0, 74, 0]
    assert core.encode_output([6, -4, 0, 0]) == [198, 0]
    assert _run(core, X_BEATS, want) == want


def test_mvau_pe1_simd2_hand_vectors():
    # the same weights folded SIMD 2, PE 1: X1 -> (1,0)=1, (0,1)=2, (1,0)=1
    core = MVAU(name="fv", mw=6, mh=4, simd=2, pe=1, weights=W, thresholds=[6, 2, 3, 4])
    # X1: 6,1,3,3 >= 6,2,3,4 -> 1,0,1,0, one beat per neuron
    assert core.encode(X1) == [1, 2, 1]
    assert _run(core, [1, 2, 1], [1, 0, 1, 0]) == [1, 0, 1, 0]


def test_first_layer_signed_hand_vectors():
    w = np.array([[1, 0, 0, 1], [0, 1, 1, 1]], np.uint8)     # +1 -1 -1 +1 / -1 +1 +1 +1
    x = [-1, 3, -8, 5]
    # acc n0 = -1 - 3 + 8 + 5 = 9; n1 = 1 + 3 - 8 + 5 = 1
    # beats (SIMD 2, 4-bit two's complement): (-1, 3) -> 0xF | 3 << 4 = 0x3F;
    # (-8, 5) -> 0x8 | 5 << 4 = 0x58
    beats = [0x3F, 0x58]
    for planes in (1, 4):
        core = FirstLayerMVAU(name="fv0", mw=4, mh=2, simd=2, pe=1, weights=w, bits=4,
                              signed=True, planes_per_cycle=planes, thresholds=[10, 1])
        assert core.encode(x) == beats
        # 9 >= 10 -> 0; 1 >= 1 -> 1
        assert _run(core, beats, [0, 1]) == [0, 1]
    core = FirstLayerMVAU(name="fv0", mw=4, mh=2, simd=2, pe=2, weights=w, bits=4,
                          signed=True, planes_per_cycle=2, thresholds=[9, 2])
    # 9 >= 9 -> bit 0 = 1; 1 >= 2 -> bit 1 = 0
    assert _run(core, beats, [0b01]) == [0b01]


def test_sliding_window_binary_hand_vectors():
    swu = registry.get("swu")(name="fv", height=2, width=3, channels=1, k=2, stride=1, pad=0,
                              pad_value=0, elem_bits=1, signed=False, simd=1)
    # image rows 1 0 0 / 1 1 0; windows (ky, kx): ox 0 -> 1 0 1 1; ox 1 -> 0 0 1 0
    want = [1, 0, 1, 1, 0, 0, 1, 0]
    assert _run(swu, [1, 0, 0, 1, 1, 0], want) == want


def test_sliding_window_signed_padding_hand_vectors():
    swu = registry.get("swu")(name="fv", height=2, width=2, channels=2, k=2, stride=2, pad=1,
                              pad_value=-3, elem_bits=4, signed=True, simd=2)
    # pixel (y, x) = [c0, c1]: (0,0)=[1,2] (0,1)=[3,4] (1,0)=[5,-6] (1,1)=[7,-8]
    # beats c0 | c1 << 4: 0x21, 0x43, 0xA5, 0x87; the pad pixel [-3, -3] = 0xDD
    beats = [0x21, 0x43, 0xA5, 0x87]
    P = 0xDD
    # padded 4x4, K=2 stride 2: four windows, each (ky0kx0, ky0kx1, ky1kx0, ky1kx1)
    want = [P, P, P, 0x21,        # window (0,0): real pixel (0,0) at ky1 kx1
            P, P, 0x43, P,        # window (0,1): (0,1) at ky1 kx0
            P, 0xA5, P, P,        # window (1,0): (1,0) at ky0 kx1
            0x87, P, P, P]        # window (1,1): (1,1) at ky0 kx0
    f = np.array([[[1, 2], [3, 4]], [[5, -6], [7, -8]]])
    assert encode_fmap(f, 2, 4) == beats
    assert _run(swu, beats, want) == want


def test_maxpool_hand_vectors():
    pool = registry.get("maxpool")(name="fv", height=2, width=4, channels=2, k=2, simd=2,
                                   pool_op=["or", "and"])
    # pixels as c0 | c1 << 1: row 0: (1,1) (0,1) (0,1) (0,1) -> 3 2 2 2; row 1: 2 2 2 2
    # window x 0..1: c0 OR(1,0,0,0) = 1, c1 AND(1,1,1,1) = 1 -> 3
    # window x 2..3: c0 OR(0,0,0,0) = 0, c1 AND(1,1,1,1) = 1 -> 2
    assert _run(pool, [3, 2, 2, 2, 2, 2, 2, 2], [3, 2]) == [3, 2]
    # SIMD 1: one channel per beat, c0 first: same pixels
    pool1 = registry.get("maxpool")(name="fv", height=2, width=4, channels=2, k=2, simd=1,
                                    pool_op=["or", "and"])
    beats = [1, 1, 0, 1, 0, 1, 0, 1] + [0, 1] * 4
    assert _run(pool1, beats, [1, 1, 0, 1]) == [1, 1, 0, 1]


def test_label_select_hand_vectors():
    ls = registry.get("label_select")(name="fv", num_classes=4, pe=2, score_width=4)
    # scores (-2, 5, 5, 3): beat 0 = (-2 & 15) | 5 << 4 = 94, beat 1 = 5 | 3 << 4 = 53 -> 1
    # (7, -8, 0, 7): 7 | 8 << 4 = 135, 0 | 7 << 4 = 112 -> 0 (tie to the lowest)
    # (-8, -8, -8, -1): 8 | 8 << 4 = 136, 8 | 15 << 4 = 248 -> 3
    assert _run(ls, [94, 53, 135, 112, 136, 248], [1, 0, 3]) == [1, 0, 3]


def test_score_table_hand_vectors():
    table = np.array([[10, -20, 30], [-1, 2, -3]])
    st = registry.get("score_table")(name="fv", mh=2, pe=2, acc_min=4, acc_max=6, table=table,
                                     in_width=4)
    # accs (6, 4): fields 6 | 4 << 4 = 70 -> table[0, 2] = 30, table[1, 0] = -1
    sw = st.score_width
    assert sw == 6                                    # signed width of [-20, 30]
    want = [30 | ((-1 & 63) << 6)]
    assert _run(st, [70], want) == want


def test_width_converters_hand_vectors():
    wc = registry.get("width_converter")
    # 8 -> 2: chunk 0 (low bits) first: 0b11_10_01_00 -> 0, 1, 2, 3
    assert _run(wc(name="fv", i_width=8, o_width=2), [0b11100100], [0, 1, 2, 3]) == [0, 1, 2, 3]
    # 2 -> 6: 1, 2, 3 -> 1 | 2 << 2 | 3 << 4 = 57
    assert _run(wc(name="fv", i_width=2, o_width=6), [1, 2, 3], [57]) == [57]


def test_fifo_passes_beats_in_order():
    fifo = registry.get("fifo")(name="fv", width=5, depth=3)
    assert _run(fifo, [7, 0, 31, 2], [7, 0, 31, 2]) == [7, 0, 31, 2]


def test_run_stream_reports_trailing_beats():
    """The stream runner must fail a core that emits more beats than expected."""
    fifo = registry.get("fifo")(name="fv", width=5, depth=3)
    run = run_stream(fifo, [7, 0, 31, 2], 3)
    assert run.extra == 1 and run.outputs == [7, 0, 31, 2]
    assert any("beyond the 3 expected" in v for v in run.violations)
