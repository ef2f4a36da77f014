"""Sliding-window unit (convolution input generator) with line buffers.

Input: a channels-last ``H x W x C`` image in raster order, each pixel as
``C/SIMD`` beats of ``SIMD`` elements (element ``j`` of a beat at bits
``[j*E, (j+1)*E)``, E = element width, two's complement when ``signed``),
i.e. beat ``cf`` of pixel ``(y, x)`` holds channels ``cf*SIMD ..``.

Output: for each output pixel ``(oy, ox)`` in raster order its K*K*C window
in the IR's im2col order (``(ky, kx, c)``, c fastest; see
:func:`bnnhw.layout.im2col`), as ``K*K*C/SIMD`` beats of ``SIMD`` elements:
beat ``(ky*K + kx)*C/SIMD + cf``.  Positions outside the image hold
``pad_value``.  This is exactly the input format of an MVAU whose SIMD
equals this unit's SIMD (FINN's convention, SIMD | C).

Architecture: a ring of ``rows`` line buffers (one ``Memory`` of
``rows*W*C/SIMD`` words).  A writer stores input rows as long as a row slot
is free; a reader walks the windows and starts a window once every pixel it
needs has been written; it frees the rows no later window needs at the end
of each output row.  Both sides run concurrently, one word per cycle each,
so the unit needs ``max(H*W, OH*OW*K*K) * C/SIMD`` cycles per frame when the
buffer is deep enough to hide the frame boundary, which the default
``rows`` is.
The exact figures (``schedule``, ``throughput``, ``latency``) come from a
cycle-level model of the control that the conformance suite checks against
the hardware cycle by cycle.
"""
from __future__ import annotations

import functools

import numpy as np
from amaranth.hdl import Signal, Module, Mux, Const, Cat, Array, unsigned, signed
from amaranth.lib.memory import Memory
from amaranth.utils import bits_for

from .. import layout, golden_ops
from ._common import StreamCore, Schedule, check_positive_int, divisors
from .maxpool import encode_fmap
from .registry import register, Conformance

__all__ = ["SlidingWindow"]


class _SWUConformance(Conformance):
    def configs(self):
        out = []
        for (h, w, c, k, s, p, pv, e, sg, simd, *rows) in [
            (4, 4, 1, 3, 1, 0, 0, 1, False, 1),     # SIMD = 1, no padding
            (4, 5, 1, 3, 1, 1, 0, 1, False, 1, 3),  # minimal line buffer (rows = K)
            (5, 5, 2, 3, 1, 1, 1, 1, False, 2),     # SIMD = C, pad with +1
            (6, 5, 6, 3, 2, 1, 0, 1, False, 3),     # stride 2, non-powers of two
            (5, 4, 3, 2, 1, 1, -3, 8, True, 3),     # 8-bit signed, non-zero pad value
            (4, 6, 2, 2, 2, 0, 0, 8, False, 1),     # K = stride (patchify), 8-bit unsigned
            (3, 3, 4, 1, 1, 0, 0, 1, False, 2),     # 1x1 kernel (pass-through)
            (3, 3, 1, 3, 1, 2, 1, 1, False, 1),     # pad 2 > K/2: all-pad corners
        ]:
            params = dict(height=h, width=w, channels=c, k=k, stride=s, pad=p,
                          pad_value=pv, elem_bits=e, signed=sg, simd=simd)
            if rows:
                params["rows"] = rows[0]
            out.append((f"h{h}_w{w}_c{c}_k{k}_s{s}_p{p}_e{e}{'s' if sg else ''}_simd{simd}"
                        f"{f'_rows{rows[0]}' if rows else ''}", params))
        return out

    def formulas(self, core):
        if core.rows != core.default_rows:
            return {}
        # with the default line buffers the unit is never the slower side's bubble
        return {"throughput": max(core.height * core.width,
                                  core.out_height * core.out_width * core.k * core.k) * core.cf}

    def build(self, params, rng):
        p = dict(params)
        return SlidingWindow(name=p.pop("name", "swu_test"), **p)

    def _range(self, core):
        if core.signed:
            return -(1 << (core.elem_bits - 1)), (1 << (core.elem_bits - 1)) - 1
        return 0, (1 << core.elem_bits) - 1

    def frames(self, core, rng, n, edge=False):
        shape = (core.height, core.width, core.channels)
        lo, hi = self._range(core)
        if edge:
            idx = np.arange(np.prod(shape)).reshape(shape)
            return [np.full(shape, lo), np.full(shape, hi),
                    lo + idx % (hi - lo + 1), hi - idx % (hi - lo + 1)][:max(n, 1)]
        return [rng.integers(lo, hi + 1, shape) for _ in range(n)]

    def encode(self, core, frame):
        return encode_fmap(frame, core.simd, core.elem_bits)

    def expected(self, core, frame):
        win = golden_ops.sliding_window(np.asarray(frame), core.k, core.stride, core.pad,
                                        core.pad_value)
        return encode_fmap(win, core.simd, core.elem_bits)

    def bad_params(self):
        base = dict(height=4, width=4, channels=4, k=3, stride=1, pad=1, pad_value=0,
                    elem_bits=1, simd=2, name="conv2")
        return [
            (dict(base, simd=3), "conv2: SIMD=3 does not divide C=4"),
            (dict(base, k=7, pad=1), "conv2: kernel K=7 is larger than the padded 6x6 image"),
            (dict(base, pad_value=2), "conv2: pad value 2 does not fit"),
            (dict(base, stride=0), "conv2: stride"),
            (dict(base, pad=3), "conv2: pad=3"),
            (dict(base, rows=2), "conv2: rows=2"),
        ]

    def synth_params(self):
        return dict(height=8, width=8, channels=8, k=3, stride=1, pad=1, pad_value=0,
                    elem_bits=1, simd=4)

    def synth_memory_params(self):
        return dict(height=32, width=32, channels=64, k=3, stride=1, pad=1, pad_value=0,
                    elem_bits=1, simd=32)


@register("swu", conformance=_SWUConformance)
class SlidingWindow(StreamCore):
    """Sliding-window unit: im2col windows of a channels-last image stream.

    Parameters (keyword-only)
    -------------------------
    name : str
    height, width, channels : int
        H, W, C of the input image.
    k, stride, pad : int
        Square kernel K, stride and padding on each border (``pad < K``).
    pad_value : int
        Element value of the border (a bit for binary maps: 0 = -1, 1 = +1;
        an integer in range for integer inputs).
    elem_bits : int
        E, bits per element (1 for binary maps, B for the input layer).
    signed : bool
        Elements are two's complement (only affects the ``pad_value`` range).
    simd : int
        Elements per beat, a divisor of C.
    rows : int, optional
        Line buffers (>= K); default ``max(K + stride, 2*K - pad + trailing)``
        (``trailing``: input rows below the last window), enough for no
        bubble at frame boundaries (``throughput = max(H*W, OH*OW*K*K)*C/SIMD``,
        checked over a sweep of shapes); fewer rows save memory and may add
        a bubble per frame (``schedule`` tells exactly).

    Ports: ``i``, ``o``: streams of ``simd*elem_bits`` bits (module docstring).
    Timing: :meth:`schedule` (exact), ``throughput``, ``latency``.
    """

    def __init__(self, *, height, width, channels, k, stride=1, pad=0, pad_value=0,
                 elem_bits=1, signed=False, simd=1, rows=None, name="swu"):
        self.name = str(name)
        n = self.name
        self.height = check_positive_int(height, "height", n)
        self.width = check_positive_int(width, "width", n)
        self.channels = check_positive_int(channels, "channels C", n)
        self.k = check_positive_int(k, "kernel K", n)
        self.stride = check_positive_int(stride, "stride", n)
        self.elem_bits = check_positive_int(elem_bits, "element width", n)
        self.simd = check_positive_int(simd, "SIMD", n)
        self.signed = bool(signed)
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0 or pad >= k:
            raise ValueError(f"layer {n}: pad={pad!r} must be an integer in [0, K-1] = "
                             f"[0, {k - 1}]")
        self.pad = pad
        if channels % simd:
            raise ValueError(f"layer {n}: SIMD={simd} does not divide C={channels}; "
                             f"legal values: {divisors(channels)}")
        hp, wp = height + 2 * pad, width + 2 * pad
        if k > hp or k > wp:
            raise ValueError(f"layer {n}: kernel K={k} is larger than the padded {hp}x{wp} "
                             f"image; use K <= {min(hp, wp)} or more padding")
        lo, hi = ((-(1 << (elem_bits - 1)), (1 << (elem_bits - 1)) - 1) if self.signed
                  else (0, (1 << elem_bits) - 1))
        if isinstance(pad_value, bool) or not isinstance(pad_value, (int, np.integer)) \
                or not lo <= pad_value <= hi:
            raise ValueError(f"layer {n}: pad value {pad_value!r} does not fit "
                             f"{elem_bits}-bit {'signed' if self.signed else 'unsigned'} "
                             f"elements; use an integer in [{lo}, {hi}]")
        self.pad_value = int(pad_value)
        oh = layout.out_size(height, k, self.stride, pad)
        # input rows below the last window (never read, still streamed through)
        trailing = height - min(height, (oh - 1) * self.stride - pad + k)
        default_rows = max(k + self.stride, 2 * k - pad + trailing)
        if rows is None:
            rows = default_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < k:
            raise ValueError(f"layer {n}: rows={rows!r} line buffers cannot hold a K={k} "
                             f"window; use rows >= {k} (default {default_rows})")
        self.rows = rows
        self.default_rows = default_rows
        self.cf = channels // simd
        self.out_height = layout.out_size(height, k, self.stride, pad)
        self.out_width = layout.out_size(width, k, self.stride, pad)
        super().__init__(simd * elem_bits, simd * elem_bits)
        self.in_beats = height * width * self.cf
        self.out_beats = self.out_height * self.out_width * k * k * self.cf

    # -- control model (mirrors elaborate(), cycle by cycle) -------------------

    def _release_table(self) -> list[int]:
        """Rows freed at the end of each output row (they sum to H)."""
        H, s, p = self.height, self.stride, self.pad
        first = [min(H, max(0, oy * s - p)) for oy in range(self.out_height)] + [H]
        return [first[oy + 1] - first[oy] if oy + 1 < self.out_height else H - first[oy]
                for oy in range(self.out_height)]

    @functools.lru_cache(maxsize=8)
    def schedule(self, frames: int = 3) -> Schedule:
        H, W, K, s, p, CF = self.height, self.width, self.k, self.stride, self.pad, self.cf
        OH, OW, NR = self.out_height, self.out_width, self.rows
        rel = self._release_table()
        # writer
        wy = wx = wcf = 0
        rows_used = 0
        ahead = 0
        w_frames = 0
        # reader
        oy = ox = ky = kx = rcf = 0
        r_frames = 0
        reads = [[] for _ in range(frames)]
        writes = [[] for _ in range(frames)]
        cycle = 0
        limit = (frames + 2) * (self.in_beats + self.out_beats) * 4 + 1000
        while r_frames < frames or w_frames < frames:
            if cycle > limit:  # pragma: no cover - would be a deadlock in the model
                raise RuntimeError(f"layer {self.name}: sliding-window model deadlocked")
            # -- decisions from the current state
            row_start = wx == 0 and wcf == 0
            fire = w_frames < frames and (not row_start or rows_used < NR)
            win_start = ky == 0 and kx == 0 and rcf == 0
            if r_frames < frames:
                ry = min(oy * s - p + K - 1, H - 1)
                rx = min(ox * s - p + K - 1, W - 1)
                issue = (not win_start) or ahead > ry * W + rx
            else:
                issue = False
            # -- edge
            d_rows = 0
            d_ahead = 0
            if fire:
                reads[w_frames].append(cycle)
                if row_start:
                    d_rows += 1
                if wcf == CF - 1:
                    wcf = 0
                    d_ahead += 1
                    if wx == W - 1:
                        wx = 0
                        if wy == H - 1:
                            wy = 0
                            w_frames += 1
                        else:
                            wy += 1
                    else:
                        wx += 1
                else:
                    wcf += 1
            if issue:
                writes[r_frames].append(cycle + 1)
                if rcf == CF - 1:
                    rcf = 0
                    if kx == K - 1:
                        kx = 0
                        if ky == K - 1:
                            ky = 0
                            if ox == OW - 1:
                                ox = 0
                                d_rows -= rel[oy]
                                if oy == OH - 1:
                                    oy = 0
                                    d_ahead -= H * W
                                    r_frames += 1
                                else:
                                    oy += 1
                            else:
                                ox += 1
                        else:
                            ky += 1
                    else:
                        kx += 1
                else:
                    rcf += 1
            rows_used += d_rows
            ahead += d_ahead
            cycle += 1
        t0 = reads[0][0]
        return Schedule([[c - t0 for c in f] for f in reads],
                        [[c - t0 for c in f] for f in writes])

    @functools.cached_property
    def throughput(self) -> int:
        """Steady-state cycles per frame (from the control model)."""
        return self.schedule(6).period()

    def cost(self, family):
        """:func:`bnnhw.hwmodel.swu_cost` of its line buffers."""
        from .. import hwmodel as M
        return M.swu_cost(width=self.i_width, row_words=self.width * self.cf, rows=self.rows,
                          family=family)

    @functools.cached_property
    def latency(self) -> int:
        return self.schedule(1).latency

    # -- hardware ----------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        H, W, K, s, p, CF = self.height, self.width, self.k, self.stride, self.pad, self.cf
        OH, OW, NR = self.out_height, self.out_width, self.rows
        E, SIMD = self.elem_bits, self.simd
        ROW = W * CF                   # words per line buffer
        DEPTH = NR * ROW
        i, o = self.i, self.o

        m.submodules.lines = mem = Memory(shape=unsigned(SIMD * E), depth=DEPTH, init=[])
        wport = mem.write_port()
        rport = mem.read_port()

        adv = Signal()
        m.d.comb += adv.eq(~o.valid | o.ready)

        # ---- writer -------------------------------------------------------------
        wx = Signal(range(W))
        wcf = Signal(range(CF))
        waddr = Signal(range(DEPTH))
        rows_used = Signal(signed(bits_for(max(NR, H)) + 2))
        ahead = Signal(signed(bits_for(H * W + NR * W) + 1))
        row_start = Signal()
        fire = Signal()
        m.d.comb += [
            row_start.eq((wx == 0) & (wcf == 0)),
            i.ready.eq(~row_start | (rows_used < NR)),
            fire.eq(i.valid & i.ready),
            wport.addr.eq(waddr), wport.data.eq(i.payload), wport.en.eq(fire),
        ]
        pix_done = Signal()
        m.d.comb += pix_done.eq(fire & (wcf == CF - 1))
        with m.If(fire):
            m.d.sync += waddr.eq(Mux(waddr == DEPTH - 1, 0, waddr + 1))
            with m.If(wcf == CF - 1):
                m.d.sync += [wcf.eq(0), wx.eq(Mux(wx == W - 1, 0, wx + 1))]
            with m.Else():
                m.d.sync += wcf.eq(wcf + 1)

        # ---- reader -------------------------------------------------------------
        oy = Signal(range(OH))
        ox = Signal(range(OW))
        ky = Signal(range(K))
        kx = Signal(range(K))
        rcf = Signal(range(CF))
        cw = bits_for(max(H, W) + 2 * K + s) + 1
        iy = Signal(signed(cw), init=-p)        # oy*s - p + ky
        iy0 = Signal(signed(cw), init=-p)       # oy*s - p
        ix = Signal(signed(cw), init=-p)        # ox*s - p + kx
        ix0 = Signal(signed(cw), init=-p)       # ox*s - p
        aw = bits_for(DEPTH + W * CF) + 1
        col = Signal(signed(aw), init=-p * CF)   # ix*CF + rcf
        col0 = Signal(signed(aw), init=-p * CF)  # ix0*CF
        # row base addresses (slot*ROW) of: current row iy, row iy0, row 0 of the frame
        start_slot = (-p) % NR
        rbase = Signal(range(DEPTH), init=start_slot * ROW)
        base0 = Signal(range(DEPTH), init=start_slot * ROW)
        fbase = Signal(range(DEPTH), init=0)

        def addmod(a, c):
            c %= DEPTH
            if c == 0:
                return a
            return Mux(a >= DEPTH - c, a - (DEPTH - c), a + c)

        # The last input pixel window (oy, ox) reads, as a raster index:
        # need(oy, ox) = min(oy*s-p+K-1, H-1)*W + min(ox*s-p+K-1, W-1).  It is kept
        # in a register that is loaded with the next window's value whenever
        # (oy, ox) advance (constant tables indexed by the current oy/ox), so the
        # issue decision is one compare, with no multiplier on its path.
        def ry(v):
            return min(v * s - p + K - 1, H - 1) * W

        def rx(v):
            return min(v * s - p + K - 1, W - 1)

        nw = bits_for(H * W) + 1

        def table(vals):
            if len(set(vals)) == 1:
                return lambda idx: Const(vals[0], nw)
            arr = Array(Const(v, nw) for v in vals)
            return lambda idx: arr[idx]

        row_now = table([ry(y) for y in range(OH)])
        row_next = table([ry(y + 1) for y in range(OH)])
        col_next = table([rx(x + 1) for x in range(OW)])
        need = Signal(nw, init=ry(0) + rx(0))
        win_start = (ky == 0) & (kx == 0) & (rcf == 0)
        issue = Signal()
        m.d.comb += issue.eq(adv & (~win_start | (ahead > need)))
        inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        m.d.comb += [rport.addr.eq(rbase + col), rport.en.eq(adv)]

        rel = self._release_table()
        release = Signal(range(H + 1))
        frame_end = Signal()
        if len(set(rel)) == 1:
            rel_now = Const(rel[0], range(H + 1))
        else:
            rel_now = Array(Const(v, range(H + 1)) for v in rel)[oy]

        with m.If(issue):
            with m.If(rcf == CF - 1):
                m.d.sync += rcf.eq(0)
                with m.If(kx == K - 1):
                    m.d.sync += kx.eq(0)
                    with m.If(ky == K - 1):
                        m.d.sync += ky.eq(0)
                        with m.If(ox == OW - 1):
                            m.d.sync += [ox.eq(0), ix0.eq(-p), ix.eq(-p),
                                         col0.eq(-p * CF), col.eq(-p * CF)]
                            m.d.comb += release.eq(rel_now)
                            with m.If(oy == OH - 1):
                                m.d.comb += frame_end.eq(1)
                                nb = addmod(fbase, H * ROW)
                                nb0 = addmod(nb, -p * ROW)
                                m.d.sync += [oy.eq(0), iy0.eq(-p), iy.eq(-p), fbase.eq(nb),
                                             base0.eq(nb0), rbase.eq(nb0),
                                             need.eq(ry(0) + rx(0))]
                            with m.Else():
                                nb0 = addmod(base0, s * ROW)
                                m.d.sync += [oy.eq(oy + 1), iy0.eq(iy0 + s), iy.eq(iy0 + s),
                                             base0.eq(nb0), rbase.eq(nb0),
                                             need.eq(row_next(oy) + rx(0))]
                        with m.Else():
                            m.d.sync += [ox.eq(ox + 1), ix0.eq(ix0 + s), ix.eq(ix0 + s),
                                         col0.eq(col0 + s * CF), col.eq(col0 + s * CF),
                                         iy.eq(iy0), rbase.eq(base0),
                                         need.eq(row_now(oy) + col_next(ox))]
                    with m.Else():
                        m.d.sync += [ky.eq(ky + 1), iy.eq(iy + 1), rbase.eq(addmod(rbase, ROW)),
                                     ix.eq(ix0), col.eq(col0)]
                with m.Else():
                    m.d.sync += [kx.eq(kx + 1), ix.eq(ix + 1), col.eq(col + 1)]
            with m.Else():
                m.d.sync += [rcf.eq(rcf + 1), col.eq(col + 1)]

        m.d.sync += [
            rows_used.eq(rows_used + (fire & row_start) - release),
            ahead.eq(ahead + pix_done - Mux(frame_end, H * W, 0)),
        ]

        # ---- output stage ----------------------------------------------------------
        pad_word = 0
        for j in range(SIMD):
            pad_word |= (self.pad_value & ((1 << E) - 1)) << (j * E)
        v1 = Signal()
        pad1 = Signal()
        with m.If(adv):
            m.d.sync += [v1.eq(issue), pad1.eq(~inside)]
        m.d.comb += [o.valid.eq(v1), o.payload.eq(Mux(pad1, pad_word, rport.data))]
        return m
