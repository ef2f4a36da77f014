"""A tiny stand-in accelerator for board tests and link checks.

:class:`SumModAccelerator` has the same interface as a generated BNN
accelerator -- stream ``i`` (one element of ``in_width`` bits per beat,
``frame_len`` beats per image) and stream ``o`` (one class index per image)
-- and computes ``sum(image) % num_classes``. Latency: the class appears two cycles
after the last element; while a result waits on ``o.ready`` it accepts no input, and
``ready_every=k`` accepts input only every k-th cycle (back-pressure for the
shell's tests). Golden model: :func:`sum_mod`.
"""
from __future__ import annotations

from amaranth import Array, C, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SumModAccelerator", "sum_mod"]


def sum_mod(image, num_classes: int) -> int:
    return int(sum(int(v) for v in image)) % num_classes


class SumModAccelerator(wiring.Component):
    def __init__(self, frame_len: int, in_width: int = 8, num_classes: int = 10, *,
                 ready_every: int = 1):
        if frame_len < 1 or num_classes < 2 or in_width < 1 or ready_every < 1:
            raise ValueError("frame_len >= 1, num_classes >= 2, in_width >= 1, ready_every >= 1")
        self.frame_len = frame_len
        self.in_width = in_width
        self.num_classes = num_classes
        self.ready_every = ready_every
        out_width = max(1, (num_classes - 1).bit_length())
        super().__init__({
            "i": In(stream.Signature(unsigned(in_width))),
            "o": Out(stream.Signature(unsigned(out_width))),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.num_classes
        count = Signal(range(self.frame_len))
        phase = Signal(range(self.ready_every))
        gate = Signal()
        if self.ready_every > 1:
            m.d.sync += phase.eq(Mux(phase == self.ready_every - 1, 0, phase + 1))
            m.d.comb += gate.eq(phase == 0)
        else:
            m.d.comb += gate.eq(1)
        m.d.comb += self.i.ready.eq(gate & ~self.o.valid)
        # stage 1: element mod C; stage 2: modular accumulate (short paths, so the
        # stand-in never limits the shell's fmax)
        xm = Signal(range(c))
        mod_c = Signal(range(c))
        if self.in_width <= 10:   # a lookup table: a few LUT levels, no divider
            m.d.comb += mod_c.eq(Array([C(v % c, len(mod_c))
                                        for v in range(1 << self.in_width)])[self.i.payload])
        else:
            m.d.comb += mod_c.eq(self.i.payload % c)
        xv = Signal()
        xlast = Signal()
        m.d.sync += xv.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [xm.eq(mod_c), xv.eq(1),
                         xlast.eq(count == self.frame_len - 1),
                         count.eq(Mux(count == self.frame_len - 1, 0, count + 1))]
        acc = Signal(range(c))
        s = Signal(range(2 * c))
        s2 = Signal(range(c))
        m.d.comb += [s.eq(acc + xm), s2.eq(Mux(s >= c, s - c, s))]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(xv):
            with m.If(xlast):
                m.d.sync += [acc.eq(0), self.o.valid.eq(1), self.o.payload.eq(s2)]
            with m.Else():
                m.d.sync += acc.eq(s2)
        return m
