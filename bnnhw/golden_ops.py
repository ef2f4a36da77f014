"""Bit-exact reference operations, one per hardware layer kind.

Integer-only numpy: these define what every core computes, and the
whole-network golden model is built from them.  Orders and packings come
from :mod:`bnnhw.layout`.  Bits are {0,1} uint8 arrays (1 = +1).
"""
from __future__ import annotations

import numpy as np

from . import layout

__all__ = ["xnor_popcount", "threshold", "first_layer_acc", "sliding_window",
           "maxpool", "argmax"]


def xnor_popcount(x_bits, w_bits) -> np.ndarray:
    """Popcount of XNOR(x, w) per neuron.

    ``x_bits``: ``(..., MW)`` bits; ``w_bits``: ``(MH, MW)`` bits.
    Returns ``(..., MH)`` int64 in [0, MW]; the +-1 dot product is ``2*p - MW``."""
    x = layout.pack_bits(x_bits)                 # (..., nw)
    w = layout.pack_bits(w_bits)                 # (MH, nw)
    mw = np.asarray(w_bits).shape[-1]
    # popcount(XNOR) = MW - popcount(XOR); padding bits are 0 in both, XOR 0 there.
    xor = np.bitwise_xor(x[..., None, :], w)      # (..., MH, nw)
    return mw - np.bitwise_count(xor).sum(axis=-1, dtype=np.int64)


def threshold(acc, thresholds) -> np.ndarray:
    """Output bit = 1 iff ``acc >= T`` (per output channel, last axis)."""
    return (np.asarray(acc) >= np.asarray(thresholds)).astype(np.uint8)


def first_layer_acc(x_int, w_bits, bits: int, signed: bool) -> np.ndarray:
    """Exact ``sum_i x_i * w_i`` for integer inputs and +-1 weights, bit-serially.

    ``acc = sum_n c_n * (2*popcount(x_n AND w+) - popcount(x_n))`` over the
    bit-planes ``x_n`` of ``x_int`` (paper eq. 6); ``c_n`` from
    :func:`bnnhw.layout.plane_coefficients`.  ``x_int``: ``(..., MW)``;
    returns ``(..., MH)`` int64."""
    planes = layout.bitplanes(x_int, bits, signed)        # (B, ..., MW)
    coef = layout.plane_coefficients(bits, signed)
    wp = layout.pack_bits(w_bits)                          # (MH, nw)
    acc = 0
    for n in range(bits):
        xp = layout.pack_bits(planes[n])                   # (..., nw)
        both = np.bitwise_count(np.bitwise_and(xp[..., None, :], wp)).sum(-1, dtype=np.int64)
        ones = np.bitwise_count(xp).sum(-1, dtype=np.int64)[..., None]
        acc = acc + int(coef[n]) * (2 * both - ones)
    return np.asarray(acc, dtype=np.int64)


def sliding_window(fmap, k: int, stride: int, pad: int, pad_value) -> np.ndarray:
    """im2col windows of a channels-last map; see :func:`bnnhw.layout.im2col`."""
    return layout.im2col(fmap, k, stride, pad, pad_value)


def maxpool(bits, k: int, pool_op) -> np.ndarray:
    """Max-pool with kernel = stride = k on a channels-last bit map ``(..., H, W, C)``.

    ``pool_op``: per channel, ``"or"`` (max of +-1) or ``"and"`` (min of +-1,
    for channels whose sign is decreasing).  Trailing rows/columns that do not
    fill a window are dropped (floor), like torch's default."""
    bits = np.asarray(bits).astype(np.uint8)
    *lead, h, w, c = bits.shape
    oh, ow = h // k, w // k
    win = bits[..., :oh * k, :ow * k, :].reshape(*lead, oh, k, ow, k, c)
    orv = win.max(axis=(-4, -2))
    andv = win.min(axis=(-4, -2))
    ops = np.asarray(pool_op)
    if ops.ndim == 0:
        ops = np.full(c, ops)
    is_and = (ops == "and")
    return np.where(is_and, andv, orv).astype(np.uint8)


def argmax(scores) -> np.ndarray:
    """Class index of the largest score, ties to the lowest index."""
    return np.argmax(np.asarray(scores), axis=-1)
