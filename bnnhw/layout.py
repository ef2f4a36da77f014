"""Every ordering and packing decision of bnnhw, in one place.

Nothing else in the project re-derives a bit order: the exporter, the golden
model, the hardware cores, the dataflow builder and the testbenches import
these functions. Change an order here and every consumer follows.

Conventions
-----------
Encoding
    bit 1 means +1, bit 0 means -1.  ``sign(x) = +1 for x >= 0``.

Bit order inside a word (``pack_bits``)
    Element ``j`` of a vector sits at bit ``j`` of the packed integer
    (LSB first).  In numpy, vectors are packed into little-endian ``uint64``
    words: element ``j`` is bit ``j % 64`` of word ``j // 64``; unused high
    bits of the last word are 0.

Activation tensors
    Channels-last.  A feature map is ``(H, W, C)``; an FC vector is ``(C,)``.
    Streams carry pixels in raster order (row ``y`` outer, column ``x``
    inner), channels of one pixel together.

im2col order (``im2col_index``)
    For one output pixel, the K*K*C vector is ordered ``(ky, kx, c)`` with
    ``c`` fastest: index ``(ky*K + kx)*C + c``.  A conv weight matrix has
    shape ``(OC, K*K*C)`` in that column order (torch's ``(OC, C, K, K)`` is
    permuted by ``conv_weight_to_matrix``).

Conv -> FC flatten order (``flatten_index``)
    ``(h, w, c)`` with ``c`` fastest, i.e. channels-last raster order;
    torch's ``(c, h, w)`` flatten is permuted by ``fc_weight_from_torch``.

Folding (FINN vocabulary)
    A matrix-vector unit has MW inputs, MH outputs, ``SIMD`` inputs and
    ``PE`` outputs per cycle; ``SF = MW // SIMD`` synapse folds,
    ``NF = MH // PE`` neuron folds.  Neuron ``n`` is computed by PE
    ``n % PE`` in neuron fold ``n // PE``.  PE ``p``'s weight memory holds,
    at address ``nf*SF + sf``, the SIMD-bit word of weights
    ``W[nf*PE + p, sf*SIMD : (sf+1)*SIMD]`` packed LSB first
    (``pack_weights``).  PE ``p``'s threshold memory holds ``T[nf*PE + p]``
    at address ``nf`` (``pack_thresholds``).  The input vector is consumed as
    SF words of SIMD elements, word ``sf`` = elements ``sf*SIMD ..``.  The
    output of neuron fold ``nf`` is one PE-wide word, bit ``p`` = neuron
    ``nf*PE + p`` (for score outputs: PE signed fields, field ``p`` =
    neuron ``nf*PE + p``).

Bit-planes of integer inputs (``bitplanes``)
    An integer ``x`` of ``B`` bits (unsigned, or two's complement when
    signed) is ``sum_n c_n * x_n`` with plane ``x_n`` in {0, 1},
    ``c_n = 2**n`` and, for signed inputs, ``c_(B-1) = -2**(B-1)``.

Stream payloads of the accelerator top
    Input: one image element per beat, raster order, channels-last, the
    integer in ``B`` bits (two's complement if signed); 1-bit inputs are the
    bit itself.  Output: the class index (``class_index_width`` bits).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "to_bits", "from_bits", "pack_bits", "unpack_bits", "popcount",
    "im2col_index", "im2col", "conv_weight_to_matrix", "conv_weight_from_matrix",
    "flatten_index", "fc_weight_from_torch", "fc_weight_to_torch", "check_fold", "divisors",
    "pack_weights", "pack_thresholds",
    "unpack_fold_output", "bitplanes", "plane_coefficients", "int_to_word",
    "input_beats", "class_index_width",
]

WORD = 64


# -- encoding ---------------------------------------------------------------

def to_bits(pm1) -> np.ndarray:
    """Map values to bits: ``x >= 0`` (i.e. +1) -> 1, ``x < 0`` (-1) -> 0."""
    return (np.asarray(pm1) >= 0).astype(np.uint8)


def from_bits(bits) -> np.ndarray:
    """Map bits to +-1 as int8: 1 -> +1, 0 -> -1."""
    return (np.asarray(bits).astype(np.int8) * 2 - 1).astype(np.int8)


# -- words ------------------------------------------------------------------

def pack_bits(bits) -> np.ndarray:
    """Pack the last axis of a {0,1} array into uint64 words, element j at bit j%64
    of word j//64.  Shape ``(..., n)`` -> ``(..., ceil(n/64))``."""
    bits = np.asarray(bits).astype(np.uint8)
    n = bits.shape[-1]
    nw = max(1, -(-n // WORD))
    pad = nw * WORD - n
    if pad:
        bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), np.uint8)], axis=-1)
    by = np.packbits(bits, axis=-1, bitorder="little")  # (..., nw*8) bytes
    return np.ascontiguousarray(by).view("<u8").reshape(bits.shape[:-1] + (nw,))


def unpack_bits(words, n: int) -> np.ndarray:
    """Inverse of ``pack_bits``: ``(..., nw)`` uint64 -> ``(..., n)`` uint8 bits."""
    words = np.ascontiguousarray(np.asarray(words, dtype="<u8"))
    by = words.view(np.uint8).reshape(words.shape[:-1] + (words.shape[-1] * 8,))
    return np.unpackbits(by, axis=-1, bitorder="little")[..., :n]


def popcount(words) -> np.ndarray:
    """Total set bits over the last axis of packed words (int64)."""
    return np.bitwise_count(np.asarray(words)).sum(axis=-1, dtype=np.int64)


def int_to_word(bits_vec) -> int:
    """A {0,1} vector as one Python int, element j at bit j (hardware word)."""
    out = 0
    for j, b in enumerate(np.asarray(bits_vec).tolist()):
        if b:
            out |= 1 << j
    return out


# -- convolution orders -----------------------------------------------------

def im2col_index(ky: int, kx: int, c: int, k: int, channels: int) -> int:
    """Position of (ky, kx, c) in an im2col vector of a KxK window over C channels."""
    return (ky * k + kx) * channels + c


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def im2col(fmap, k: int, stride: int, pad: int, pad_value) -> np.ndarray:
    """Sliding windows of a channels-last map ``(..., H, W, C)``.

    Returns ``(..., OH, OW, K*K*C)`` in im2col order; the border is filled
    with ``pad_value`` (an element value of ``fmap``'s dtype: a bit for
    binary maps, an integer for the first layer)."""
    fmap = np.asarray(fmap)
    *lead, h, w, c = fmap.shape
    if pad:
        widths = [(0, 0)] * len(lead) + [(pad, pad), (pad, pad), (0, 0)]
        fmap = np.pad(fmap, widths, constant_values=pad_value)
    oh, ow = out_size(h, k, stride, pad), out_size(w, k, stride, pad)
    cols = []
    for ky in range(k):
        for kx in range(k):
            cols.append(fmap[..., ky:ky + stride * (oh - 1) + 1:stride,
                             kx:kx + stride * (ow - 1) + 1:stride, :])
    return np.concatenate(cols, axis=-1)  # (..., OH, OW, K*K*C), (ky, kx, c) order


def conv_weight_to_matrix(w) -> np.ndarray:
    """torch conv weight ``(OC, C, K, K)`` -> ``(OC, K*K*C)`` in im2col order."""
    w = np.asarray(w)
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1))


def conv_weight_from_matrix(m, channels: int, k: int) -> np.ndarray:
    """Inverse of :func:`conv_weight_to_matrix`: ``(OC, K*K*C)`` in im2col order ->
    the torch/ONNX conv weight ``(OC, C, K, K)``."""
    m = np.asarray(m)
    return np.ascontiguousarray(m.reshape(m.shape[0], k, k, channels).transpose(0, 3, 1, 2))


def flatten_index(h: int, w: int, c: int, height: int, width: int, channels: int) -> int:
    """Position of feature (h, w, c) in the flattened (channels-last) vector."""
    return (h * width + w) * channels + c


def fc_weight_from_torch(w, channels: int, height: int, width: int) -> np.ndarray:
    """An FC weight ``(OUT, C*H*W)`` that follows a conv, columns in torch's
    ``(c, h, w)`` order -> columns in the IR's ``(h, w, c)`` order."""
    w = np.asarray(w)
    out = w.shape[0]
    return np.ascontiguousarray(
        w.reshape(out, channels, height, width).transpose(0, 2, 3, 1).reshape(out, -1))


def fc_weight_to_torch(w, channels: int, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`fc_weight_from_torch`: columns in the IR's ``(h, w, c)``
    order -> torch's/ONNX's ``(c, h, w)`` flatten order."""
    w = np.asarray(w)
    out = w.shape[0]
    return np.ascontiguousarray(
        w.reshape(out, height, width, channels).transpose(0, 3, 1, 2).reshape(out, -1))


# -- folding ----------------------------------------------------------------

def divisors(n: int) -> list[int]:
    """The divisors of ``n`` in increasing order (the legal SIMD, PE, planes of a layer)."""
    return [d for d in range(1, n + 1) if n % d == 0]


def check_fold(mw: int, mh: int, simd: int, pe: int, *, layer: str = "layer") -> None:
    """Raise ValueError naming the layer and legal values unless SIMD | MW and PE | MH."""
    if not (isinstance(simd, int) and simd >= 1 and mw % simd == 0):
        raise ValueError(f"{layer}: SIMD={simd} does not divide MW={mw}; "
                         f"legal values: {divisors(mw)}")
    if not (isinstance(pe, int) and pe >= 1 and mh % pe == 0):
        raise ValueError(f"{layer}: PE={pe} does not divide MH={mh}; "
                         f"legal values: {divisors(mh)}")


def pack_weights(wbits, pe: int, simd: int) -> list[list[int]]:
    """Per-PE weight memory contents.

    ``wbits``: ``(MH, MW)`` {0,1}.  Returns ``mems[p][nf*SF + sf]`` = the
    SIMD-bit word of ``W[nf*PE + p, sf*SIMD:(sf+1)*SIMD]``, element j at bit j."""
    wbits = np.asarray(wbits).astype(np.uint8)
    mh, mw = wbits.shape
    check_fold(mw, mh, simd, pe)
    nf, sf = mh // pe, mw // simd
    weights = (1 << np.arange(simd, dtype=object))
    mems = []
    for p in range(pe):
        rows = wbits[p::pe]  # neurons nf*PE + p for nf = 0..NF-1
        words = rows.reshape(nf * sf, simd).astype(object) @ weights
        mems.append([int(v) for v in words])
    return mems


def pack_thresholds(thresholds, pe: int) -> list[list[int]]:
    """Per-PE threshold memory contents: ``mems[p][nf] = T[nf*PE + p]``.

    ``thresholds`` is ``(MH,)`` or ``(MH, n_steps)``; entries are ints."""
    t = np.asarray(thresholds)
    mh = t.shape[0]
    if mh % pe:
        raise ValueError(f"PE={pe} does not divide MH={mh}; legal values: {divisors(mh)}")
    return [[t[nf * pe + p].tolist() for nf in range(mh // pe)] for p in range(pe)]


def unpack_fold_output(words, pe: int) -> np.ndarray:
    """Sequence of NF PE-bit output words -> MH bits, neuron nf*PE + p = bit p of word nf."""
    return np.array([(w >> p) & 1 for w in words for p in range(pe)], dtype=np.uint8)


# -- integer inputs ---------------------------------------------------------

def plane_coefficients(bits: int, signed: bool) -> np.ndarray:
    """c_n for n = 0..B-1: 2**n, with c_(B-1) = -2**(B-1) when signed."""
    c = np.array([1 << n for n in range(bits)], dtype=np.int64)
    if signed:
        c[-1] = -c[-1]
    return c


def bitplanes(x, bits: int, signed: bool) -> np.ndarray:
    """Bit-planes of integers: ``(...)`` -> ``(B, ...)`` uint8, plane n = bit n of the
    B-bit (two's complement when signed) representation.  Raises if out of range."""
    x = np.asarray(x).astype(np.int64)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"input values outside the {bits}-bit "
                         f"{'signed' if signed else 'unsigned'} range [{lo}, {hi}]")
    u = x & ((1 << bits) - 1)
    return np.stack([((u >> n) & 1).astype(np.uint8) for n in range(bits)])


def input_beats(x_int, bits: int, signed: bool) -> np.ndarray:
    """Quantised images ``(N, C, H, W)`` (``x_int``, or bits for 1-bit inputs)
    -> input-stream beats ``(N, H*W*C)`` uint64: raster order, channels-last,
    each element as its B-bit pattern (two's complement when signed)."""
    x = np.asarray(x_int).astype(np.int64)
    if x.ndim != 4:
        raise ValueError(f"expected images shaped (N, C, H, W), got {x.shape}")
    bitplanes(x, bits, signed)  # range check, raises with the legal range
    hwc = x.transpose(0, 2, 3, 1).reshape(x.shape[0], -1)
    return (hwc & ((1 << bits) - 1)).astype(np.uint64)


def class_index_width(num_classes: int) -> int:
    """Bits of the output stream's class index."""
    return max(1, (num_classes - 1).bit_length())
