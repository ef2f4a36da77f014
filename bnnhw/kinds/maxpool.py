"""The ``maxpool`` layer kind: KxK max-pool of a bit map, OR or AND per channel.

Golden op: :func:`bnnhw.golden_ops.maxpool` (OR, or AND for the channels whose
``pool_op`` is "and").  Folding: ``simd`` channels per beat (a divisor of C),
``H*W*C/simd`` cycles per image; a folding file may leave it out (it then takes
the PE of the conv before it).  Lowering: one MaxPool core.
"""
from __future__ import annotations

from math import gcd

import numpy as np

from .. import golden_ops, hwmodel as M
from ..errors import FoldingError
from ..layout import divisors
from . import LayerFold, LayerGeom, LayerKind, check_int, fmt_values, register_kind

__all__ = ["MaxPoolKind"]


@register_kind
class MaxPoolKind(LayerKind):
    names = ("maxpool",)
    fold_keys = ("simd",)
    required_in_file = False

    def golden_prepare(self, l, reference):
        return {"and": np.asarray(l.pool_op) == "and"}

    def golden(self, l, prep, x, outs, reference):
        y = golden_ops.maxpool(x, l.kernel, l.pool_op)
        if outs is not None:
            outs.append({"bits": y})
        return y

    def geometry(self, l, i):
        h, w, c = l.in_shape
        oh, ow, _ = l.out_shape
        return LayerGeom(name=l.name, kind="maxpool", index=i, h=h, w=w, c=c, k=l.kernel,
                         stride=l.kernel, oh=oh, ow=ow)

    def legal_values(self, g):
        return {"simd": divisors(g.c)}

    def check_fold(self, g, f):
        if g.c % f.simd:
            raise FoldingError(f"layer {g.name}: SIMD={f.simd} does not divide C={g.c}; "
                               f"legal: {fmt_values(divisors(g.c))}", "choose a legal value")

    def in_width(self, g, f):
        return f.simd

    def out_width(self, g, f):
        return f.simd

    def add_figures(self, g, f, cyc, cost):
        cyc["maxpool"] = g.h * g.w * g.c // f.simd
        cost.add(M.maxpool_cost(simd=f.simd, out_width=g.ow, cf=g.c // f.simd), "maxpool")

    def fastest_reason(self, g, part):
        return f"all {g.c} channels per cycle over {g.h}x{g.w} pixels"

    def fold_from_file(self, g, e, prev, where):
        if e is None or "simd" not in e:
            simd = prev.pe if prev is not None and prev.kind == "conv" else 1
            if g.c % simd:
                simd = gcd(simd, g.c)
        else:
            simd = check_int(e["simd"], "simd", f"layer {g.name}")
        return LayerFold(g.name, "maxpool", simd=simd)

    def describe_fold(self, f, bits):
        return f"simd={f.simd}"

    def fold_further(self, g, f, key):
        smaller = [v for v in divisors(g.c) if v < f.simd]
        return f"simd={f.simd}", (f"simd={smaller[-1]}" if smaller else "already fully folded")

    def layer_hw(self, l, f):
        from ..cores.lowering import layer_hw_from_ir    # amaranth: not for the golden model
        return layer_hw_from_ir(l, simd=f.simd)

    def lower(self, hw):
        from ..cores.lowering import lower
        return lower(hw)

    def estimate_row(self, l, f):
        return {"simd": f.simd, "weight_bits": 0, "threshold_bits": 0}
