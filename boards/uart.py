"""8N1 UART receiver and transmitter with an integer clocks-per-bit divisor.

* :class:`UARTRx`: ``rx`` pin in (synchronised by two flip-flops, idle high),
  ``o``: a byte each time a frame with a valid stop bit arrives (``o.valid``
  for one cycle; there is no back-pressure -- the next byte cannot come sooner
  than 10 bit times later). ``error`` pulses for a frame whose stop bit is 0
  (framing error); that byte is discarded and the receiver waits for the line
  to go idle (high) before looking for the next start bit.
  The start bit is confirmed at half a bit time, then every bit is sampled in
  the middle of its bit time.
* :class:`UARTTx`: ``i`` stream of bytes (``i.ready`` while idle); ``tx`` pin
  out, idle high; a byte takes exactly ``10 * divisor`` cycles.

``divisor`` = clock cycles per bit (>= 4). :func:`baud_divisor` picks it for a
clock and baud rate and refuses rates the divisor cannot hit within 1.5 %.
"""
from __future__ import annotations

from amaranth import C, Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from bnnhw.errors import BnnhwError

__all__ = ["UARTRx", "UARTTx", "baud_divisor", "STANDARD_BAUDS", "BAUD_TOLERANCE"]

STANDARD_BAUDS = (115200, 230400, 460800, 500000, 921600, 1_000_000, 1_500_000, 2_000_000,
                  3_000_000)
BAUD_TOLERANCE = 0.015  # relative; 8N1 tolerates about 2-4 % between the two ends


def baud_divisor(clk_hz: float, baud: int, *, tolerance: float = BAUD_TOLERANCE,
                 max_baud: int | None = None) -> tuple[int, float]:
    """(clock cycles per bit, actual baud) for ``baud`` at ``clk_hz``; raises
    :class:`BnnhwError` when the integer divisor misses by more than ``tolerance``
    or the divisor would be below 4, naming the rates that would work."""
    def ok_rates():
        good = []
        for b in STANDARD_BAUDS:
            if max_baud is not None and b > max_baud:
                continue
            d = round(clk_hz / b)
            if d >= 4 and abs(clk_hz / d - b) / b <= tolerance:
                good.append(b)
        return ", ".join(str(b) for b in good) or "none of the standard rates"
    if baud <= 0:
        raise BnnhwError(f"baud rate must be positive, not {baud}")
    if max_baud is not None and baud > max_baud:
        raise BnnhwError(f"{baud} baud is above what the board's USB-serial bridge supports "
                         f"({max_baud})", f"rates that work at this clock: {ok_rates()}")
    div = round(clk_hz / baud)
    if div < 4:
        raise BnnhwError(f"{baud} baud needs at least 4 clock cycles per bit; the "
                         f"{clk_hz / 1e6:g} MHz clock gives {clk_hz / baud:.2f}",
                         f"rates that work at this clock: {ok_rates()}")
    actual = clk_hz / div
    err = abs(actual - baud) / baud
    if err > tolerance:
        raise BnnhwError(f"{baud} baud cannot be made from a {clk_hz / 1e6:g} MHz clock: "
                         f"divisor {div} gives {actual:.0f} baud ({100 * err:.1f}% off)",
                         f"rates that work at this clock: {ok_rates()}; or pick a clock "
                         "(--clock-mhz) that is a multiple of the baud rate")
    return div, actual


class UARTRx(wiring.Component):
    """8N1 receiver. Ports: ``rx`` (pin), ``o`` (byte strobe, no back-pressure),
    ``error`` (framing-error strobe)."""

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"UART divisor must be >= 4, not {divisor}")
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(unsigned(8), always_ready=True)),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(d))
        bits = Signal(range(9))
        shreg = Signal(8)
        m.d.sync += [self.o.valid.eq(0), self.error.eq(0)]
        m.d.comb += self.o.payload.eq(shreg)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(~rx):
                        m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                        m.next = "DATA"
                    with m.Else():
                        m.next = "IDLE"  # glitch, not a start bit
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += timer.eq(d - 1)
                    with m.If(bits == 8):
                        with m.If(rx):
                            m.d.sync += self.o.valid.eq(1)
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += self.error.eq(1)
                            m.next = "BREAK"
                    with m.Else():
                        m.d.sync += [shreg.eq(Cat(shreg[1:], rx)),
                                     bits.eq(bits + 1)]
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter. Ports: ``i`` (byte stream), ``tx`` (pin, idle high)."""

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"UART divisor must be >= 4, not {divisor}")
        self.divisor = divisor
        super().__init__({
            "i": In(stream.Signature(unsigned(8))),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        timer = Signal(range(d))
        shreg = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        m.d.comb += self.tx.eq(shreg[0])
        with m.If(bits == 0):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq(Cat(C(0, 1), self.i.payload, C(1, 1))),
                             bits.eq(10), timer.eq(d - 1)]
        with m.Else():
            with m.If(timer == 0):
                m.d.sync += [shreg.eq(Cat(shreg[1:], C(1, 1))), bits.eq(bits - 1),
                             timer.eq(d - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
