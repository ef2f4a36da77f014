"""Matrix-vector-activation units: binary (XNOR-popcount) and first-layer (bit-serial).

Both are built on one engine, :class:`MatrixVectorUnit`:

* :class:`MVAU` -- binary inputs and weights, ``acc = popcount(XNOR(x, w))``
  (``dot = 2*acc - MW``), output bit ``acc >= T`` or, without thresholds,
  the signed score ``dot``;
* :class:`FirstLayerMVAU` -- B-bit integer inputs (unsigned or two's
  complement) times binary weights, accumulated over the bit-planes,
  ``acc = sum_n c_n*(2*popcount(x_n AND w+) - popcount(x_n))`` (exactly
  ``sum_i x_i*w_i``), output bit ``acc >= T`` (signed thresholds in the acc
  domain) or, without thresholds, ``acc`` itself.

Folding (FINN vocabulary, orders from :mod:`bnnhw.layout`): ``SF = MW/SIMD``
input words per vector, ``NF = MH/PE`` neuron folds, ``G = B/planes`` plane
groups (1 for binary layers).  PE ``p`` owns the weight memory
``layout.pack_weights(W, PE, SIMD)[p]`` (address ``nf*SF + sf``) and the
threshold memory ``layout.pack_thresholds(T, PE)[p]`` (address ``nf``).

Schedule
--------
The input vector is held in a double buffer (two banks of SF words, one
``Memory`` with a read port transparent to its write port).  The writer
fills one bank while the compute side reads the other, so the next vector
is taken in while the current one is still being computed, one vector
ahead.  The compute side also *streams*: in the first pass over a bank it
may use word ``sf`` in the very cycle it is written (FINN's schedule, where
the first neuron fold reads the input stream directly), so the latency is
FINN's while the double buffer removes FINN's stall between vectors.

Compute order per vector: ``for nf: for g (MSB group first): for sf``; one
``(nf, g, sf)`` step per cycle, so **cycles per vector = NF*G*SF** exactly,
with no bubble between folds or vectors when the input keeps up and the
output is ready.  A neuron fold's PE results leave as one output beat.

With the input always valid and the output always ready (cycle 0 = first
input transfer, ``T = NF*G*SF``, ``D`` = pipeline depth, see
:attr:`MatrixVectorUnit.pipeline_depth`):

* vector 0 is read on cycles ``0..SF-1``, vector 1 on ``SF..2SF-1``, and
  vector ``v >= 2`` from ``max(end of vector v-1 + 1, (v-1)*T)`` on, i.e.
  SF consecutive reads once per T cycles, one vector ahead of the compute;
* vector ``v``'s compute starts at ``v*T``; fold ``f``'s output beat leaves
  on cycle ``v*T + (f+1)*G*SF + D + 1``;
* ``latency = G*SF + D + 1``, ``throughput = T``.

Back-pressure: the output is a two-entry buffer; the compute pipeline (one
global enable) advances while the buffer is not full, a registered
condition, so ``o.ready`` does not fan out to every pipeline register.  The
input side keeps filling its free bank while the output is stalled.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Signal, Module, Mux, Cat, Array, Const, unsigned, signed
from amaranth.lib.memory import Memory
from amaranth.utils import bits_for

from .. import layout, golden_ops
from ._common import StreamCore, Schedule, popcount_tree, tree_stages, delay, \
    check_positive_int, divisors, skid_output, balanced_sum
from .registry import register, Conformance

__all__ = ["MatrixVectorUnit", "MVAU", "FirstLayerMVAU"]


class MatrixVectorUnit(StreamCore):
    """Folded matrix-vector unit over binary weights (engine of MVAU and FirstLayerMVAU).

    Ports
    -----
    i : stream of ``SIMD*B`` bits
        One input word per beat: elements ``sf*SIMD .. sf*SIMD+SIMD-1`` of the
        vector, element ``j`` at bits ``[j*B, (j+1)*B)`` (B = 1 for binary
        layers, two's complement when signed).  SF beats per vector.
    o : stream of ``PE`` bits, or ``PE*score_width`` bits without thresholds
        One beat per neuron fold ``nf``: bit (field) ``p`` = neuron
        ``nf*PE + p``.  Score fields are signed two's complement, field ``p``
        at bits ``[p*score_width, (p+1)*score_width)``.  NF beats per vector.
    """

    def __init__(self, *, name, mw, mh, simd, pe, weights, thresholds,
                 bits, signed_input, planes, binary, levels_per_stage, score="dot",
                 weight_style=None, read_reg=True):
        self.name = str(name)
        self.mw = check_positive_int(mw, "MW", self.name)
        self.mh = check_positive_int(mh, "MH", self.name)
        layout.check_fold(mw, mh, simd, pe, layer=f"layer {self.name}")
        self.simd, self.pe = simd, pe
        self.bits = check_positive_int(bits, "input bits B", self.name)
        self.signed_input = bool(signed_input)
        self.binary = bool(binary)
        planes = check_positive_int(planes, "planes per cycle", self.name)
        if bits % planes:
            raise ValueError(f"layer {self.name}: planes per cycle {planes} does not divide "
                             f"the input width B={bits}; legal values: {divisors(bits)}")
        self.planes = planes
        self.levels_per_stage = check_positive_int(levels_per_stage, "levels_per_stage",
                                                   self.name)
        self.sf, self.nf = mw // simd, mh // pe
        self.groups = bits // planes
        if weight_style not in (None, "block", "logic"):
            raise ValueError(f"layer {self.name}: weight_style={weight_style!r}; use None "
                             f"(Yosys decides), 'block' (block RAM) or 'logic' (LUTs)")
        self.weight_style = weight_style
        self.read_reg = bool(read_reg)

        w = np.asarray(weights)
        if w.shape != (mh, mw):
            raise ValueError(f"layer {self.name}: weights have shape {w.shape}, expected "
                             f"(MH, MW) = ({mh}, {mw})")
        if w.size and not np.isin(w, (0, 1)).all():
            raise ValueError(f"layer {self.name}: weights must be bits (1 = +1, 0 = -1)")
        self.weights = w.astype(np.uint8)

        # accumulator range
        if self.binary:
            self.acc_min, self.acc_max = 0, mw
            self.acc_shape = unsigned(bits_for(mw))
        else:
            xmax = (1 << (bits - 1)) if self.signed_input else (1 << bits) - 1
            self.acc_min, self.acc_max = -mw * xmax, mw * xmax
            self.acc_shape = signed(bits_for(mw * xmax + 1) + 1)   # holds T up to acc_max+1

        if thresholds is None:
            self.thresholds = None
        else:
            t = np.asarray(thresholds)
            if t.ndim == 2 and t.shape[1] == 1:
                t = t[:, 0]
            if t.shape != (mh,):
                raise ValueError(f"layer {self.name}: thresholds have shape {t.shape}, "
                                 f"expected (MH,) = ({mh},) (one threshold per output)")
            if t.size and not np.issubdtype(t.dtype, np.integer):
                if not np.all(np.equal(np.mod(t, 1), 0)):
                    raise ValueError(f"layer {self.name}: thresholds must be integers")
            # Clamp to the reachable range: acc >= T is unchanged for T below acc_min
            # (always 1) or above acc_max (always 0).
            self.thresholds = np.clip(t.astype(np.int64), self.acc_min, self.acc_max + 1)

        if score not in ("dot", "popcount"):
            raise ValueError(f"layer {self.name}: score={score!r}; use 'dot' (2*popcount - MW) "
                             f"or 'popcount'")
        self.score = score if self.binary else "acc"
        if self.thresholds is None:
            if self.binary:
                self.score_width = bits_for(mw) + 1          # [-MW, MW]
            else:
                self.score_width = self.acc_shape.width
            o_width = pe * self.score_width
        else:
            self.score_width = None
            o_width = pe
        super().__init__(simd * bits, o_width)
        self.in_beats = self.sf
        self.out_beats = self.nf

    # -- timing ---------------------------------------------------------------

    @property
    def tree_stages(self) -> int:
        return tree_stages(self.simd, self.levels_per_stage)

    @property
    def read_stages(self) -> int:
        """Register stages of the memory reads: the synchronous read, plus one register
        on the read data when ``read_reg`` (keeps block-RAM clock-to-out and the
        route from the RAM off the XNOR/adder-tree path)."""
        return 2 if self.read_reg else 1

    @property
    def pipeline_depth(self) -> int:
        """D: register stages from a compute step's issue to its accumulator input
        (memory read stages + adder-tree stages [+ plane-combine stage for FirstLayerMVAU])."""
        return self.read_stages + self.tree_stages + (0 if self.binary else 1)

    @property
    def cycles_per_vector(self) -> int:
        """NF*G*SF (G = B/planes, 1 for binary layers)."""
        return self.nf * self.groups * self.sf

    @property
    def throughput(self) -> int:
        """Steady-state cycles per vector: exactly NF*G*SF."""
        return self.cycles_per_vector

    def cost(self, family):
        """:func:`bnnhw.hwmodel.mvau_cost` (on iCE40 its input buffer goes to
        block RAM from ``family.ram_block_bits`` bits on)."""
        from .. import hwmodel as M
        return M.mvau_cost(mw=self.mw, mh=self.mh, simd=self.simd, pe=self.pe, bits=self.bits,
                           planes=self.planes, signed=self.signed_input,
                           thresholds=self.thresholds is not None, family=family)

    @property
    def latency(self) -> int:
        """First input transfer -> first output beat: G*SF + D + 1 cycles."""
        return self.groups * self.sf + self.pipeline_depth + 1

    def schedule(self, frames: int = 3) -> Schedule:
        SF, T, G, D = self.sf, self.cycles_per_vector, self.groups, self.pipeline_depth
        reads, writes, starts = [], [], []
        for v in range(frames):
            r0 = 0 if v == 0 else reads[-1][-1] + 1
            if v >= 2:
                r0 = max(r0, starts[v - 2] + T)     # bank freed by vector v-2
            c = 0 if v == 0 else max(starts[-1] + T, r0)
            reads.append([r0 + s for s in range(SF)])
            starts.append(c)
            writes.append([c + (f + 1) * G * SF + D + 1 for f in range(self.nf)])
        return Schedule(reads, writes)

    # -- stream encoding helpers ----------------------------------------------

    def encode(self, x) -> list[int]:
        """Input beats of one vector ``x`` (bits for binary layers, ints otherwise)."""
        x = np.asarray(x).astype(np.int64).reshape(-1)
        if x.shape != (self.mw,):
            raise ValueError(f"layer {self.name}: vector of {x.shape} elements, expected {self.mw}")
        mask = (1 << self.bits) - 1
        beats = []
        for sf in range(self.sf):
            word = 0
            for j, v in enumerate(x[sf * self.simd:(sf + 1) * self.simd].tolist()):
                word |= (int(v) & mask) << (j * self.bits)
            beats.append(word)
        return beats

    def decode(self, beats) -> np.ndarray:
        """MH outputs (bits, or signed scores) from the NF output beats of one vector."""
        beats = list(beats)
        if self.thresholds is not None:
            return layout.unpack_fold_output(beats, self.pe)
        sw = self.score_width
        out = []
        for word in beats:
            for p in range(self.pe):
                v = (word >> (p * sw)) & ((1 << sw) - 1)
                out.append(v - (1 << sw) if v >> (sw - 1) else v)
        return np.array(out, dtype=np.int64)

    def encode_output(self, y) -> list[int]:
        """Output beats for MH outputs ``y`` (inverse of :meth:`decode`)."""
        y = np.asarray(y).astype(np.int64)
        if self.thresholds is not None:
            return [layout.int_to_word(y[nf * self.pe:(nf + 1) * self.pe])
                    for nf in range(self.nf)]
        sw = self.score_width
        beats = []
        for nf in range(self.nf):
            word = 0
            for p in range(self.pe):
                word |= (int(y[nf * self.pe + p]) & ((1 << sw) - 1)) << (p * sw)
            beats.append(word)
        return beats

    def reference(self, x) -> np.ndarray:
        """Golden outputs (bits or scores) of one or more vectors, via golden_ops."""
        x = np.asarray(x)
        if self.binary:
            acc = golden_ops.xnor_popcount(x, self.weights)
            if self.thresholds is None:
                return 2 * acc - self.mw if self.score == "dot" else acc
        else:
            acc = golden_ops.first_layer_acc(x, self.weights, self.bits, self.signed_input)
            if self.thresholds is None:
                return acc
        return golden_ops.threshold(acc, self.thresholds)

    # -- hardware -------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        SF, NF, G, P, B = self.sf, self.nf, self.groups, self.planes, self.bits
        SIMD, PE = self.simd, self.pe
        i, o = self.i, self.o

        # The whole compute pipeline advances together when the two-entry output
        # buffer has room (a registered condition: o.ready does not fan out).
        adv = Signal()

        # ---- input double buffer -------------------------------------------
        m.submodules.ibuf = ibuf = Memory(shape=unsigned(self.i_width), depth=2 * SF, init=[])
        wport = ibuf.write_port()
        rport = ibuf.read_port(transparent_for=(wport,))
        wbank = Signal()
        wcnt = Signal(range(SF))
        full = Signal(2)
        write_now = Signal()
        m.d.comb += [
            i.ready.eq(~Mux(wbank, full[1], full[0])),
            write_now.eq(i.valid & i.ready),
            wport.addr.eq(Mux(wbank, SF, 0) + wcnt),
            wport.data.eq(i.payload),
            wport.en.eq(write_now),
        ]
        with m.If(write_now):
            with m.If(wcnt == SF - 1):
                m.d.sync += [wcnt.eq(0), wbank.eq(~wbank)]
            with m.Else():
                m.d.sync += wcnt.eq(wcnt + 1)

        # ---- compute sequencer ---------------------------------------------
        rbank = Signal()
        nf = Signal(range(NF))
        g = Signal(range(G), init=G - 1)
        sf = Signal(range(SF))
        waddr = Signal(range(NF * SF))
        avail = Signal()
        issue = Signal()
        sf_last, g_last, nf_last = sf == SF - 1, g == 0, nf == NF - 1
        vec_last = Signal()
        m.d.comb += [
            avail.eq(Mux(rbank, full[1], full[0]) | (sf < wcnt) | ((sf == wcnt) & write_now)),
            issue.eq(avail & adv),
            vec_last.eq(sf_last & g_last & nf_last),
        ]
        with m.If(issue):
            with m.If(sf_last):
                m.d.sync += sf.eq(0)
                with m.If(g_last):
                    m.d.sync += g.eq(G - 1)
                    with m.If(nf_last):
                        m.d.sync += [nf.eq(0), rbank.eq(~rbank), waddr.eq(0)]
                    with m.Else():
                        m.d.sync += [nf.eq(nf + 1), waddr.eq(waddr + 1)]
                with m.Else():
                    m.d.sync += [g.eq(g - 1), waddr.eq(waddr - (SF - 1))]
            with m.Else():
                m.d.sync += [sf.eq(sf + 1), waddr.eq(waddr + 1)]

        # bank flags: set by the writer on a bank's last word, cleared by the compute
        # side after the last step of that bank's vector (clear wins if both happen).
        for b in range(2):
            with m.If(write_now & (wcnt == SF - 1) & (wbank == b)):
                m.d.sync += full[b].eq(1)
            with m.If(issue & vec_last & (rbank == b)):
                m.d.sync += full[b].eq(0)

        m.d.comb += [rport.addr.eq(Mux(rbank, SF, 0) + sf), rport.en.eq(adv)]

        # ---- weights --------------------------------------------------------
        wmems = layout.pack_weights(self.weights, PE, SIMD)
        wdata = []
        for p in range(PE):
            attrs = ({"ram_style": self.weight_style, "rom_style": self.weight_style}
                     if self.weight_style else None)
            mem = Memory(shape=unsigned(SIMD), depth=NF * SF, init=wmems[p], attrs=attrs)
            m.submodules[f"weights_pe{p}"] = mem
            port = mem.read_port()
            m.d.comb += [port.addr.eq(waddr), port.en.eq(adv)]
            wdata.append(port.data)

        # ---- sideband pipeline ---------------------------------------------
        s_valid = Signal()
        s_first = Signal()      # first step of a neuron fold: accumulator restarts
        s_shift = Signal()      # first step of a lower plane group: acc <<= P
        s_last = Signal()       # last step of a neuron fold
        s_top = Signal()        # processing the top plane group
        m.d.comb += [
            s_valid.eq(issue),
            s_first.eq((sf == 0) & (g == G - 1)),
            s_shift.eq((sf == 0) & (g != G - 1)),
            s_last.eq(sf_last & g_last),
            s_top.eq(g == G - 1),
        ]
        RS = self.read_stages
        x1 = rport.data
        if self.read_reg:
            x1 = delay(m, x1, 1, adv, "xr")
            wdata = [delay(m, w, 1, adv, f"wr{p}") for p, w in enumerate(wdata)]
        g1 = delay(m, g, RS, adv, "g")
        top1 = delay(m, s_top, RS, adv, "top")
        D = self.pipeline_depth
        R = self.tree_stages

        # ---- datapath: per-PE increments, registered, at stage D -------------
        incs = []
        if self.binary:
            for p in range(PE):
                pc, stages = popcount_tree(m, ~(x1 ^ wdata[p]), adv, self.levels_per_stage,
                                           f"pc{p}")
                assert stages == R
                incs.append(pc)
        else:
            # planes g*P + q, q = 0..P-1, of the SIMD elements
            planes = []
            for q in range(P):
                options = [Cat(*(x1[j * B + gg * P + q] for j in range(SIMD)))
                           for gg in range(G)]
                sel = Signal(SIMD, name=f"plane{q}")
                m.d.comb += sel.eq(Array(options)[g1] if G > 1 else options[0])
                planes.append(sel)
            pcx = []
            for q in range(P):
                cnt, _ = popcount_tree(m, planes[q], adv, self.levels_per_stage, f"pcx{q}")
                pcx.append(cnt)
            topR = delay(m, top1, R, adv, "topR")
            neg_top = topR if self.signed_input else Const(0)
            inc_shape = signed(bits_for(SIMD * (1 << P)) + 1)
            for p in range(PE):
                terms = []
                for q in range(P):
                    cnt, _ = popcount_tree(m, planes[q] & wdata[p], adv, self.levels_per_stage,
                                           f"pca{p}_{q}")
                    t = Signal(signed(bits_for(SIMD) + 1), name=f"d{p}_{q}")
                    m.d.comb += t.eq((cnt << 1) - pcx[q])
                    terms.append(t)
                low = balanced_sum([terms[q] << q for q in range(P - 1)]) if P > 1 else 0
                hi = terms[P - 1] << (P - 1)
                inc = Signal(inc_shape, name=f"inc{p}", reset_less=True)
                with m.If(adv):
                    m.d.sync += inc.eq(low + Mux(neg_top, -hi, hi))
                incs.append(inc)

        vD = delay(m, s_valid, D, adv, "valid", reset_less=False)
        firstD = delay(m, s_first, D, adv, "first")
        shiftD = delay(m, s_shift, D, adv, "shift")
        lastD = delay(m, s_last, D, adv, "last")
        nfD = delay(m, nf, D, adv, "nf")

        # ---- accumulate ------------------------------------------------------
        accs = []
        for p in range(PE):
            acc = Signal(self.acc_shape, name=f"acc{p}", reset_less=True)
            base = Mux(firstD, 0, Mux(shiftD, acc << P, acc)) if G > 1 else Mux(firstD, 0, acc)
            with m.If(adv & vD):
                m.d.sync += acc.eq(base + incs[p])
            accs.append(acc)
        done = delay(m, vD & lastD, 1, adv, "done", reset_less=False)

        # ---- activation / scores and the output register ---------------------
        fields = []
        if self.thresholds is not None:
            tshape = unsigned(bits_for(self.mw + 1)) if self.binary else self.acc_shape
            tmems = layout.pack_thresholds(self.thresholds, PE)
            for p in range(PE):
                mem = Memory(shape=tshape, depth=NF, init=[int(v) for v in tmems[p]])
                m.submodules[f"thresholds_pe{p}"] = mem
                port = mem.read_port()
                m.d.comb += [port.addr.eq(nfD), port.en.eq(adv)]
                fields.append(accs[p] >= port.data)
        else:
            sw = self.score_width
            for p in range(PE):
                sc = Signal(signed(sw), name=f"score{p}")
                if self.binary and self.score == "dot":
                    m.d.comb += sc.eq((accs[p] << 1) - self.mw)
                else:
                    m.d.comb += sc.eq(accs[p])
                fields.append(sc)
        m.d.comb += adv.eq(skid_output(m, o, Cat(*fields), adv & done))
        return m


def _conformance_bits_frames(core, rng, n, edge):
    if edge:
        out = [np.zeros(core.mw, np.uint8), np.ones(core.mw, np.uint8),
               core.weights[0].copy(), 1 - core.weights[-1]]
        return out[:max(n, 1)]
    return [rng.integers(0, 2, core.mw).astype(np.uint8) for _ in range(n)]


class _MVAUConformance(Conformance):
    def configs(self):
        c = []
        for (mw, mh, simd, pe, thr, lps) in [
            (8, 4, 1, 1, True, 2),       # PE = SIMD = 1
            (16, 8, 16, 8, True, 2),     # fully parallel
            (32, 16, 8, 4, True, 2),     # intermediate
            (27, 10, 9, 5, True, 1),     # non-powers of two
            (27, 10, 27, 10, True, 3),   # non-power-of-two, fully parallel
            (27, 10, 3, 2, False, 2),    # scores (final layer)
            (27, 10, 3, 2, "popcount", 2),  # popcount scores
            (12, 6, 3, 6, True, 2),      # NF = 1, SF > 1
            (6, 12, 6, 3, False, 1),     # SF = 1, NF > 1, scores
        ]:
            c.append((f"mw{mw}_mh{mh}_simd{simd}_pe{pe}"
                      f"{'' if thr is True else '_' + (thr or 'dot') + '_scores'}_lps{lps}",
                      dict(mw=mw, mh=mh, simd=simd, pe=pe, thresholds=thr,
                           levels_per_stage=lps)))
        # without the read register (one pipeline stage less)
        c.append(("mw32_mh16_simd8_pe4_lps2_noreadreg",
                  dict(mw=32, mh=16, simd=8, pe=4, thresholds=True, levels_per_stage=2,
                       read_reg=False)))
        return c

    def build(self, params, rng):
        p = dict(params)
        mw, mh = p["mw"], p["mh"]
        w = rng.integers(0, 2, p.pop("weights_shape", (mh, mw))).astype(np.uint8)
        thr = p.pop("thresholds", True)
        t = rng.integers(-1, mw + 3, mh) if thr is True else None
        if isinstance(thr, str):
            p["score"] = thr
        return MVAU(name=p.pop("name", "fc_test"), weights=w, thresholds=t, **p)

    def frames(self, core, rng, n, edge=False):
        return _conformance_bits_frames(core, rng, n, edge)

    def encode(self, core, frame):
        return core.encode(frame)

    def expected(self, core, frame):
        return core.encode_output(core.reference(frame))

    def formulas(self, core):
        return {"throughput": core.nf * core.sf,
                "latency": core.sf + core.pipeline_depth + 1}

    def bad_params(self):
        return [
            (dict(mw=16, mh=12, simd=4, pe=5, name="fc3"), "fc3: PE=5 does not divide MH=12"),
            (dict(mw=27, mh=10, simd=4, pe=2, name="fc1"), "SIMD=4 does not divide MW=27"),
            (dict(mw=16, mh=10, simd=4, pe=0, name="fcz"), "fcz"),
            (dict(mw=0, mh=10, simd=1, pe=1, name="fc0"), "fc0"),
            (dict(mw=16, mh=8, simd=4, pe=2, levels_per_stage=0, name="fcl"), "fcl"),
            (dict(mw=16, mh=8, simd=4, pe=2, thresholds="max", name="fcs"), "fcs: score='max'"),
            (dict(mw=16, mh=8, simd=4, pe=2, weight_style="bram", name="fcb"),
             "fcb: weight_style='bram'"),
            (dict(mw=16, mh=8, simd=4, pe=2, thresholds=True, weights_shape=(8, 15),
                  name="fcw"), "fcw: weights have shape (8, 15)"),
        ]

    def synth_params(self):
        return dict(mw=32, mh=8, simd=8, pe=2, thresholds=True)

    def synth_memory_params(self):
        # 512-deep weight memories (NF*SF = 16*32) infer block RAM
        return dict(mw=1024, mh=32, simd=32, pe=2, thresholds=True)


@register("mvau", conformance=_MVAUConformance)
class MVAU(MatrixVectorUnit):
    """Binary MVAU: ``acc = popcount(XNOR(x, w))`` per neuron over MW inputs.

    Parameters (keyword-only)
    -------------------------
    name : str
        Layer name, used in error messages.
    mw, mh : int
        Inputs and outputs.
    simd, pe : int
        Folding; SIMD must divide MW and PE divide MH.
    weights : (MH, MW) array of bits (1 = +1)
    thresholds : (MH,) ints in the popcount domain, or None
        Output bit ``p`` of neuron ``n`` is ``acc >= thresholds[n]``.  With
        ``None`` the unit emits signed scores of ``score_width = bits_for(MW) + 1``
        bits (final layer): ``dot = 2*acc - MW`` (``score="dot"``) or the
        popcount ``acc`` itself (``score="popcount"``, the IR's
        ``score_kind == "popcount"``); argmax is the same for both.
    levels_per_stage : int, default 2
        Adder-tree levels between pipeline registers (fewer: faster clock,
        more flip-flops, one more cycle of latency per extra stage).
    read_reg : bool, default True
        Register the input-buffer and weight read data before the XNOR
        (``SIMD*(PE + B)`` flip-flops, B = input bits, one cycle of latency): block-RAM
        clock-to-out and its routing then no longer add to the adder tree's
        first stage, which limited CNV's clock on the ECP5.

    Ports: see :class:`MatrixVectorUnit` (``i``: SIMD bits per beat, SF beats
    per vector; ``o``: PE bits or PE score fields per beat, NF beats).

    Timing: ``throughput = NF*SF`` cycles per vector;
    ``latency = SF + D + 1`` with ``D = R + ceil(ceil(log2 SIMD)/levels_per_stage)``,
    ``R = 2`` read stages with ``read_reg`` (default), else 1.
    """

    def __init__(self, *, mw, mh, simd, pe, weights, thresholds=None, name="mvau",
                 levels_per_stage=2, score="dot", weight_style=None, read_reg=True):
        super().__init__(name=name, mw=mw, mh=mh, simd=simd, pe=pe, weights=weights,
                         thresholds=thresholds, bits=1, signed_input=False, planes=1,
                         binary=True, levels_per_stage=levels_per_stage, score=score,
                         weight_style=weight_style, read_reg=read_reg)


class _FirstLayerConformance(Conformance):
    def configs(self):
        c = []
        for (mw, mh, simd, pe, bits, sgn, planes, thr) in [
            (4, 2, 1, 1, 8, False, 1, True),     # PE = SIMD = 1, one plane per cycle
            (8, 4, 8, 4, 8, True, 8, True),      # fully parallel, all planes at once
            (12, 8, 4, 2, 8, False, 2, True),    # intermediate
            (27, 10, 9, 5, 8, True, 4, True),    # non-powers of two, signed
            (6, 3, 3, 3, 3, True, 3, False),     # B = 3 signed, scores
            (10, 4, 5, 2, 4, False, 1, False),   # unsigned, scores, bit-serial
        ]:
            c.append((f"mw{mw}_mh{mh}_simd{simd}_pe{pe}_b{bits}{'s' if sgn else 'u'}_p{planes}"
                      f"{'' if thr else '_scores'}",
                      dict(mw=mw, mh=mh, simd=simd, pe=pe, bits=bits, signed=sgn,
                           planes_per_cycle=planes, thresholds=thr)))
        c.append(("mw12_mh8_simd4_pe2_b8u_p2_noreadreg",
                  dict(mw=12, mh=8, simd=4, pe=2, bits=8, signed=False, planes_per_cycle=2,
                       thresholds=True, read_reg=False)))
        return c

    def build(self, params, rng):
        p = dict(params)
        mw, mh, bits, sgn = p["mw"], p["mh"], p["bits"], p["signed"]
        w = rng.integers(0, 2, (mh, mw)).astype(np.uint8)
        xmax = (1 << (bits - 1)) if sgn else (1 << bits) - 1
        t = rng.integers(-mw * xmax // 2, mw * xmax // 2 + 1, mh) if p.pop("thresholds", True) \
            else None
        return FirstLayerMVAU(name=p.pop("name", "conv0"), weights=w, thresholds=t, **p)

    def _range(self, core):
        if core.signed_input:
            return -(1 << (core.bits - 1)), (1 << (core.bits - 1)) - 1
        return 0, (1 << core.bits) - 1

    def frames(self, core, rng, n, edge=False):
        lo, hi = self._range(core)
        if edge:
            wpm = core.weights[0].astype(np.int64)
            return [np.full(core.mw, lo), np.full(core.mw, hi), np.zeros(core.mw, np.int64),
                    np.where(wpm == 1, hi, lo)][:max(n, 1)]
        return [rng.integers(lo, hi + 1, core.mw) for _ in range(n)]

    def encode(self, core, frame):
        return core.encode(frame)

    def expected(self, core, frame):
        return core.encode_output(core.reference(frame))

    def formulas(self, core):
        return {"throughput": core.nf * core.groups * core.sf,
                "latency": core.groups * core.sf + core.pipeline_depth + 1}

    def bad_params(self):
        return [
            (dict(mw=12, mh=8, simd=5, pe=2, bits=8, signed=False, name="conv0"),
             "conv0: SIMD=5 does not divide MW=12"),
            (dict(mw=12, mh=8, simd=4, pe=3, bits=8, signed=False, name="conv0"),
             "PE=3 does not divide MH=8"),
            (dict(mw=12, mh=8, simd=4, pe=2, bits=8, signed=False, planes_per_cycle=3,
                  name="conv0"), "conv0: planes per cycle 3 does not divide"),
        ]

    def synth_params(self):
        return dict(mw=27, mh=8, simd=9, pe=2, bits=8, signed=True, planes_per_cycle=2,
                    thresholds=True)


@register("first_layer_mvau", conformance=_FirstLayerConformance)
class FirstLayerMVAU(MatrixVectorUnit):
    """First-layer MVAU: B-bit integer inputs times binary weights, bit-serial.

    Parameters (keyword-only)
    -------------------------
    name, mw, mh, simd, pe, weights, levels_per_stage, read_reg : as :class:`MVAU`
    bits : int
        B, bits per input element.
    signed : bool
        Inputs are two's complement (plane B-1 weighs -2**(B-1)).
    planes_per_cycle : int
        Bit-planes processed per cycle (a divisor of B; B = fully parallel);
        ``G = B/planes_per_cycle`` passes per neuron fold, MSB group first.
    thresholds : (MH,) ints in the acc domain (``sum_i x_i*w_i``), or None
        Output bit = ``acc >= T``; ``None``: emit ``acc`` as a signed score of
        ``score_width`` bits.

    Ports: ``i``: SIMD elements of B bits per beat (element j at bits
    ``[j*B, (j+1)*B)``), SF beats per vector; ``o`` as :class:`MVAU`.

    Timing: ``throughput = NF*G*SF``; ``latency = G*SF + D + 1`` with
    ``D = R + 1 + ceil(ceil(log2 SIMD)/levels_per_stage)`` (``R`` as :class:`MVAU`).
    """

    def __init__(self, *, mw, mh, simd, pe, weights, bits, signed, planes_per_cycle=1,
                 thresholds=None, name="first_layer", levels_per_stage=2, weight_style=None,
                 read_reg=True):
        super().__init__(name=name, mw=mw, mh=mh, simd=simd, pe=pe, weights=weights,
                         thresholds=thresholds, bits=bits, signed_input=signed,
                         planes=planes_per_cycle, binary=False,
                         levels_per_stage=levels_per_stage, weight_style=weight_style,
                         read_reg=read_reg)
