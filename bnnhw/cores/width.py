"""Stream width converters (integer ratios), element order preserved.

A wide word of ``N`` narrow chunks carries chunk ``k`` at bits
``[k*narrow, (k+1)*narrow)``; chunk 0 travels first.  With SIMD-element
words (element ``j`` at bits ``[j*E, (j+1)*E)``, see :mod:`bnnhw.layout`)
this keeps the element order: a 32-element word becomes four 8-element
words, elements 0..7 first.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Signal, Module, Cat

from ._common import StreamCore, Schedule, check_positive_int
from .registry import register, Conformance

__all__ = ["WidthConverter"]


class _WidthConformance(Conformance):
    def configs(self):
        return [(f"i{a}_o{b}", dict(i_width=a, o_width=b))
                for (a, b) in [(8, 1), (1, 8), (27, 9), (9, 27), (12, 12), (40, 8), (6, 30)]]

    def build(self, params, rng):
        p = dict(params)
        return WidthConverter(name=p.pop("name", "conv_test"), **p)

    def frames(self, core, rng, n, edge=False):
        # one frame = one wide word, as its list of chunks (narrow words)
        nar, cnt = core.narrow, core.ratio
        top = (1 << nar) - 1
        if edge:
            return [[0] * cnt, [top] * cnt, [j % 2 * top for j in range(cnt)],
                    [1 << (j % nar) for j in range(cnt)]][:max(n, 1)]
        return [[int(v) for v in rng.integers(0, top + 1, cnt)] for _ in range(n)]

    def _wide(self, core, chunks):
        return sum(c << (k * core.narrow) for k, c in enumerate(chunks))

    def encode(self, core, frame):
        return [self._wide(core, frame)] if core.i_width > core.o_width else list(frame)

    def expected(self, core, frame):
        return list(frame) if core.i_width > core.o_width else [self._wide(core, frame)]

    def formulas(self, core):
        return {"throughput": core.ratio,
                "latency": 1 if core.i_width > core.o_width else core.ratio}

    def bad_params(self):
        return [(dict(i_width=8, o_width=3, name="link2"),
                 "link2: widths 8 and 3 are not integer multiples"),
                (dict(i_width=0, o_width=3, name="link3"), "link3")]

    def synth_params(self):
        return dict(i_width=32, o_width=8)


@register("width_converter", conformance=_WidthConformance)
class WidthConverter(StreamCore):
    """Wide -> narrow (``i_width = N*o_width``) or narrow -> wide (``o_width = N*i_width``).

    Parameters (keyword-only): ``name``, ``i_width``, ``o_width`` (bits; one
    must be a multiple of the other).

    Ports: ``i`` (``i_width`` bits), ``o`` (``o_width`` bits); chunk 0 (low
    bits) first.  A frame is one wide word (N narrow beats).

    Timing: wide -> narrow: N output beats per input word, one per cycle,
    the first on the cycle after the word is taken (``latency = 1``),
    ``throughput = N``.  Narrow -> wide: one input per cycle, the wide word
    is valid the cycle after its last chunk (``latency = N``, ``throughput
    = N``).  Equal widths: a one-cycle register stage.
    """

    def __init__(self, *, i_width, o_width, name="width_converter"):
        self.name = str(name)
        check_positive_int(i_width, "input width", self.name)
        check_positive_int(o_width, "output width", self.name)
        if max(i_width, o_width) % min(i_width, o_width):
            raise ValueError(f"layer {self.name}: widths {i_width} and {o_width} are not "
                             f"integer multiples of each other; convert through "
                             f"{np.gcd(i_width, o_width)}-bit words or choose matching "
                             f"SIMD/PE")
        self.narrow = min(i_width, o_width)
        self.ratio = max(i_width, o_width) // self.narrow
        super().__init__(i_width, o_width)
        if i_width > o_width:
            self.in_beats, self.out_beats = 1, self.ratio
        else:
            self.in_beats, self.out_beats = self.ratio, 1

    def schedule(self, frames: int = 3) -> Schedule:
        n = self.ratio
        if self.i_width > self.o_width:
            return Schedule([[f * n] for f in range(frames)],
                            [[f * n + 1 + j for j in range(n)] for f in range(frames)])
        return Schedule([[f * n + j for j in range(n)] for f in range(frames)],
                        [[f * n + n] for f in range(frames)])

    @property
    def throughput(self) -> int:
        return self.ratio

    def cost(self, family):
        """:func:`bnnhw.hwmodel.converter_cost` (logic only)."""
        from .. import hwmodel as M
        return M.converter_cost(self.i_width, self.o_width)

    @property
    def latency(self) -> int:
        return 1 if self.i_width > self.o_width else self.ratio

    def elaborate(self, platform):
        m = Module()
        i, o, N, nar = self.i, self.o, self.ratio, self.narrow
        cnt = Signal(range(N))
        if self.i_width > self.o_width:
            buf = Signal(self.i_width)
            busy = Signal()
            last = cnt == N - 1
            m.d.comb += [
                o.valid.eq(busy),
                o.payload.eq(buf.word_select(cnt, nar)),
                i.ready.eq(~busy | (o.ready & last)),
            ]
            with m.If(o.valid & o.ready):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(last):
                    m.d.sync += [busy.eq(0), cnt.eq(0)]
            with m.If(i.valid & i.ready):
                m.d.sync += [buf.eq(i.payload), busy.eq(1), cnt.eq(0)]
        else:
            parts = [Signal(nar, name=f"part{k}") for k in range(N - 1)]
            last = cnt == N - 1
            fire = Signal()
            m.d.comb += [i.ready.eq(~o.valid | o.ready | ~last), fire.eq(i.valid & i.ready)]
            with m.If(o.valid & o.ready):
                m.d.sync += o.valid.eq(0)
            with m.If(fire):
                with m.If(last):
                    m.d.sync += [cnt.eq(0), o.valid.eq(1),
                                 o.payload.eq(Cat(*parts, i.payload))]
                with m.Else():
                    m.d.sync += cnt.eq(cnt + 1)
                    for k in range(N - 1):
                        with m.If(cnt == k):
                            m.d.sync += parts[k].eq(i.payload)
        return m
