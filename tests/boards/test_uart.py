# amaranth: UnusedElaboratable=no
"""UART RX/TX in simulation (loopback, framing errors) and baud divisor choice."""
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from bnnhw.boards.uart import UARTRx, UARTTx, baud_divisor
from bnnhw.errors import BnnhwError


@pytest.mark.parametrize("div", [4, 5, 7])
def test_loopback(div):
    m = Module()
    m.submodules.tx = tx = UARTTx(div)
    m.submodules.rx = rx = UARTRx(div)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80, 0x3C]
    got = []

    async def sender(ctx):
        for b in data:
            ctx.set(tx.i.payload, b)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def receiver(ctx):
        for _ in range(len(data) * 10 * div + 40):
            await ctx.tick()
            if ctx.get(rx.o.valid):
                got.append(ctx.get(rx.o.payload))
            assert not ctx.get(rx.error)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(sender, background=True)
    sim.add_testbench(receiver)
    sim.run()
    assert got == data


def test_tx_timing_is_ten_bits_per_byte():
    dut = UARTTx(4)
    edges = []

    async def bench(ctx):
        ctx.set(dut.i.payload, 0x55)
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(48):
            edges.append(ctx.get(dut.tx))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    bits = edges[0:40:4]
    assert bits == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]   # start, 0x55 LSB first, stop
    assert all(edges[40:])


def test_rx_framing_error_and_glitch():
    dut = UARTRx(4)
    out = {"bytes": [], "errors": 0}

    async def drive(ctx, bits):
        for b in bits:
            ctx.set(dut.rx, b)
            for _ in range(4):
                await ctx.tick()
                if ctx.get(dut.o.valid):
                    out["bytes"].append(ctx.get(dut.o.payload))
                out["errors"] += ctx.get(dut.error)

    async def bench(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(8)
        await drive(ctx, [0] + [1] * 8 + [0] + [0] * 3)   # stop bit 0: framing error, break
        await drive(ctx, [1] * 3)
        ctx.set(dut.rx, 0)                                # a 1-cycle glitch: no start bit
        await ctx.tick()
        await drive(ctx, [1] * 4)
        await drive(ctx, [0] + [0, 1, 1, 0, 0, 1, 0, 1] + [1, 1])   # 0xA6
        await ctx.tick().repeat(8)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert out["errors"] == 1
    assert out["bytes"] == [0xA6]


def test_baud_divisor():
    assert baud_divisor(12e6, 3_000_000) == (4, 3e6)
    assert baud_divisor(25e6, 1_000_000) == (25, 1e6)
    d, actual = baud_divisor(100e6, 3_000_000)
    assert d == 33 and abs(actual - 3e6) / 3e6 < 0.015
    with pytest.raises(BnnhwError, match="cannot be made") as e:
        baud_divisor(25e6, 3_000_000)
    assert "1000000" in e.value.hint
    with pytest.raises(BnnhwError, match="at least 4"):
        baud_divisor(12e6, 12_000_000)
    with pytest.raises(BnnhwError, match="bridge"):
        baud_divisor(48e6, 6_000_000, max_baud=3_000_000)
