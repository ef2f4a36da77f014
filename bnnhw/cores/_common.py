"""Shared pieces of the layer cores: the base class, schedules, adder trees.

Every core is a :class:`StreamCore`: an ``amaranth.lib.wiring.Component``
with two ``amaranth.lib.stream`` ports, ``i`` (in) and ``o`` (out), whose
payloads are plain unsigned words (the field layout of each is documented on
the core and fixed by :mod:`bnnhw.layout`).

Stream rules every core guarantees (checked by ``tests/cores``):

* a producer never waits for ``ready`` before asserting ``valid``;
* while ``valid & ~ready`` the payload and ``valid`` stay unchanged.

Timing vocabulary (what ``throughput``, ``latency`` and ``schedule`` mean):

* cycle 0 is the clock cycle in which the first input beat of the first
  frame is transferred (``i.valid & i.ready`` sampled at the edge);
* ``schedule(frames)`` gives, for a run where the input is always valid and
  the output always ready, the cycle of every input and output transfer,
  grouped per frame (exact: the conformance suite compares it with the
  simulated design cycle by cycle);
* ``latency`` is the cycle on which the first output transfer of frame 0
  happens in that run (= cycles from the first input transfer to the first
  output beat being valid);
* ``throughput`` is the steady-state number of cycles per frame in that run
  (the spacing of frame starts once the pipeline is full).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from amaranth.hdl import Signal, Module, Value, Cat, Const, unsigned
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from ..layout import divisors

__all__ = ["StreamCore", "Schedule", "popcount_tree", "delay", "divisors",
           "check_positive_int"]


def check_positive_int(value, what: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"layer {name}: {what} must be a positive integer, not {value!r}")
    return value


@dataclass
class Schedule:
    """Transfer cycles of a stall-free run, per frame.

    ``reads[f]`` lists the cycles on which input beats of frame ``f`` are
    accepted, ``writes[f]`` the cycles on which its output beats leave."""
    reads: list[list[int]] = field(default_factory=list)
    writes: list[list[int]] = field(default_factory=list)

    @property
    def latency(self) -> int:
        return self.writes[0][0] - self.reads[0][0]

    def period(self) -> int:
        """Spacing of the last two frames' first output beats (steady state)."""
        if len(self.writes) < 2:
            raise ValueError("need at least two frames for a period")
        return self.writes[-1][0] - self.writes[-2][0]


class StreamCore(wiring.Component):
    """Base of every layer core: stream ports ``i`` and ``o`` plus timing metadata.

    Subclasses set ``self.name``, call ``super().__init__(i_width, o_width)``
    and implement ``schedule``; ``throughput`` and ``latency`` default to the
    values that schedule implies."""

    #: registry name (set by :func:`bnnhw.cores.registry.register`).
    kind: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            @functools.wraps(init)
            def checked_init(self, *args, **kw):
                try:
                    init(self, *args, **kw)
                except Exception:
                    # a rejected core was never meant to be used: no UnusedElaboratable warning
                    self._MustUse__silence = True
                    raise
            cls.__init__ = checked_init

    def __init__(self, i_width: int, o_width: int):
        self._i_width = i_width
        self._o_width = o_width
        super().__init__({
            "i": In(stream.Signature(unsigned(i_width))),
            "o": Out(stream.Signature(unsigned(o_width))),
        })

    @property
    def i_width(self) -> int:
        """Bits of the input payload."""
        return self._i_width

    @property
    def o_width(self) -> int:
        """Bits of the output payload."""
        return self._o_width

    # per-frame beat counts, set by subclasses
    in_beats: int = 1
    out_beats: int = 1

    def schedule(self, frames: int = 3) -> Schedule:  # pragma: no cover - abstract
        raise NotImplementedError

    def cost(self, family):
        """Estimated LUT4 and block RAMs of this core in ``family`` (a
        :class:`bnnhw.boards.family.Family`), a :class:`bnnhw.hwmodel.Cost` from
        the core's parameters.  Every core used in a design must define it: the
        estimates and the board fit refuse a core without one."""
        raise NotImplementedError(f"core {getattr(self, 'name', '?')} "
                                  f"({type(self).__name__}) has no cost model")

    @property
    def throughput(self) -> int:
        """Steady-state cycles per frame (input always valid, output always ready)."""
        return self.schedule(4).period()

    @property
    def latency(self) -> int:
        """Cycles from the first input transfer to the first output beat (valid, and
        taken when the output is ready)."""
        return self.schedule(1).latency

    def __repr__(self):
        return f"<{type(self).__name__} {getattr(self, 'name', '?')}>"


def delay(m: Module, sig: Value, n: int, en: Value, name: str, *,
          reset_less: bool = True) -> Value:
    """``sig`` delayed by ``n`` enabled clock cycles (registers advance when ``en``).

    Data registers need no reset (``reset_less``, the default: fewer control
    sets, less routing); pass ``reset_less=False`` for valid bits."""
    cur = sig
    for k in range(n):
        r = Signal(Value.cast(cur).shape(), name=f"{name}_d{k + 1}", reset_less=reset_less)
        with m.If(en):
            m.d.sync += r.eq(cur)
        cur = r
    return cur


def balanced_sum(values):
    """Combinational balanced adder tree over ``values`` (pairwise, in order; widths grow
    as Amaranth's arithmetic does).  ``values`` must not be empty."""
    values = list(values)
    while len(values) > 1:
        nxt = [values[j] + values[j + 1] for j in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


def popcount_tree(m: Module, bits: Value, en: Value, levels_per_stage: int,
                  name: str) -> tuple[Value, int]:
    """Pipelined, balanced adder tree counting the ones of ``bits``.

    Every node has the minimal width for its count of leaves (``n`` leaves ->
    ``bits_for(n)`` bits).  A register (advancing when ``en``) follows every
    ``levels_per_stage`` adder levels, including after the last level, so the
    result is registered unless the tree has no adder (one bit).

    Returns ``(count, stages)``: the count and the number of register stages."""
    width = len(bits)
    # (value, number of leaves under it)
    nodes = [(bits[j], 1) for j in range(width)]
    level = 0
    stages = 0
    while len(nodes) > 1:
        nxt = []
        for j in range(0, len(nodes) - 1, 2):
            (a, na), (b, nb) = nodes[j], nodes[j + 1]
            n = na + nb
            s = Signal(bits_for(n), name=f"{name}_l{level}_{j // 2}")
            m.d.comb += s.eq(a + b)
            nxt.append((s, n))
        if len(nodes) % 2:
            nxt.append(nodes[-1])
        nodes = nxt
        level += 1
        if level % levels_per_stage == 0 or len(nodes) == 1:
            regs = []
            for j, (v, n) in enumerate(nodes):
                r = Signal(bits_for(n), name=f"{name}_r{stages}_{j}", reset_less=True)
                with m.If(en):
                    m.d.sync += r.eq(v)
                regs.append((r, n))
            nodes = regs
            stages += 1
    return nodes[0][0], stages


def tree_stages(n_leaves: int, levels_per_stage: int) -> int:
    """Register stages :func:`popcount_tree` inserts for ``n_leaves`` bits."""
    levels = 0
    n = n_leaves
    while n > 1:
        n = (n + 1) // 2
        levels += 1
    return -(-levels // levels_per_stage) if levels else 0


def skid_output(m: Module, o, data: Value, push: Value) -> Value:
    """Two-entry output buffer driving stream ``o``; returns the pipeline enable.

    The returned enable is a register (``buffer not full``), so the
    downstream ``ready`` does not fan out combinationally to every pipeline
    register.  Protocol: a pipeline advancing with the enable pushes at most
    one item (``push``, with ``data``) per enabled cycle; an item pushed on
    cycle t is valid on ``o`` from cycle t+1 (same timing as a plain output
    register), and the buffer holds it until taken."""
    width = len(o.payload)
    r0 = Signal(width, name="obuf0", reset_less=True)
    r1 = Signal(width, name="obuf1", reset_less=True)
    nonempty = Signal(name="obuf_valid")
    full = Signal(name="obuf_full")
    pop = Signal()
    m.d.comb += [o.valid.eq(nonempty), o.payload.eq(r0), pop.eq(nonempty & o.ready)]
    with m.If(push & ~pop):
        with m.If(~nonempty):
            m.d.sync += [r0.eq(data), nonempty.eq(1)]
        with m.Else():
            m.d.sync += [r1.eq(data), full.eq(1)]
    with m.Elif(pop & ~push):
        with m.If(full):
            m.d.sync += [r0.eq(r1), full.eq(0)]
        with m.Else():
            m.d.sync += nonempty.eq(0)
    with m.Elif(push & pop):
        with m.If(full):
            m.d.sync += [r0.eq(r1), r1.eq(data)]
        with m.Else():
            m.d.sync += r0.eq(data)
    return ~full
