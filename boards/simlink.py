"""A host-driver transport that runs the :class:`~bnnhw.boards.shell.Shell` in
Amaranth's simulator: bytes written go bit by bit onto the shell's ``rx`` pin,
bits on its ``tx`` pin come back as bytes. Time is simulation time, so the
host driver's timeouts and retries run exactly as on a real link.

::

    link = SimTransport(shell, clock_hz=1e6)
    board = Board(transport=link, baud=link.baud, timeout=0.004)
    assert board.classify(images) == expected

Fault injection: ``link.mutate = f`` rewrites every ``write`` (garbage, cuts),
``link.mutate_from_board = g`` every chunk the host reads;
:meth:`SimTransport.idle` lets the line rest (to trigger the shell's timeout).

Host and board clocks: by default the host's bit period is exactly the shell's
``divisor`` clock cycles and its edges fall on clock edges.  ``baud_ratio``
(host baud / board baud, e.g. 1.02 for a host 2 % fast), ``phase`` (the host's
first edge that fraction of a bit after a clock edge) and ``jitter`` (every host
edge moved by up to that fraction of a bit, uniformly, seeded by ``seed``) give
the host its own clock: its transmit edges and its receive sampling points then
run in simulated time, independent of the board's clock.
"""
from __future__ import annotations

import random
from collections import deque

from amaranth import Signal
from amaranth.sim import Simulator

__all__ = ["SimTransport"]


class SimTransport:
    def __init__(self, shell, *, clock_hz: float | None = None, vcd: str | None = None,
                 baud_ratio: float = 1.0, phase: float = 0.0, jitter: float = 0.0,
                 seed: int = 0):
        self.shell = shell
        self.clock_hz = float(clock_hz or shell.clock_hz)
        self.divisor = shell.divisor
        self.baud = self.clock_hz / self.divisor
        self.own_clock = (baud_ratio, phase, jitter) != (1.0, 0.0, 0.0)
        self.host_bit = 1 / (self.baud * baud_ratio)    # the host's bit period, seconds
        self.phase, self.jitter = float(phase), float(jitter)
        self._rng = random.Random(seed)
        self.to_board: deque[int] = deque()
        self.from_board = bytearray()
        self.mutate = None
        self.mutate_from_board = None
        self.bytes_written = 0
        self._t = 0.0
        self._stopping = False
        self._stop = Signal()
        self.sim = Simulator(shell)
        self.sim.add_clock(1 / self.clock_hz)
        self.sim.add_testbench(self._rx_driver, background=True)
        self.sim.add_testbench(self._tx_monitor, background=True)
        self._vcd = None
        if vcd:
            self._vcd = self.sim.write_vcd(vcd)
            self._vcd.__enter__()

    async def _rx_driver(self, ctx):
        if self.own_clock:
            return await self._rx_driver_own_clock(ctx)
        d = self.divisor
        rx = self.shell.rx
        ctx.set(rx, 1)
        while not self._stopping:
            if not self.to_board:
                await ctx.tick().repeat(d)
                continue
            b = self.to_board.popleft()
            for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                ctx.set(rx, bit)
                await ctx.tick().repeat(d)
        ctx.set(self._stop, 1)

    async def _rx_driver_own_clock(self, ctx):
        """Host -> board on the host's own clock: edge ``k`` at ``phase + k`` host bit
        periods, moved by up to ``jitter`` periods (so edges never cross for jitter < 0.5)."""
        T = self.host_bit
        rx = self.shell.rx
        ctx.set(rx, 1)
        await ctx.delay(self.phase * T)
        cur = 0.0                               # this edge's displacement from nominal
        while not self._stopping:
            bits = [1]
            if self.to_board:
                b = self.to_board.popleft()
                bits = [0] + [(b >> i) & 1 for i in range(8)] + [1]
            for bit in bits:
                ctx.set(rx, bit)
                nxt = self._rng.uniform(-self.jitter, self.jitter) * T
                await ctx.delay(T + nxt - cur)
                cur = nxt
        ctx.set(self._stop, 1)

    async def _tx_monitor(self, ctx):
        """Board -> host: sample half a bit after the start edge, then one bit apart, on
        the board's clock (``divisor`` ticks a bit) or, with ``own_clock``, on the host's
        (``host_bit`` seconds a bit)."""
        if self.own_clock:
            T = self.host_bit

            async def wait(bits):
                await ctx.delay(T * bits)
        else:
            d = self.divisor

            async def wait(bits):
                await ctx.tick().repeat(int(d * bits))
        tx = self.shell.tx
        while not ctx.get(self._stop):
            await ctx.changed(tx, self._stop)
            if ctx.get(self._stop):
                return
            if ctx.get(tx):
                continue
            await wait(0.5)                            # middle of the start bit
            v = 0
            for i in range(8):
                await wait(1)
                v |= ctx.get(tx) << i
            await wait(1)
            if ctx.get(tx):                            # stop bit
                self.from_board.append(v)

    # -- transport interface --
    def write(self, data: bytes):
        if self.mutate is not None:
            data = self.mutate(bytes(data))
        self.bytes_written += len(data)
        self.to_board.extend(data)

    def read(self, n: int) -> bytes:
        if not self.from_board:
            self.run_cycles(10 * self.divisor)
        out = bytes(self.from_board[:n])
        del self.from_board[:n]
        if out and self.mutate_from_board is not None:
            out = self.mutate_from_board(out)
        return out

    def now(self) -> float:
        return self._t

    def reset_input_buffer(self):
        self.from_board.clear()

    # -- test helpers --
    def run_cycles(self, cycles: int):
        self._t += cycles / self.clock_hz
        self.sim.run_until(self._t)

    def idle(self, seconds: float):
        """Let the simulation run (whatever is queued is still sent)."""
        self._t += seconds
        self.sim.run_until(self._t)

    def drain(self):
        """Run until every queued byte is on the wire."""
        while self.to_board:
            self.run_cycles(10 * self.divisor)

    def close(self):
        """Stop the driver processes and close the waveform file."""
        if not self._stopping:
            self._stopping = True
            self.run_cycles(12 * self.divisor)
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None
