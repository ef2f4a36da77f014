"""cocotb bench (run inside Verilator by test_shell_verilator.py): the REAL host driver
(bnnhw.boards.host.Board, in a cocotb bridge thread) talks to the shell's rx/tx pins."""
import os
import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge

from bnnhw.boards.host import Board
from bnnhw.boards.standin import sum_mod

DIV = int(os.environ.get("BNNHW_LINK_DIV", "4"))
N = int(os.environ.get("BNNHW_LINK_N", "12"))
CLASSES = int(os.environ.get("BNNHW_LINK_CLASSES", "10"))
CLK_HZ = 1e6


class CocotbTransport:
    """Host transport over the DUT pins; time is simulation time (1 MHz clock)."""

    def __init__(self, dut):
        self.dut = dut
        self.to_board = deque()
        self.from_board = bytearray()
        self.cycles = 0
        self.mutate = None

    async def rx_driver(self):
        self.dut.rx.value = 1
        while True:
            if not self.to_board:
                await ClockCycles(self.dut.clk, DIV)
                continue
            b = self.to_board.popleft()
            for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                self.dut.rx.value = bit
                await ClockCycles(self.dut.clk, DIV)

    async def tx_monitor(self):
        while True:
            await FallingEdge(self.dut.tx)
            await ClockCycles(self.dut.clk, DIV // 2)
            v = 0
            for i in range(8):
                await ClockCycles(self.dut.clk, DIV)
                v |= int(self.dut.tx.value) << i
            await ClockCycles(self.dut.clk, DIV)
            if int(self.dut.tx.value):
                self.from_board.append(v)

    async def _advance(self, cycles):
        await ClockCycles(self.dut.clk, cycles)

    # transport interface (called from the bridge thread)
    def write(self, data):
        if self.mutate is not None:
            data = self.mutate(bytes(data))
        self.to_board.extend(data)

    def read(self, n):
        if not self.from_board:
            resume(self._advance)(10 * DIV)
            self.cycles += 10 * DIV
        out = bytes(self.from_board[:n])
        del self.from_board[:n]
        return out

    def now(self):
        return self.cycles / CLK_HZ

    def reset_input_buffer(self):
        self.from_board.clear()


@cocotb.test()
async def link_with_faults(dut):
    cocotb.start_soon(Clock(dut.clk, 1, unit="us").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    link = CocotbTransport(dut)
    cocotb.start_soon(link.rx_driver())
    cocotb.start_soon(link.tx_monitor())
    rng = random.Random(4)
    imgs = [[rng.randrange(256) for _ in range(N)] for _ in range(40)]
    imgs[0][:2] = [0xA5, 0xDB]
    writes = []

    def mutate(data):
        k = len(writes)
        writes.append(data)
        if k % 7 == 1:                       # garbage first
            return bytes([0xA5, 0x5A, 0x01, 0x00, 0x42]) + data
        if k % 7 == 3:                       # bit flip: bad CRC
            bad = bytearray(data)
            bad[len(bad) // 2] ^= 0x08
            return bytes(bad)
        if k % 7 == 5:                       # cut frame
            return data[: len(data) // 3]
        return data

    @bridge
    def host():
        board = Board(transport=link, baud=CLK_HZ / DIV, timeout=0.004, retries=6)
        info = board.info()
        clean = board.classify(imgs[:10])
        link.mutate = mutate
        faulty = board.classify(imgs[10:])
        link.mutate = None
        return info, clean + faulty, board.info(), board.resent

    info, got, after, resent = await host()
    assert (info.frame_len, info.in_width) == (N, 8)
    assert got == [sum_mod(i, CLASSES) for i in imgs]
    assert after.crc_errors >= 3 and resent >= 6
    dut._log.info(f"40 images right; {resent} resent; board: ok={after.frames_ok} "
                  f"crc={after.crc_errors} dropped={after.dropped} timeouts={after.timeouts}")
