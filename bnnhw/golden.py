"""The bit-exact golden model of a network IR (numpy, integers only).

:class:`GoldenModel` computes what the hardware computes: raw uint8 ->
integers (:meth:`bnnhw.ir.InputQuant.quantize`), then per layer XNOR +
popcount on packed bits (bit-planes for the integer first layer), the
threshold compare ``acc >= T``, bit max-pool with the per-channel
``pool_op``, integer class scores and argmax with ties to the lowest index.
No float is used after input quantisation.

Two engines compute identical results (the tests check both against torch):
the default one packs each im2col vector into uint64 words (conv windows
assembled from per-pixel codes by shifts, in the layout's bit order) and
accumulates XOR (binary layers) or AND (first-layer bit-planes, Horner's
rule over the planes) popcounts word by word over cache-sized tiles; it is
used on whole test sets.  With ``reference=True`` every layer is computed by
the reference ops of :mod:`bnnhw.golden_ops` (slow, the definition).

Per-layer outputs (``collect=True``), one dict per IR layer, batch first,
channels-last:

- hidden conv/fc: ``acc`` (int64, ``(N, OH, OW, MH)`` or ``(N, MH)``, in the
  layer's accumulator domain with inverted rows as stored) and ``bits``
  (uint8 threshold outputs, same shape);
- maxpool: ``bits`` (uint8 ``(N, H/k, W/k, C)``);
- output fc: ``acc`` (int64 ``(N, classes)``) and ``scores`` (int64, what
  argmax sees).
"""
from __future__ import annotations

import numpy as np

from . import golden_ops, layout
from .ir import MaxPool, NetworkIR

__all__ = ["GoldenModel", "run"]

_BLOCK = 1 << 15     # elements of one (rows x MH) tile of the count loop (cache-sized)


class GoldenModel:
    """Bit-exact integer model of ``ir``.

    ``chunk``: images per batch (bounds memory); ``reference``: use the
    reference ops of :mod:`bnnhw.golden_ops` instead of the fast engine."""

    def __init__(self, ir: NetworkIR, *, chunk: int = 256, reference: bool = False):
        self.ir = ir
        self.chunk = max(1, int(chunk))
        self.reference = bool(reference)
        self._plans = [self._plan(l) for l in ir.layers]

    # -- public --------------------------------------------------------------

    def run(self, raw, *, collect: bool = False):
        """Classify raw images ``(N, C, H, W)`` (uint8 values).

        Returns ``(classes, scores)`` (int64 ``(N,)``, int64 ``(N, classes)``), and
        the per-layer outputs (see module doc) as a third item when ``collect``."""
        raw = np.asarray(raw)
        q = self.ir.input
        if raw.ndim == 3 and q.channels == 1 and tuple(raw.shape[1:]) == (q.height, q.width):
            raw = raw[:, None]
        n = raw.shape[0] if raw.ndim else 0
        classes, scores, per = [], [], []
        for s in range(0, max(n, 1), self.chunk):
            x = q.quantize(raw[s:s + self.chunk])
            outs = [] if collect else None
            for layer, plan in zip(self.ir.layers, self._plans):
                x = self._layer(layer, plan, x, outs)
            scores.append(x)
            classes.append(golden_ops.argmax(x) if len(x) else np.zeros(0, np.int64))
            if collect:
                per.append(outs)
            if n == 0:
                break
        classes = np.concatenate(classes).astype(np.int64)
        scores = np.concatenate(scores).astype(np.int64)
        if not collect:
            return classes, scores
        merged = [{k: np.concatenate([p[i][k] for p in per]) for k in per[0][i]}
                  for i in range(len(self.ir.layers))]
        return classes, scores, merged

    def predict(self, raw) -> np.ndarray:
        return self.run(raw)[0]

    # -- planning: packed weights per layer ---------------------------------

    def _plan(self, l):
        if isinstance(l, MaxPool):
            return {"and": np.asarray(l.pool_op) == "and"}
        p = {}
        if l.thresholds is not None:
            p["thr"] = np.asarray(l.thresholds, dtype=np.int64)
        if l.score_kind == "rank_table":
            p["table"] = np.asarray(l.score_table, dtype=np.int64)
        if self.reference:
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

    # -- one layer ------------------------------------------------------------

    def _layer(self, l, plan, x, outs):
        if isinstance(l, MaxPool):
            y = golden_ops.maxpool(x, l.kernel, l.pool_op)
            if outs is not None:
                outs.append({"bits": y})
            return y
        acc = self._acc_reference(l, x) if self.reference else self._acc_fast(l, plan, x)
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

    def _acc_reference(self, l, x):
        """The layer's accumulator by the reference ops (unpacked bits)."""
        n = x.shape[0]
        if l.kind == "conv":
            x = golden_ops.sliding_window(x, l.kernel, l.stride, l.padding, l.pad_value)
        else:
            x = x.reshape(n, l.mw)
        if l.input_bits == 1:
            return golden_ops.xnor_popcount(x, l.weights)
        return golden_ops.first_layer_acc(x, l.weights, l.input_bits, l.input_signed)

    def _acc_fast(self, l, plan, x):
        if l.kind == "conv" and l.padding:
            p = l.padding
            x = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)], constant_values=l.pad_value)
        if l.input_bits == 1:
            words, shp = self._pack(l, plan, x)                  # (M, nw)
            acc = _count_loop(words[None], plan["w"], plan["dtype"], np.bitwise_xor,
                              coef_signed=False, final=("xnor", l.mw))
            return acc.reshape(shp + (l.mh,))
        # integer first layer, bit-serial (paper eq. 6):
        # acc = 2 * sum_n c_n popcount(x_n AND w+) - sum_n c_n popcount(x_n)
        planes = layout.bitplanes(x, l.input_bits, l.input_signed)   # (B, N, ...)
        words = []
        for b in range(l.input_bits):
            w_b, shp = self._pack(l, plan, planes[b])
            words.append(w_b)
        words = np.stack(words)                                    # (B, M, nw)
        coef = layout.plane_coefficients(l.input_bits, l.input_signed)
        ones = np.bitwise_count(words).sum(axis=-1, dtype=np.int64)  # (B, M)
        total = (coef[:, None] * ones).sum(axis=0)                    # sum of x over the window
        acc = _count_loop(words, plan["w"], plan["dtype"], np.bitwise_and,
                          coef_signed=l.input_signed, final=("int", total))
        return acc.reshape(shp + (l.mh,))

    def _pack(self, l, plan, bits):
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


def run(ir: NetworkIR, raw, **kw):
    """``GoldenModel(ir).run(raw, **kw)``."""
    return GoldenModel(ir).run(raw, **kw)
