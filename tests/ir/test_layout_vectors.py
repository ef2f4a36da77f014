"""Fixed vectors for every order of ``bnnhw.layout``, written by hand from its docstring.

Each test is a small tensor and the numbers it must become, worked out in the
comments from the documented conventions (element ``j`` at bit ``j``;
channels-last raster order; im2col ``(ky, kx, c)`` with ``c`` fastest; flatten
``(h, w, c)``; PE ``p`` holds neuron ``nf*PE + p`` at address ``nf*SF + sf``).
None of the expectations is computed with the project's own encoders, so a
misordering shared by producer and consumer (which the conformance suite,
building stimulus and expectation through the same encoders, cannot see)
fails here.
"""
from __future__ import annotations

import numpy as np
import pytest

from bnnhw import layout

# A 4 x 6 weight matrix (MH = 4 neurons, MW = 6 inputs), bits (1 = +1).
W = np.array([[1, 0, 0, 1, 1, 0],      # n0
              [0, 1, 0, 0, 0, 1],      # n1
              [1, 1, 0, 0, 1, 1],      # n2
              [0, 0, 1, 1, 0, 0]],     # n3
             dtype=np.uint8)


def test_encoding_and_sign():
    assert layout.to_bits([-3, -1, 0, 1, 2]).tolist() == [0, 0, 1, 1, 1]   # sign(0) = +1
    assert layout.from_bits([0, 1, 1, 0]).tolist() == [-1, 1, 1, -1]


def test_pack_bits_lsb_first_little_endian_words():
    bits = np.zeros(66, np.uint8)
    bits[[0, 3, 63, 64]] = 1
    # word 0: bits 0, 3, 63 -> 1 + 8 + 2**63; word 1: element 64 = bit 0 -> 1
    assert layout.pack_bits(bits).tolist() == [2**63 + 9, 1]
    assert layout.unpack_bits(np.array([2**63 + 9, 1], np.uint64), 66).tolist() == bits.tolist()
    assert layout.int_to_word([1, 0, 1, 1]) == 0b1101
    assert layout.unpack_bits(np.array([0b0110], np.uint64), 5).tolist() == [0, 1, 1, 0, 0]


def test_pack_weights_pe2_simd3():
    # SF = 2, NF = 2.  PE 0 owns n0 (nf 0) and n2 (nf 1), PE 1 owns n1 and n3.
    # address nf*SF + sf, element j of the slice at bit j:
    #   PE0: n0[0:3]=1,0,0 -> 0b001; n0[3:6]=1,1,0 -> 0b011; n2[0:3]=1,1,0 -> 0b011;
    #        n2[3:6]=0,1,1 -> 0b110
    #   PE1: n1[0:3]=0,1,0 -> 0b010; n1[3:6]=0,0,1 -> 0b100; n3[0:3]=0,0,1 -> 0b100;
    #        n3[3:6]=1,0,0 -> 0b001
    assert layout.pack_weights(W, pe=2, simd=3) == [[1, 3, 3, 6], [2, 4, 4, 1]]


def test_pack_weights_pe1_simd2_and_fully_parallel():
    w = np.array([[1, 0, 1, 1, 0, 0],
                  [0, 0, 1, 0, 0, 1]], np.uint8)
    # PE 1, SIMD 2: n0 -> (1,0)=1, (1,1)=3, (0,0)=0; n1 -> (0,0)=0, (1,0)=1, (0,1)=2
    assert layout.pack_weights(w, pe=1, simd=2) == [[1, 3, 0, 0, 1, 2]]
    # PE 2, SIMD 6: one word per PE: n0 = bits 0,2,3 -> 13; n1 = bits 2,5 -> 36
    assert layout.pack_weights(w, pe=2, simd=6) == [[13], [36]]


def test_pack_thresholds():
    # PE 3: PE p holds T[nf*3 + p] at address nf
    assert layout.pack_thresholds([10, 11, 12, 13, 14, 15], pe=3) == [[10, 13], [11, 14],
                                                                      [12, 15]]
    assert layout.pack_thresholds([[1, 2], [3, 4]], pe=1) == [[[1, 2], [3, 4]]]
    assert layout.pack_thresholds([-5, 7], pe=2) == [[-5], [7]]


def test_unpack_fold_output():
    # word nf, bit p = neuron nf*PE + p
    assert layout.unpack_fold_output([0b01, 0b10], pe=2).tolist() == [1, 0, 0, 1]
    assert layout.unpack_fold_output([0b110], pe=3).tolist() == [0, 1, 1]


def test_input_beats_raster_channels_last():
    # one image, C=2, H=2, W=3, unsigned 4-bit: channel 0 = 1..6, channel 1 = 7..12
    x = np.array([[[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]]])
    # raster (y outer, x inner), the two channels of a pixel together
    assert layout.input_beats(x, 4, False).tolist() == [[1, 7, 2, 8, 3, 9, 4, 10, 5, 11, 6, 12]]
    # two images keep their own rows
    two = np.concatenate([x, 15 - x])
    assert layout.input_beats(two, 4, False)[1].tolist() == \
        [14, 8, 13, 7, 12, 6, 11, 5, 10, 4, 9, 3]


def test_input_beats_signed_twos_complement_and_bits():
    # C=1, H=2, W=2, signed 4-bit: -1 -> 0xF, -8 -> 0x8, 7 -> 0x7, 0 -> 0
    x = np.array([[[[-1, -8], [7, 0]]]])
    assert layout.input_beats(x, 4, True).tolist() == [[15, 8, 7, 0]]
    # signed 8-bit, C=2, H=1, W=1: -128 -> 0x80, 127 -> 0x7F
    assert layout.input_beats(np.array([[[[-128]], [[127]]]]), 8, True).tolist() == [[128, 127]]
    # 1-bit inputs are the bit itself
    assert layout.input_beats(np.array([[[[1, 0, 1]]]]), 1, False).tolist() == [[1, 0, 1]]
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        layout.input_beats(np.array([[[[8]]]]), 4, True)


def test_bitplanes_and_coefficients():
    # -3 in 3-bit two's complement = 0b101: planes 1, 0, 1; c = 1, 2, -4
    assert layout.bitplanes([-3], 3, True)[:, 0].tolist() == [1, 0, 1]
    assert layout.plane_coefficients(3, True).tolist() == [1, 2, -4]
    assert layout.plane_coefficients(3, False).tolist() == [1, 2, 4]
    assert layout.bitplanes([6], 3, False)[:, 0].tolist() == [0, 1, 1]


def test_im2col_order_and_padding():
    # 2x2 map, 2 channels: pixel (y, x) holds [4y + 2x + 1, 4y + 2x + 2]
    f = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])
    # K=2, no padding: one window, (ky, kx, c) with c fastest
    assert layout.im2col(f, 2, 1, 0, 0).tolist() == [[[1, 2, 3, 4, 5, 6, 7, 8]]]
    assert layout.im2col_index(1, 0, 1, 2, 2) == 5
    # K=2, stride 2, pad 1 with 9: 2x2 windows, each sees one real pixel
    cols = layout.im2col(f, 2, 2, 1, 9)
    assert cols.shape == (2, 2, 8)
    assert cols[0, 0].tolist() == [9, 9, 9, 9, 9, 9, 1, 2]      # real pixel at (ky1, kx1)
    assert cols[0, 1].tolist() == [9, 9, 9, 9, 3, 4, 9, 9]      # (ky1, kx0)
    assert cols[1, 0].tolist() == [9, 9, 5, 6, 9, 9, 9, 9]      # (ky0, kx1)
    assert cols[1, 1].tolist() == [7, 8, 9, 9, 9, 9, 9, 9]      # (ky0, kx0)


def test_conv_weight_to_matrix():
    # torch (OC=1, C=2, K=2, K=2) with w[0, c, ky, kx] = 100c + 10ky + kx
    w = np.array([[[[0, 1], [10, 11]], [[100, 101], [110, 111]]]])
    # columns (ky, kx, c), c fastest
    assert layout.conv_weight_to_matrix(w).tolist() == [[0, 100, 1, 101, 10, 110, 11, 111]]


def test_flatten_order():
    # (h, w, c) with c fastest in a 2x3x4 map
    assert layout.flatten_index(0, 1, 0, 2, 3, 4) == 4
    assert layout.flatten_index(1, 0, 2, 2, 3, 4) == 14
    assert layout.flatten_index(1, 2, 3, 2, 3, 4) == 23
    # torch FC columns (c, h, w) for C=2, H=1, W=2: [c0w0, c0w1, c1w0, c1w1] = 10, 11, 20, 21
    # -> IR columns (h, w, c): [w0c0, w0c1, w1c0, w1c1]
    t = np.array([[10, 11, 20, 21], [30, 31, 40, 41]])
    assert layout.fc_weight_from_torch(t, 2, 1, 2).tolist() == [[10, 20, 11, 21],
                                                                [30, 40, 31, 41]]


def test_class_index_width():
    assert [layout.class_index_width(n) for n in (1, 2, 3, 4, 5, 10, 16, 17)] == \
        [1, 1, 2, 2, 3, 4, 4, 5]
