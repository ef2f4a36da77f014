"""Small stand-in stream DUTs (Amaranth 0.5) for the simulation harness tests."""
from __future__ import annotations

from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class AddInvert(wiring.Component):
    """Registered stream stage: ``o = ~(i + k) mod 2**wo`` (``i`` zero-extended).

    One beat per cycle (``i.ready`` is high whenever the output register is
    empty or being emptied), latency 1 cycle; payload widths ``wi``/``wo``."""

    def __init__(self, wi: int, wo: int, k: int):
        self.wi, self.wo, self.k = wi, wo, k
        super().__init__({
            "i": In(stream.Signature(wi)),
            "o": Out(stream.Signature(wo)),
        })

    def elaborate(self, platform):
        m = Module()
        ext = Signal(self.wo)
        m.d.comb += ext.eq(self.i.payload)
        with m.If(self.o.ready | ~self.o.valid):
            m.d.comb += self.i.ready.eq(1)
            m.d.sync += self.o.valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += self.o.payload.eq(~(ext + self.k))
        return m

    def model(self, beats):
        mask = (1 << self.wo) - 1
        return [~(int(b) + self.k) & mask for b in beats]


class Sink(wiring.Component):
    """Takes input beats and never produces output (for timeout tests).

    Purely combinational, so Amaranth gives it no ``clk``/``rst`` ports."""

    def __init__(self, width: int):
        super().__init__({
            "i": In(stream.Signature(width)),
            "o": Out(stream.Signature(width)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        return m


def to_verilog(component: wiring.Component, name: str = "dut") -> str:
    return verilog.convert(component, name=name)
