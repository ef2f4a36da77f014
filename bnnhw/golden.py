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

from . import golden_ops
from .ir import NetworkIR
from .kinds import kind_of

__all__ = ["GoldenModel", "run"]


class GoldenModel:
    """Bit-exact integer model of ``ir``.

    ``chunk``: images per batch (bounds memory); ``reference``: use the
    reference ops of :mod:`bnnhw.golden_ops` instead of the fast engine."""

    def __init__(self, ir: NetworkIR, *, chunk: int = 256, reference: bool = False):
        self.ir = ir
        self.chunk = max(1, int(chunk))
        self.reference = bool(reference)
        self._kinds = [kind_of(l) for l in ir.layers]
        self._plans = [k.golden_prepare(l, self.reference)
                       for k, l in zip(self._kinds, ir.layers)]

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
            for kind, layer, plan in zip(self._kinds, self.ir.layers, self._plans):
                x = kind.golden(layer, plan, x, outs, self.reference)
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


def run(ir: NetworkIR, raw, **kw):
    """``GoldenModel(ir).run(raw, **kw)``."""
    return GoldenModel(ir).run(raw, **kw)
