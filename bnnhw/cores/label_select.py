"""LabelSelect: argmax over the class scores of one frame, ties to the lowest index."""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Signal, Module, Mux, signed, unsigned
from amaranth.utils import bits_for

from .. import layout, golden_ops
from ._common import StreamCore, Schedule, check_positive_int, divisors
from .registry import register, Conformance

__all__ = ["LabelSelect"]


def _pack_scores(scores, width):
    word = 0
    for p, v in enumerate(scores):
        word |= (int(v) & ((1 << width) - 1)) << (p * width)
    return word


class _LabelSelectConformance(Conformance):
    def configs(self):
        return [(f"n{n}_pe{pe}_w{w}", dict(num_classes=n, pe=pe, score_width=w))
                for (n, pe, w) in [(10, 1, 6), (10, 10, 8), (10, 5, 4), (6, 2, 3), (1, 1, 4)]]

    def build(self, params, rng):
        p = dict(params)
        return LabelSelect(name=p.pop("name", "top"), **p)

    def frames(self, core, rng, n, edge=False):
        lo, hi = -(1 << (core.score_width - 1)), (1 << (core.score_width - 1)) - 1
        nc = core.num_classes
        if edge:
            out = [np.full(nc, lo), np.full(nc, hi), np.arange(nc) % 2 * hi,
                   np.where(np.arange(nc) == nc - 1, hi, lo)]
            return out[:max(n, 1)]
        # few distinct values so that ties are common
        return [rng.integers(lo, hi + 1, nc) if k % 2 else rng.integers(-1, 2, nc)
                for k in range(n)]

    def encode(self, core, frame):
        pe, w = core.pe, core.score_width
        return [_pack_scores(frame[b * pe:(b + 1) * pe], w) for b in range(core.in_beats)]

    def expected(self, core, frame):
        return [int(golden_ops.argmax(np.asarray(frame)))]

    def formulas(self, core):
        nb = core.num_classes // core.pe
        return {"throughput": nb, "latency": nb}

    def bad_params(self):
        return [(dict(num_classes=10, pe=4, score_width=8, name="fc_out"),
                 "fc_out: PE=4 does not divide NUM_CLASSES=10"),
                (dict(num_classes=10, pe=2, score_width=0, name="fc_out"), "fc_out: score width")]

    def synth_params(self):
        return dict(num_classes=10, pe=2, score_width=10)


@register("label_select", conformance=_LabelSelectConformance)
class LabelSelect(StreamCore):
    """Index of the largest of ``num_classes`` signed scores; ties go to the lowest index.

    Parameters (keyword-only): ``name``, ``num_classes``, ``pe`` (scores per
    beat, divides ``num_classes``), ``score_width`` (bits of each signed
    score, e.g. an MVAU's ``score_width``).

    Ports
    -----
    i : stream of ``pe*score_width`` bits
        ``num_classes/pe`` beats per frame; field ``p`` of beat ``b`` (bits
        ``[p*score_width, (p+1)*score_width)``, two's complement) is class
        ``b*pe + p`` -- the output format of a score MVAU with the same PE.
    o : stream of ``layout.class_index_width(num_classes)`` bits
        One beat per frame: the class index (:func:`bnnhw.golden_ops.argmax`).

    Timing: one input beat per cycle, ``throughput = num_classes/pe``; the
    index is valid the cycle after the last score beat (``latency =
    num_classes/pe``).
    """

    def __init__(self, *, num_classes, pe=1, score_width, name="label_select"):
        self.name = str(name)
        self.num_classes = check_positive_int(num_classes, "NUM_CLASSES", self.name)
        self.pe = check_positive_int(pe, "PE", self.name)
        self.score_width = check_positive_int(score_width, "score width", self.name)
        if num_classes % pe:
            raise ValueError(f"layer {self.name}: PE={pe} does not divide "
                             f"NUM_CLASSES={num_classes}; legal values: {divisors(num_classes)}")
        self.index_width = layout.class_index_width(num_classes)
        super().__init__(pe * score_width, self.index_width)
        self.in_beats = num_classes // pe
        self.out_beats = 1

    def schedule(self, frames: int = 3) -> Schedule:
        nb = self.in_beats
        return Schedule([[f * nb + j for j in range(nb)] for f in range(frames)],
                        [[f * nb + nb] for f in range(frames)])

    @property
    def throughput(self) -> int:
        return self.in_beats

    def cost(self, family):
        """:func:`bnnhw.hwmodel.label_select_cost` (logic only)."""
        from .. import hwmodel as M
        return M.label_select_cost(pe=self.pe, score_width=self.score_width)

    @property
    def latency(self) -> int:
        return self.in_beats

    def elaborate(self, platform):
        m = Module()
        PE, SW, NB = self.pe, self.score_width, self.in_beats
        iw = bits_for(max(self.num_classes - 1, 1))
        i, o = self.i, self.o

        fire = Signal()
        m.d.comb += [i.ready.eq(~o.valid | o.ready), fire.eq(i.valid & i.ready)]

        beat = Signal(range(NB))
        base = Signal(range(self.num_classes))        # = beat * PE

        # balanced tournament inside the beat: the right operand wins only if strictly larger
        nodes = []
        for p in range(PE):
            v = Signal(signed(SW), name=f"score{p}")
            m.d.comb += v.eq(i.payload[p * SW:(p + 1) * SW])
            nodes.append((v, p))
        level = 0
        while len(nodes) > 1:
            nxt = []
            for j in range(0, len(nodes) - 1, 2):
                (av, ai), (bv, bi) = nodes[j], nodes[j + 1]
                take_b = bv > av
                v = Signal(signed(SW), name=f"best_l{level}_{j // 2}")
                x = Signal(unsigned(bits_for(PE - 1) or 1), name=f"idx_l{level}_{j // 2}")
                m.d.comb += [v.eq(Mux(take_b, bv, av)), x.eq(Mux(take_b, bi, ai))]
                nxt.append((v, x))
            if len(nodes) % 2:
                nxt.append(nodes[-1])
            nodes = nxt
            level += 1
        beat_v, beat_i = nodes[0]

        best_v = Signal(signed(SW))
        best_i = Signal(iw)
        take = Signal()
        cand = Signal(iw)
        m.d.comb += [take.eq((beat == 0) | (beat_v > best_v)), cand.eq(base + beat_i)]
        with m.If(fire):
            with m.If(take):
                m.d.sync += [best_v.eq(beat_v), best_i.eq(cand)]
            with m.If(beat == NB - 1):
                m.d.sync += [beat.eq(0), base.eq(0)]
            with m.Else():
                m.d.sync += [beat.eq(beat + 1), base.eq(base + PE)]
        with m.If(~o.valid | o.ready):
            m.d.sync += [o.valid.eq(fire & (beat == NB - 1)),
                         o.payload.eq(Mux(take, cand, best_i))]
        return m
