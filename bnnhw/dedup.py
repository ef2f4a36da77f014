"""Filter-repetition sharing in an unrolled, constant-weight layer (the paper's section 3).

A layer whose weights do not change with the fold address (fully unrolled:
one input vector and every output channel per cycle) has its weights as
netlist constants, so XNOR with a weight bit is a wire or an inverter and the
cost is the adder trees.  The paper's observation is that binary KxK kernels
repeat: many (input channel, output channel) pairs use the same 2D kernel, or
its bitwise complement, and ``popcount(XNOR(x, ~k)) = K*K - popcount(XNOR(x, k))``.

:class:`UnrolledDense` builds such a layer in three forms, bit-exact with
:func:`bnnhw.golden_ops.xnor_popcount` / ``first_layer_acc`` + ``threshold``:

* ``"flat"``: per output channel one balanced adder tree over all ``MW``
  XNOR bits in the IR's (im2col) column order -- what an adder tree over a
  weight row computes, the constant-weight baseline;
* ``"grouped"``: per output channel, first one small popcount per input
  group (a conv layer's input channel: its K*K taps; an fc layer's ``group``
  consecutive inputs), then a tree over the groups.  Identical (group, kernel)
  popcounts are structurally identical here, so Yosys' ``opt_merge`` may merge
  duplicates (never complements);
* ``"shared"``: explicit sharing: one popcount per (group, distinct kernel up
  to complement), each output channel adds ``+p`` or ``-p`` of its groups'
  shared counts plus a constant (``K*K`` per complemented group), compared
  with its threshold.

For integer (first-layer) inputs the per-group "popcount" is the partial sum
``sum_taps (+-x)`` and a complemented kernel negates it.  Inputs and outputs
are registered (1 cycle latency, one vector per cycle); no other flip-flops,
no memories: the weights exist only as the netlist's structure.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import layout
from .cores._common import balanced_sum
from .ir import Dense

__all__ = ["groups_of", "share_plan", "UnrolledDense", "MODES"]

MODES = ("flat", "grouped", "shared")


def groups_of(layer: Dense, group: int = 9) -> list[np.ndarray]:
    """Column indices of each input group: a conv layer's input channel ``c`` (its
    K*K taps, bit ``ky*K+kx`` of the kernel code at ``layout.im2col_index``), or an
    fc layer's ``group`` consecutive columns (the last group may be shorter)."""
    if layer.kind == "conv":
        k, c_in = layer.kernel, layer.in_shape[-1]
        return [np.array([layout.im2col_index(ky, kx, c, k, c_in)
                          for ky in range(k) for kx in range(k)]) for c in range(c_in)]
    mw = layer.mw
    return [np.arange(s, min(s + group, mw)) for s in range(0, mw, group)]


def share_plan(layer: Dense, group: int = 9):
    """Per group ``g``: the distinct kernels up to complement (as bit rows, canonical =
    the one whose first bit is 1) and, per output channel, ``(class index, +1|-1)``.

    Returns ``(groups, classes, use)``: ``classes[g]`` is a ``(n_g, len(group))``
    uint8 array, ``use[g]`` a ``(MH, 2)`` int array (class, polarity)."""
    w = np.asarray(layer.weights, dtype=np.uint8)
    groups = groups_of(layer, group)
    classes, use = [], []
    for cols in groups:
        sub = w[:, cols]
        canon = np.where(sub[:, :1] == 1, sub, 1 - sub)      # complement so bit 0 is 1
        pol = np.where(sub[:, 0] == 1, 1, -1)
        uniq, inv = np.unique(canon, axis=0, return_inverse=True)
        classes.append(uniq.astype(np.uint8))
        use.append(np.stack([inv.reshape(-1), pol], axis=1))
    return groups, classes, use


class UnrolledDense(wiring.Component):
    """One fully unrolled conv/fc layer with constant weights (see module doc).

    Ports: ``x`` (``MW * input_bits``; element ``i`` = bits ``[i*B, (i+1)*B)``, the
    IR's column order, two's complement when ``input_signed``: ``layout.int_to_word(
    layout.bitplanes(v, B, signed).T.ravel())``), ``y`` (``MH`` bits,
    bit ``o`` = ``acc_o >= T_o``).  Latency 1 cycle (registered input and output),
    throughput one vector per cycle.  The output layer (no thresholds) is refused."""

    def __init__(self, layer: Dense, mode: str = "flat", group: int = 9):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: use one of {MODES}")
        if layer.thresholds is None:
            raise ValueError(f"{layer.name}: the output layer has no thresholds")
        self.layer, self.mode, self.group = layer, mode, group
        super().__init__({"x": In(layer.mw * layer.input_bits), "y": Out(layer.mh)})

    def _elements(self, m):
        """The registered input vector's elements: 1-bit values, or B-bit integers."""
        l, b = self.layer, self.layer.input_bits
        xr = Signal(l.mw * b)
        m.d.sync += xr.eq(self.x)
        if b == 1:
            return [xr[i] for i in range(l.mw)]
        return [xr[i * b:(i + 1) * b].as_signed() if l.input_signed else xr[i * b:(i + 1) * b]
                for i in range(l.mw)]

    def elaborate(self, platform):
        m = Module()
        l = self.layer
        binary = l.input_bits == 1
        el = self._elements(m)
        w = np.asarray(l.weights, dtype=np.uint8)

        def term(i, wbit):
            # one input times one +-1 weight: XNOR for bits, +-x for integers
            if binary:
                return el[i] if wbit else ~el[i]
            return el[i] if wbit else -el[i]

        def group_sum(cols, bits):
            return balanced_sum(term(int(i), int(b)) for i, b in zip(cols, bits))

        accs = []
        if self.mode == "flat":
            accs = [balanced_sum(term(i, w[o, i]) for i in range(l.mw)) for o in range(l.mh)]
        elif self.mode == "grouped":
            groups = groups_of(l, self.group)
            accs = [balanced_sum(group_sum(cols, w[o, cols]) for cols in groups)
                    for o in range(l.mh)]
        else:
            groups, classes, use = share_plan(l, self.group)
            shared = []
            for g, cols in enumerate(groups):
                row = []
                for ci, kbits in enumerate(classes[g]):
                    expr = group_sum(cols, kbits)
                    s = Signal(signed(expr.shape().width + 1), name=f"p_g{g}_k{ci}")
                    m.d.comb += s.eq(expr)
                    row.append(s)
                shared.append(row)
            for o in range(l.mh):
                terms, offset = [], 0
                for g, cols in enumerate(groups):
                    ci, pol = int(use[g][o, 0]), int(use[g][o, 1])
                    if pol > 0:
                        terms.append(shared[g][ci])
                    else:
                        terms.append(-shared[g][ci])
                        if binary:       # popcount(XNOR(x, ~k)) = n - popcount(XNOR(x, k))
                            offset += len(cols)
                accs.append((balanced_sum(terms), offset))
        y = Signal(l.mh)
        for o in range(l.mh):
            t = int(l.thresholds[o])
            if self.mode == "shared":
                acc, offset = accs[o]
                m.d.sync += y[o].eq(acc >= t - offset)
            else:
                m.d.sync += y[o].eq(accs[o] >= t)
        m.d.comb += self.y.eq(y)
        return m


def reference(layer: Dense, x: np.ndarray) -> np.ndarray:
    """What :class:`UnrolledDense` computes for input vectors ``x`` ``(N, MW)`` (bits or
    integers): the golden ops' accumulator against the thresholds, ``(N, MH)`` bits."""
    from . import golden_ops
    if layer.input_bits == 1:
        acc = golden_ops.xnor_popcount(x, layer.weights)
    else:
        acc = golden_ops.first_layer_acc(x, layer.weights, layer.input_bits, layer.input_signed)
    return golden_ops.threshold(acc, layer.thresholds)
