"""Max-pool on bits (kernel = stride = k), per-channel OR or AND."""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Signal, Module, Mux, Array, Const, unsigned
from amaranth.lib.memory import Memory

from .. import layout, golden_ops
from ._common import StreamCore, Schedule, check_positive_int, divisors
from .registry import register, Conformance

__all__ = ["MaxPool", "encode_fmap"]


def encode_fmap(fmap, simd: int, elem_bits: int = 1) -> list[int]:
    """Beats of a channels-last map ``(H, W, C)`` (or a pixel list ``(N, C)``):
    raster order, each pixel as ``C/simd`` words of ``simd`` elements, element
    ``j`` at bits ``[j*elem_bits, (j+1)*elem_bits)`` (two's complement)."""
    a = np.asarray(fmap).astype(np.int64)
    c = a.shape[-1]
    mask = (1 << elem_bits) - 1
    beats = []
    for px in a.reshape(-1, c):
        for cf in range(c // simd):
            word = 0
            for j, v in enumerate(px[cf * simd:(cf + 1) * simd].tolist()):
                word |= (int(v) & mask) << (j * elem_bits)
            beats.append(word)
    return beats


def _pool_ops(pool_op, channels, name):
    ops = [pool_op] * channels if isinstance(pool_op, str) else list(pool_op)
    if len(ops) != channels:
        raise ValueError(f"layer {name}: pool_op has {len(ops)} entries, expected one per "
                         f"channel (C={channels}) or a single 'or'/'and'")
    bad = sorted({str(o) for o in ops} - {"or", "and"})
    if bad:
        raise ValueError(f"layer {name}: pool_op must be 'or' or 'and' per channel, got {bad}")
    return ops


class _MaxPoolConformance(Conformance):
    def configs(self):
        out = []
        for (h, w, c, k, simd, op) in [
            (4, 4, 2, 2, 1, "or"),            # SIMD = 1
            (4, 4, 4, 2, 4, "mixed"),         # all channels per beat, per-channel ops
            (6, 6, 6, 3, 3, "mixed"),         # non-powers of two
            (5, 7, 3, 2, 3, "and"),           # odd sizes: last row/column dropped
            (3, 3, 2, 1, 2, "mixed"),         # k = 1 (identity)
        ]:
            out.append((f"h{h}_w{w}_c{c}_k{k}_simd{simd}_{op}",
                        dict(height=h, width=w, channels=c, k=k, simd=simd, pool_op=op)))
        return out

    def build(self, params, rng):
        p = dict(params)
        if p.get("pool_op") == "mixed":
            p["pool_op"] = ["and" if b else "or" for b in rng.integers(0, 2, p["channels"])]
        return MaxPool(name=p.pop("name", "pool_test"), **p)

    def frames(self, core, rng, n, edge=False):
        shape = (core.height, core.width, core.channels)
        if edge:
            yy, xx, cc = np.indices(shape)
            return [np.zeros(shape, np.uint8), np.ones(shape, np.uint8),
                    ((yy + xx + cc) % 2).astype(np.uint8),
                    ((yy * 3 + xx) % 5 == 0).astype(np.uint8)][:max(n, 1)]
        return [rng.integers(0, 2, shape).astype(np.uint8) for _ in range(n)]

    def encode(self, core, frame):
        return encode_fmap(frame, core.simd)

    def expected(self, core, frame):
        return encode_fmap(golden_ops.maxpool(frame, core.k, core.pool_op), core.simd)

    def formulas(self, core):
        cf = core.channels // core.simd
        return {"throughput": core.height * core.width * cf,
                "latency": ((core.k - 1) * core.width + core.k - 1) * cf + 1}

    def bad_params(self):
        return [
            (dict(height=4, width=4, channels=6, k=2, simd=4, pool_op="or", name="pool1"),
             "pool1: SIMD=4 does not divide C=6"),
            (dict(height=4, width=4, channels=2, k=5, simd=1, pool_op="or", name="pool2"),
             "pool2: kernel k=5 is larger than the 4x4 image"),
            (dict(height=4, width=4, channels=2, k=2, simd=1, pool_op=["or"], name="pool3"),
             "pool3: pool_op has 1 entries"),
            (dict(height=4, width=4, channels=2, k=2, simd=1, pool_op="max", name="pool4"),
             "pool4: pool_op must be"),
        ]

    def synth_params(self):
        return dict(height=8, width=8, channels=16, k=2, simd=8, pool_op="mixed")


@register("maxpool", conformance=_MaxPoolConformance)
class MaxPool(StreamCore):
    """Max-pool of a binary channels-last map, kernel = stride = ``k``.

    Channel ``c`` of an output pixel is the OR (``pool_op[c] == "or"``, max
    of +-1) or the AND (``"and"``, min of +-1) of its k x k window.  Rows and
    columns that do not fill a window are consumed and dropped (floor, like
    :func:`bnnhw.golden_ops.maxpool`).

    Parameters (keyword-only): ``name``, ``height``, ``width``, ``channels``,
    ``k``, ``simd`` (channels per beat, divides ``channels``), ``pool_op``
    ("or", "and", or one of them per channel).

    Ports
    -----
    i : stream of ``simd`` bits
        Input pixels in raster order; each pixel is ``C/simd`` beats, beat
        ``cf`` = channels ``cf*simd ..`` (channel ``cf*simd + j`` at bit j).
    o : stream of ``simd`` bits
        Output pixels (``H//k`` x ``W//k``), same format.

    Timing: one input beat per cycle, ``throughput = H*W*C/simd``; the
    output beat of a window leaves the cycle after its last input beat
    (``latency = ((k-1)*W + k-1)*C/simd + 1``).  A one-row accumulator
    (``W//k * C/simd`` words, asynchronous-read memory) holds partial windows.
    """

    def __init__(self, *, height, width, channels, k, simd, pool_op="or", name="maxpool"):
        self.name = str(name)
        self.height = check_positive_int(height, "height", self.name)
        self.width = check_positive_int(width, "width", self.name)
        self.channels = check_positive_int(channels, "channels C", self.name)
        self.k = check_positive_int(k, "kernel k", self.name)
        self.simd = check_positive_int(simd, "SIMD", self.name)
        if channels % simd:
            raise ValueError(f"layer {self.name}: SIMD={simd} does not divide C={channels}; "
                             f"legal values: {divisors(channels)}")
        if k > height or k > width:
            raise ValueError(f"layer {self.name}: kernel k={k} is larger than the "
                             f"{height}x{width} image; use k <= {min(height, width)}")
        self.pool_op = _pool_ops(pool_op, channels, self.name)
        self.cf = channels // simd
        self.out_height, self.out_width = height // k, width // k
        super().__init__(simd, simd)
        self.in_beats = height * width * self.cf
        self.out_beats = self.out_height * self.out_width * self.cf

    def schedule(self, frames: int = 3) -> Schedule:
        n = self.in_beats
        reads, writes = [], []
        for f in range(frames):
            base = f * n
            reads.append([base + j for j in range(n)])
            w = []
            for oy in range(self.out_height):
                for ox in range(self.out_width):
                    y, x = oy * self.k + self.k - 1, ox * self.k + self.k - 1
                    for cf in range(self.cf):
                        w.append(base + (y * self.width + x) * self.cf + cf + 1)
            writes.append(w)
        return Schedule(reads, writes)

    @property
    def throughput(self) -> int:
        return self.in_beats

    def cost(self, family):
        """:func:`bnnhw.hwmodel.maxpool_cost`."""
        from .. import hwmodel as M
        return M.maxpool_cost(simd=self.simd, out_width=self.out_width, cf=self.cf,
                              family=family)

    def elaborate(self, platform):
        m = Module()
        H, W, K, CF, SIMD = self.height, self.width, self.k, self.cf, self.simd
        OW = self.out_width
        i, o = self.i, self.o

        adv = Signal()
        fire = Signal()
        m.d.comb += [adv.eq(~o.valid | o.ready), i.ready.eq(adv), fire.eq(i.valid & adv)]

        y = Signal(range(H))
        x = Signal(range(W))
        cf = Signal(range(CF))
        ky = Signal(range(K))
        kx = Signal(range(K))
        ox = Signal(range(OW + 1))
        in_win = Signal()
        m.d.comb += in_win.eq((y < self.out_height * K) & (ox < OW))

        # and-mask per channel word: bit j set -> channel uses AND
        masks = []
        for g in range(CF):
            mask = 0
            for j in range(SIMD):
                if self.pool_op[g * SIMD + j] == "and":
                    mask |= 1 << j
            masks.append(mask)
        andmask = Signal(SIMD)
        if len(set(masks)) == 1:
            m.d.comb += andmask.eq(masks[0])
        else:
            m.d.comb += andmask.eq(Array(Const(v, SIMD) for v in masks)[cf])

        first = (ky == 0) & (kx == 0)
        last = (ky == K - 1) & (kx == K - 1)
        cur = Signal(SIMD)
        if K == 1:
            m.d.comb += cur.eq(i.payload)
        else:
            m.submodules.rowacc = mem = Memory(shape=unsigned(SIMD), depth=OW * CF, init=[])
            rd = mem.read_port(domain="comb")
            wr = mem.write_port()
            addr = Signal(range(OW * CF))
            m.d.comb += addr.eq(ox * CF + cf) if CF > 1 else addr.eq(ox)
            a, b = rd.data, i.payload
            m.d.comb += [
                rd.addr.eq(addr), wr.addr.eq(addr), wr.data.eq(cur),
                cur.eq(Mux(first, b, ((a | b) & ~andmask) | (a & b & andmask))),
                wr.en.eq(fire & in_win & ~last),
            ]

        with m.If(adv):
            m.d.sync += [o.valid.eq(fire & in_win & last), o.payload.eq(cur)]

        # raster counters
        with m.If(fire):
            with m.If(cf == CF - 1):
                m.d.sync += cf.eq(0)
                with m.If(x == W - 1):
                    m.d.sync += [x.eq(0), kx.eq(0), ox.eq(0)]
                    with m.If(ky == K - 1):
                        m.d.sync += ky.eq(0)
                    with m.Else():
                        m.d.sync += ky.eq(ky + 1)
                    with m.If(y == H - 1):
                        m.d.sync += [y.eq(0), ky.eq(0)]
                    with m.Else():
                        m.d.sync += y.eq(y + 1)
                with m.Else():
                    m.d.sync += x.eq(x + 1)
                    with m.If(kx == K - 1):
                        m.d.sync += [kx.eq(0), ox.eq(ox + 1)]
                    with m.Else():
                        m.d.sync += kx.eq(kx + 1)
            with m.Else():
                m.d.sync += cf.eq(cf + 1)
        return m
