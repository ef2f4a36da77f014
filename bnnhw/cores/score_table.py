"""ScoreTable: per-class score lookup ``table[c, acc - acc_min]`` (the IR's "rank_table").

With per-class output scales the IR carries, for every class ``c`` and every
reachable accumulator value ``acc``, the integer score the hardware must
compare (an exact rank).  This core sits between a score MVAU (emitting
``acc``, ``score="popcount"`` for binary layers) and LabelSelect.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Signal, Module, Cat, Mux, signed
from amaranth.lib.memory import Memory
from amaranth.utils import bits_for

from ._common import StreamCore, Schedule, check_positive_int, divisors
from .registry import register, Conformance

__all__ = ["ScoreTable", "score_lookup"]


def score_lookup(acc, table, acc_min: int) -> np.ndarray:
    """Reference: ``table[c, acc[..., c] - acc_min]`` per class ``c`` (last axis)."""
    acc = np.asarray(acc).astype(np.int64)
    table = np.asarray(table)
    return table[np.arange(table.shape[0]), acc - acc_min]


def _signed_width(lo: int, hi: int) -> int:
    return max(bits_for(int(lo), require_sign_bit=True), bits_for(int(hi), require_sign_bit=True))


def _fields(word: int, n: int, width: int) -> list[int]:
    out = []
    for p in range(n):
        v = (word >> (p * width)) & ((1 << width) - 1)
        out.append(v - (1 << width) if v >> (width - 1) else v)
    return out


def _pack(values, width: int) -> int:
    word = 0
    for p, v in enumerate(values):
        word |= (int(v) & ((1 << width) - 1)) << (p * width)
    return word


class _ScoreTableConformance(Conformance):
    def configs(self):
        return [(f"mh{mh}_pe{pe}_acc{lo}..{hi}", dict(mh=mh, pe=pe, acc_min=lo, acc_max=hi))
                for (mh, pe, lo, hi) in [(10, 1, 0, 27), (10, 10, 0, 16), (6, 3, -20, 20),
                                         (4, 2, 5, 9)]]

    def build(self, params, rng):
        p = dict(params)
        lo, hi = p["acc_min"], p["acc_max"]
        table = p.pop("table", None)
        if table is None:
            table = rng.integers(-300, 300, (p["mh"], hi - lo + 1))
        return ScoreTable(name=p.pop("name", "out_scores"), table=table, **p)

    def frames(self, core, rng, n, edge=False):
        lo, hi = core.acc_min, core.acc_max
        if edge:
            return [np.full(core.mh, lo), np.full(core.mh, hi),
                    lo + np.arange(core.mh) % (hi - lo + 1)][:max(n, 1)]
        return [rng.integers(lo, hi + 1, core.mh) for _ in range(n)]

    def encode(self, core, frame):
        return [_pack(frame[nf * core.pe:(nf + 1) * core.pe], core.in_field)
                for nf in range(core.nf)]

    def expected(self, core, frame):
        sc = score_lookup(frame, core.table, core.acc_min)
        return [_pack(sc[nf * core.pe:(nf + 1) * core.pe], core.score_width)
                for nf in range(core.nf)]

    def formulas(self, core):
        return {"throughput": core.nf, "latency": 1}

    def bad_params(self):
        return [(dict(mh=10, pe=4, acc_min=0, acc_max=8, name="fc_out"),
                 "fc_out: PE=4 does not divide MH=10"),
                (dict(mh=4, pe=2, acc_min=0, acc_max=8, table=np.zeros((4, 5)), name="fc_out"),
                 "fc_out: score table has shape (4, 5), expected (MH, acc_max - acc_min + 1)"),
                (dict(mh=4, pe=2, acc_min=3, acc_max=2, name="fc_out"), "fc_out: acc_max")]

    def synth_params(self):
        return dict(mh=10, pe=2, acc_min=0, acc_max=64)


@register("score_table", conformance=_ScoreTableConformance)
class ScoreTable(StreamCore):
    """Score lookup per class, folded by PE.

    Parameters (keyword-only): ``name``, ``mh`` (classes), ``pe`` (classes
    per beat, divides ``mh``), ``acc_min``, ``acc_max`` (accumulator range),
    ``table`` (``(MH, acc_max - acc_min + 1)`` ints), ``in_width`` (bits of
    each input field; default: the signed width of ``[acc_min, acc_max]``,
    or pass an MVAU's ``score_width``).

    Ports
    -----
    i : stream of ``pe*in_width`` bits
        ``MH/PE`` beats per vector; field ``p`` of beat ``nf`` (two's
        complement) is the accumulator of class ``nf*PE + p`` (an MVAU's
        score output with the same PE).
    o : stream of ``pe*score_width`` bits
        Same framing; field ``p`` = ``table[c, acc - acc_min]``, signed,
        ``score_width`` = the signed width of the table's range.

    Per PE one ``Memory`` of ``NF*(acc_max - acc_min + 1)`` entries.  Inputs
    outside ``[acc_min, acc_max]`` are not allowed (an MVAU cannot produce
    them).  Timing: one beat per cycle, ``throughput = MH/PE``, ``latency = 1``.
    """

    def __init__(self, *, mh, pe=1, acc_min, acc_max, table, in_width=None, name="score_table"):
        self.name = str(name)
        self.mh = check_positive_int(mh, "MH", self.name)
        self.pe = check_positive_int(pe, "PE", self.name)
        if mh % pe:
            raise ValueError(f"layer {self.name}: PE={pe} does not divide MH={mh}; "
                             f"legal values: {divisors(mh)}")
        if int(acc_max) < int(acc_min):
            raise ValueError(f"layer {self.name}: acc_max={acc_max} is below acc_min={acc_min}")
        self.acc_min, self.acc_max = int(acc_min), int(acc_max)
        t = np.asarray(table)
        span = self.acc_max - self.acc_min + 1
        if t.shape != (mh, span):
            raise ValueError(f"layer {self.name}: score table has shape {t.shape}, expected "
                             f"(MH, acc_max - acc_min + 1) = ({mh}, {span})")
        self.table = t.astype(np.int64)
        self.nf = mh // pe
        need = _signed_width(self.acc_min, self.acc_max)
        if in_width is None:
            in_width = need
        elif in_width < need:
            raise ValueError(f"layer {self.name}: in_width={in_width} cannot hold "
                             f"[{self.acc_min}, {self.acc_max}]; use >= {need}")
        self.in_field = in_width
        self.score_width = _signed_width(self.table.min(), self.table.max())
        super().__init__(pe * in_width, pe * self.score_width)
        self.in_beats = self.out_beats = self.nf

    def schedule(self, frames: int = 3) -> Schedule:
        n = self.nf
        return Schedule([[f * n + j for j in range(n)] for f in range(frames)],
                        [[f * n + j + 1 for j in range(n)] for f in range(frames)])

    @property
    def throughput(self) -> int:
        return self.nf

    def cost(self, family):
        """:func:`bnnhw.hwmodel.score_table_cost` of its lookup ROMs."""
        from .. import hwmodel as M
        return M.score_table_cost(mh=self.mh, pe=self.pe, span=self.acc_max - self.acc_min + 1,
                                  score_width=self.score_width, family=family)

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform):
        m = Module()
        PE, NF, IW = self.pe, self.nf, self.in_field
        span = self.acc_max - self.acc_min + 1
        i, o = self.i, self.o
        adv = Signal()
        fire = Signal()
        m.d.comb += [adv.eq(~o.valid | o.ready), i.ready.eq(adv), fire.eq(i.valid & adv)]
        nf = Signal(range(NF))
        with m.If(fire):
            m.d.sync += nf.eq(Mux(nf == NF - 1, 0, nf + 1))
        outs = []
        for p in range(PE):
            init = [int(self.table[f * PE + p, a]) for f in range(NF) for a in range(span)]
            mem = Memory(shape=signed(self.score_width), depth=NF * span, init=init)
            m.submodules[f"table_pe{p}"] = mem
            port = mem.read_port()
            acc = i.payload[p * IW:(p + 1) * IW].as_signed()
            m.d.comb += [port.addr.eq(nf * span + (acc - self.acc_min)), port.en.eq(adv)]
            outs.append(port.data)
        with m.If(adv):
            m.d.sync += o.valid.eq(fire)
        m.d.comb += o.payload.eq(Cat(*outs))
        return m
