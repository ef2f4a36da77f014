"""Run a stream core in Amaranth's simulator: stalls, a stream-rule monitor, timing.

:func:`run_stream` drives ``core.i`` with a list of beats and collects
``core.o``, cycle by cycle, in one testbench:

* the source asserts ``valid`` with a new beat when it has one (after a
  random idle gap with probability ``in_stall`` per cycle) and holds beat and
  ``valid`` until the core takes it;
* the sink raises ``ready`` with probability ``1 - out_stall`` per cycle;
  with ``hold_ready=True`` it first keeps ``ready`` low until ``o.valid`` has
  been high for a few cycles (checks that the core does not wait for
  ``ready``), bounded by ``hold_limit`` cycles;
* instead of those Bernoulli stalls, ``in_pattern`` / ``out_pattern`` (a
  function of the cycle number returning True when the source may present a
  new beat / the sink is ready) give deterministic bursty or adversarial
  patterns;
* a monitor records every violation of "payload and valid stay unchanged
  while ``valid & ~ready``";
* after the expected ``n_out`` beats (and every input beat) the sink keeps
  ``ready`` high for ``drain_cycles`` more cycles: any further beat is
  appended to ``outputs`` (so a comparison with the expected beats fails)
  and reported in ``extra`` and ``violations``.

Cycle 0 of the returned cycle lists is the first input transfer.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from amaranth.sim import Simulator

__all__ = ["StreamRun", "run_stream"]


@dataclass
class StreamRun:
    outputs: list[int] = field(default_factory=list)
    in_cycles: list[int] = field(default_factory=list)
    out_cycles: list[int] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    valid_without_ready: bool | None = None
    cycles: int = 0
    timed_out: bool = False
    extra: int = 0                  # output beats beyond the expected ``n_out``


def run_stream(core, beats, n_out: int, *, in_stall: float = 0.0, out_stall: float = 0.0,
               seed: int = 0, hold_ready: bool = False, hold_limit: int = 1000,
               max_cycles: int | None = None, vcd: str | None = None,
               drain_cycles: int = 64, in_pattern=None, out_pattern=None) -> StreamRun:
    beats = list(beats)
    res = StreamRun()
    rng = random.Random(seed)
    if max_cycles is None:
        max_cycles = 20 * (len(beats) + n_out) + 4 * hold_limit + 2000
    i, o = core.i, core.o

    async def tb(ctx):
        idx = 0
        cycle = 0
        presenting = False
        prev = None                     # (payload) if last edge saw valid & ~ready
        holding = hold_ready
        seen_valid = 0
        t0 = None
        while len(res.outputs) < n_out or idx < len(beats):
            if cycle >= max_cycles:
                res.timed_out = True
                break
            if not presenting and idx < len(beats):
                if (in_pattern(cycle) if in_pattern is not None
                        else in_stall <= 0 or rng.random() >= in_stall):
                    presenting = True
                    ctx.set(i.payload, beats[idx])
            ctx.set(i.valid, 1 if presenting else 0)
            if holding:
                ready = 0
            elif out_pattern is not None:
                ready = 1 if out_pattern(cycle) else 0
            else:
                ready = 1 if (out_stall <= 0 or rng.random() >= out_stall) else 0
            ctx.set(o.ready, ready)
            _, _, iv, ir, ov, op = await ctx.tick().sample(i.valid, i.ready, o.valid, o.payload)
            if iv and ir:
                if t0 is None:
                    t0 = cycle
                res.in_cycles.append(cycle)
                idx += 1
                presenting = False
            if prev is not None:
                if not ov:
                    res.violations.append(f"cycle {cycle}: o.valid dropped while o.ready was low")
                elif op != prev:
                    res.violations.append(f"cycle {cycle}: o.payload changed from {prev:#x} to "
                                          f"{op:#x} while o.ready was low")
            prev = op if (ov and not ready) else None
            if ov and ready:
                res.outputs.append(op)
                res.out_cycles.append(cycle)
            if holding:
                seen_valid = seen_valid + 1 if ov else 0
                if seen_valid >= 3:
                    holding = False
                    res.valid_without_ready = True
                elif cycle >= hold_limit:
                    holding = False
                    res.valid_without_ready = False
            cycle += 1
        res.cycles = cycle              # up to the last expected transfer (drain excluded)
        if not res.timed_out:
            # drain: the sink stays ready; a core must not emit beats nobody asked for
            ctx.set(i.valid, 0)
            ctx.set(o.ready, 1)
            for _ in range(drain_cycles):
                _, _, ov, op = await ctx.tick().sample(o.valid, o.payload)
                if ov:
                    res.outputs.append(op)
                    res.out_cycles.append(cycle)
                    res.extra += 1
                    res.violations.append(f"cycle {cycle}: output beat {op:#x} beyond the "
                                          f"{n_out} expected")
                cycle += 1
        if t0 is not None:
            res.in_cycles = [c - t0 for c in res.in_cycles]
            res.out_cycles = [c - t0 for c in res.out_cycles]

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return res
