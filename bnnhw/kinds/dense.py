"""The ``fc`` and ``conv`` layer kinds: binary (or integer first-layer) matrix-vector
layers with per-channel thresholds, or class scores on the output layer.

Golden op: XNOR-popcount (binary inputs) or the bit-serial integer product (paper
eq. 6) over the im2col vector (:mod:`bnnhw.layout` order), then ``acc >= T``, or the
scores (``acc``, or a per-class ``rank_table`` lookup).  The fast engine packs each
vector into uint64 words and counts word by word over cache-sized tiles; with
``reference=True`` the reference ops of :mod:`bnnhw.golden_ops` compute it.

Folding: ``simd`` | MW, ``pe`` | MH, ``planes`` | B (integer inputs).  Cycles:
MVAU ``V * NF * B/planes * SF``; a conv's sliding-window unit
(:func:`bnnhw.hwmodel.swu_cycles`); an output layer's score table and LabelSelect.
Lowering (:func:`bnnhw.cores.lowering.lower`): [SlidingWindow [+ WidthConverter]] +
MVAU / FirstLayerMVAU [+ ScoreTable].
"""
from __future__ import annotations

from math import gcd

import numpy as np

from .. import golden_ops, hwmodel as M, layout
from ..errors import FoldingError
from ..layout import divisors
from . import LayerFold, LayerGeom, LayerKind, check_int, fmt_values, register_kind

__all__ = ["DenseKind"]

_BLOCK = 1 << 15     # elements of one (rows x MH) tile of the count loop (cache-sized)


def _signed_width(v: int) -> int:
    v = int(v)
    return (v.bit_length() if v >= 0 else (-v - 1).bit_length()) + 1


def _score_width(g: LayerGeom) -> int:
    """Bits of one score field leaving the MVAU (see bnnhw.cores.mvau)."""
    if g.bits == 1:
        return (g.mw).bit_length() + 1
    return M.mvau_widths(g.mw, g.bits, g.signed)[0]


@register_kind
class DenseKind(LayerKind):
    names = ("fc", "conv")
    fold_keys = ("simd", "pe", "planes")

    # -- IR semantics ------------------------------------------------------
    def golden_prepare(self, l, reference):
        p = {}
        if l.thresholds is not None:
            p["thr"] = np.asarray(l.thresholds, dtype=np.int64)
        if l.score_kind == "rank_table":
            p["table"] = np.asarray(l.score_table, dtype=np.int64)
        if reference:
            return p
        p["pack"] = "flat"
        if l.kind == "conv":
            c, k = l.in_shape[2], l.kernel
            cw = -(-c // 64)
            if c <= 64:
                # each pixel's C bits as one code; window words built by shifts,
                # identical to pack_bits(im2col(...)) (the layout's packing)
                p["pack"] = "shift"
            elif k * k * cw <= -(-(k * k * c) // 64) + 1:
                # word-aligned pixels: the im2col vector as K*K pixels of cw words
                # (zero bits between pixels in both inputs and weights)
                p["pack"] = "aligned"
        if p["pack"] == "aligned":
            k, c = l.kernel, l.in_shape[2]
            wm = l.weights.reshape(l.mh, k * k, c)
            p["w"] = np.ascontiguousarray(layout.pack_bits(wm).reshape(l.mh, -1).T)  # (nw, MH)
        else:
            p["w"] = np.ascontiguousarray(layout.pack_bits(l.weights).T)              # (nw, MH)
        if l.input_bits == 1:
            p["dtype"] = np.uint16 if l.mw < (1 << 16) - 1 else np.int32
        else:
            big = 2 * max(abs(l.acc_min), abs(l.acc_max)) + 2
            p["dtype"] = np.int32 if big < (1 << 31) else np.int64
        return p

    def golden(self, l, plan, x, outs, reference):
        acc = _acc_reference(l, x) if reference else _acc_fast(l, plan, x)
        if l.thresholds is not None:
            y = golden_ops.threshold(acc, plan["thr"])
            if outs is not None:
                outs.append({"acc": acc.astype(np.int64), "bits": y})
            return y
        acc = acc.astype(np.int64)
        if l.score_kind == "rank_table":
            sc = plan["table"][np.arange(l.mh), acc - l.acc_min]
        else:
            sc = acc
        if outs is not None:
            outs.append({"acc": acc, "scores": sc})
        return sc

    # -- folding -------------------------------------------------------------
    def geometry(self, l, i):
        g = dict(name=l.name, kind=l.kind, index=i, mw=l.mw, mh=l.mh, bits=l.input_bits,
                 signed=bool(l.input_signed), acc_bits=l.acc_bits, is_output=l.is_output,
                 score_kind=l.score_kind if l.is_output else None)
        if l.is_output and l.score_kind == "rank_table":
            t = l.score_table
            g.update(score_span=l.acc_max - l.acc_min + 1,
                     score_table_width=max(_signed_width(t.min()), _signed_width(t.max())))
        if l.kind == "conv":
            h, w, c = l.in_shape
            oh, ow, _ = l.out_shape
            g.update(h=h, w=w, c=c, k=l.kernel, stride=l.stride, pad=l.padding, oh=oh, ow=ow)
        return LayerGeom(**g)

    def legal_values(self, g):
        out = {"simd": divisors(g.mw), "pe": divisors(g.mh)}
        if g.bits > 1:
            out["planes"] = divisors(g.bits)
        return out

    def candidates(self, g):
        lv = self.legal_values(g)
        return [LayerFold(g.name, g.kind, simd=s, pe=p, planes=q)
                for p in lv["pe"] for s in lv["simd"] for q in lv.get("planes", [1])]

    def check_fold(self, g, f):
        lv = self.legal_values(g)
        if g.mw % f.simd:
            raise FoldingError(f"layer {g.name}: SIMD={f.simd} does not divide MW={g.mw}; "
                               f"legal: {fmt_values(lv['simd'])}", "choose a legal value")
        if g.mh % f.pe:
            raise FoldingError(f"layer {g.name}: PE={f.pe} does not divide MH={g.mh}; "
                               f"legal: {fmt_values(lv['pe'])}", "choose a legal value")
        if g.bits % f.planes:
            legal = fmt_values(lv.get("planes", [1]))
            raise FoldingError(f"layer {g.name}: planes={f.planes} does not divide the input "
                               f"width B={g.bits}; legal: {legal}", "choose a legal value")

    def in_width(self, g, f):
        if g.kind == "fc":
            return f.simd * g.bits
        return gcd(f.simd, g.c) * g.bits

    def out_width(self, g, f):
        if not g.is_output:
            return f.pe
        if g.score_kind == "rank_table":
            return f.pe * g.score_table_width
        return f.pe * _score_width(g)

    def in_bits(self, g):
        return (g.h * g.w * g.c if g.kind != "fc" else g.mw) * g.bits

    def add_figures(self, g, f, cyc, cost):
        groups = g.bits // f.planes
        nf, sf = g.mh // f.pe, g.mw // f.simd
        if g.kind == "conv":
            gs = gcd(f.simd, g.c)
            cyc["swu"] = M.swu_cycles(g.h, g.w, g.c, g.k, g.oh, g.ow, gs)
            rows = M.swu_default_rows(g.h, g.k, g.stride, g.pad, g.oh)
            cost.add(M.swu_cost(width=gs * g.bits, row_words=g.w * (g.c // gs), rows=rows),
                     "swu")
            if gs != f.simd:
                cost.add(M.converter_cost(gs * g.bits, f.simd * g.bits), "widen")
        vectors = g.oh * g.ow if g.kind == "conv" else 1
        cyc["mvau"] = vectors * nf * groups * sf
        cost.add(M.mvau_cost(mw=g.mw, mh=g.mh, simd=f.simd, pe=f.pe, bits=g.bits,
                             planes=f.planes, signed=g.signed,
                             thresholds=not g.is_output), "mvau")
        if g.is_output:
            sw = _score_width(g)
            if g.score_kind == "rank_table":
                cyc["score_table"] = nf
                cost.add(M.score_table_cost(mh=g.mh, pe=f.pe, span=g.score_span,
                                            score_width=g.score_table_width), "score_table")
                sw = g.score_table_width
            cyc["label_select"] = g.mh // f.pe
            cost.add(M.label_select_cost(pe=f.pe, score_width=sw), "label_select")

    def fastest_reason(self, g, part):
        if g.kind == "conv" and part == "swu":
            return (f"fully unrolled; its sliding-window unit emits at most C={g.c} channels "
                    f"per cycle, K*K={g.k * g.k} beats for each of {g.oh}x{g.ow} output "
                    f"pixels")
        if g.kind == "conv":
            return f"fully unrolled (one output pixel per cycle, {g.oh}x{g.ow} pixels)"
        return "fully unrolled (one vector per cycle)"

    def fold_from_file(self, g, e, prev, where):
        for key in ("simd", "pe"):
            if key not in e:
                raise FoldingError(f"{where}: layer {g.name} has no {key!r}",
                                   f"give simd and pe (legal {key}: "
                                   f"{fmt_values(self.legal_values(g)[key])})")
        simd = check_int(e["simd"], "SIMD", f"layer {g.name}")
        pe = check_int(e["pe"], "PE", f"layer {g.name}")
        planes = check_int(e.get("planes", g.bits), "planes", f"layer {g.name}")
        return LayerFold(g.name, g.kind, simd=simd, pe=pe, planes=planes)

    def fold_json(self, f, bits):
        d = f.as_dict()
        if bits > 1:
            d["planes"] = f.planes
        return d

    def describe_fold(self, f, bits):
        return f"simd={f.simd} pe={f.pe}" + (f" planes={f.planes}" if bits > 1 else "")

    def fold_further(self, g, f, key):
        lv = self.legal_values(g)
        pe = [v for v in lv["pe"] if v < f.pe]
        if key == "ebr":
            # block RAMs: fewer, deeper memories (smaller PE), or a narrower one
            tip = (f"pe={pe[-1]}" if pe else "already at pe=1 (block RAMs hold its "
                   "weights: a bigger device is needed)")
        else:
            simd = [v for v in lv["simd"] if v < f.simd]
            tip = (f"pe={pe[-1]}" if pe else f"simd={simd[-1]}" if simd
                   else "already fully folded")
        return f"simd={f.simd} pe={f.pe}", tip

    # -- lowering --------------------------------------------------------------
    def layer_hw(self, l, f):
        from ..cores.lowering import layer_hw_from_ir    # amaranth: not for the golden model
        kw = {"planes_per_cycle": f.planes} if l.input_bits > 1 else {}
        return layer_hw_from_ir(l, simd=f.simd, pe=f.pe, **kw)

    def lower(self, hw):
        from ..cores.lowering import lower
        return lower(hw)

    # -- estimates ---------------------------------------------------------------
    def estimate_row(self, l, f):
        d = {"simd": f.simd, "pe": f.pe, "mw": l.mw, "mh": l.mh, "weight_bits": l.mw * l.mh,
             "threshold_bits": (0 if l.thresholds is None else l.mh * l.acc_bits)}
        if l.input_bits > 1:
            d["planes"] = f.planes
        return d


# ----------------------------------------------------------------------------- engine

def _acc_reference(l, x):
    """The layer's accumulator by the reference ops (unpacked bits)."""
    n = x.shape[0]
    if l.kind == "conv":
        x = golden_ops.sliding_window(x, l.kernel, l.stride, l.padding, l.pad_value)
    else:
        x = x.reshape(n, l.mw)
    if l.input_bits == 1:
        return golden_ops.xnor_popcount(x, l.weights)
    return golden_ops.first_layer_acc(x, l.weights, l.input_bits, l.input_signed)

def _acc_fast(l, plan, x):
    if l.kind == "conv" and l.padding:
        p = l.padding
        x = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)], constant_values=l.pad_value)
    if l.input_bits == 1:
        words, shp = _pack(l, plan, x)                  # (M, nw)
        acc = _count_loop(words[None], plan["w"], plan["dtype"], np.bitwise_xor,
                          coef_signed=False, final=("xnor", l.mw))
        return acc.reshape(shp + (l.mh,))
    # integer first layer, bit-serial (paper eq. 6):
    # acc = 2 * sum_n c_n popcount(x_n AND w+) - sum_n c_n popcount(x_n)
    planes = layout.bitplanes(x, l.input_bits, l.input_signed)   # (B, N, ...)
    words = []
    for b in range(l.input_bits):
        w_b, shp = _pack(l, plan, planes[b])
        words.append(w_b)
    words = np.stack(words)                                    # (B, M, nw)
    coef = layout.plane_coefficients(l.input_bits, l.input_signed)
    ones = np.bitwise_count(words).sum(axis=-1, dtype=np.int64)  # (B, M)
    total = (coef[:, None] * ones).sum(axis=0)                    # sum of x over the window
    acc = _count_loop(words, plan["w"], plan["dtype"], np.bitwise_and,
                      coef_signed=l.input_signed, final=("int", total))
    return acc.reshape(shp + (l.mh,))

def _pack(l, plan, bits):
    """Packed input vectors ``(M, nw)`` of a (padded) bit map or vector, and the
    leading shape: ``(N,)`` for fc, ``(N, OH, OW)`` for conv."""
    n = bits.shape[0]
    if l.kind == "fc":
        return layout.pack_bits(bits.reshape(n, l.mw)), (n,)
    k, s = l.kernel, l.stride
    if plan["pack"] == "shift":
        codes = layout.pack_bits(bits)[..., 0]               # (N, Hp, Wp): C bits each
        win = _shift_windows(codes, k, s, bits.shape[-1])
    elif plan["pack"] == "aligned":
        win = layout.im2col(layout.pack_bits(bits), k, s, 0, 0)
    else:
        win = layout.pack_bits(layout.im2col(bits, k, s, 0, 0))
    oh, ow = win.shape[1], win.shape[2]
    return win.reshape(n * oh * ow, win.shape[-1]), (n, oh, ow)


def _shift_windows(codes, k, s, c):
    """im2col + pack_bits for ``C <= 64`` bits per pixel, from per-pixel codes
    ``(..., Hp, Wp)`` uint64: window element ``(ky, kx, ch)`` at bit
    ``(ky*K + kx)*C + ch`` of the concatenated words (layout order)."""
    hp, wp = codes.shape[-2:]
    oh, ow = (hp - k) // s + 1, (wp - k) // s + 1
    nw = max(1, -(-(k * k * c) // 64))
    lead = codes.shape[:-2]
    words = [np.zeros(lead + (oh, ow), np.uint64) for _ in range(nw)]
    for ky in range(k):
        for kx in range(k):
            sl = codes[..., ky:ky + s * (oh - 1) + 1:s, kx:kx + s * (ow - 1) + 1:s]
            bit = (ky * k + kx) * c
            w, off = divmod(bit, 64)
            if off:
                words[w] |= sl << np.uint64(off)
                if off + c > 64:
                    words[w + 1] |= sl >> np.uint64(64 - off)
            else:
                words[w] |= sl
    return np.stack(words, axis=-1)


def _count_loop(xp, wt, dtype, op, *, coef_signed, final):
    """Popcounts of ``op(x, w)`` over words and bit-planes, tile by tile (cache-sized).

    ``xp``: ``(B, M, nw)`` uint64 (B planes, most significant last), ``wt``:
    ``(nw, MH)``.  Accumulates ``sum_n c_n sum_k popcount(op(x[n, m, k], w[k, j]))``
    with ``c_n = 2**n`` (``c_(B-1) = -2**(B-1)`` when ``coef_signed``) by Horner's
    rule, then applies ``final``: ``("xnor", MW)`` -> ``MW - acc`` (XOR counts to
    XNOR popcounts) or ``("int", total)`` -> ``2*acc - total[m]``."""
    nb, m, nw = xp.shape
    mh = wt.shape[1]
    acc = np.empty((m, mh), dtype=dtype)
    if m == 0:
        return acc
    xt = np.ascontiguousarray(xp.transpose(0, 2, 1))               # (B, nw, M)
    rows = max(1, min(m, _BLOCK // max(1, mh)))
    tmp = np.empty((rows, mh), dtype=np.uint64)
    cnt = np.empty((rows, mh), dtype=np.uint8)
    kind, arg = final
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        t, c, a = tmp[:r1 - r0], cnt[:r1 - r0], acc[r0:r1]
        a.fill(0)
        for b in range(nb - 1, -1, -1):
            if b != nb - 1:
                np.left_shift(a, 1, out=a)
            neg = coef_signed and b == nb - 1
            for k in range(nw):
                op(xt[b, k, r0:r1, None], wt[k], out=t)
                np.bitwise_count(t, out=c)
                if neg:
                    np.subtract(a, c, out=a, casting="unsafe")
                else:
                    np.add(a, c, out=a, casting="unsafe")
        if kind == "xnor":
            np.subtract(dtype(arg), a, out=a)
        else:
            np.left_shift(a, 1, out=a)
            np.subtract(a, arg[r0:r1, None].astype(dtype), out=a)
    return acc
