"""The unrolled constant-weight layer of the dedup experiment: every form bit-exact with
the golden ops, and the sharing plan counts what :mod:`bnnhw.analyze` counts."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from bnnhw import layout
from bnnhw.analyze import kernel_codes
from bnnhw.dedup import MODES, UnrolledDense, reference, share_plan
from bnnhw.ir import Dense


def _conv(c_in, c_out, bits=1, signed=False, seed=0):
    """A 3x3 conv layer whose kernels repeat: per input channel, output channels draw
    from 3 kernels and their complements, so duplicates and complements both occur."""
    rng = np.random.default_rng(seed)
    k = 3
    w = np.zeros((c_out, k * k * c_in), np.uint8)
    for c in range(c_in):
        pool = rng.integers(0, 2, (3, k * k), dtype=np.uint8)
        for o in range(c_out):
            kern = pool[rng.integers(0, 3)]
            if rng.integers(0, 2):
                kern = 1 - kern
            for t in range(k * k):
                w[o, t * c_in + c] = kern[t]          # im2col: (ky, kx, c), c fastest
    mw = w.shape[1]
    if bits == 1:
        lo, hi = 0, mw
    else:
        big = (1 << (bits - 1)) if signed else (1 << bits) - 1
        lo, hi = -mw * big, mw * big
    thr = rng.integers(lo // 4, hi // 4 + 1, c_out) + (mw // 2 if bits == 1 else 0)
    return Dense(name="conv", kind="conv", in_shape=(4, 4, c_in), out_shape=(2, 2, c_out),
                 input_bits=bits, input_signed=signed, weights=w, acc_min=lo, acc_max=hi,
                 direction=np.ones(c_out, np.int8), thresholds=thr.astype(np.int64), kernel=k)


def _fc(mw, mh, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (mh, mw), dtype=np.uint8)
    w[1] = w[0]
    w[2] = 1 - w[0]                                     # a duplicate and a complement row
    thr = rng.integers(mw // 2 - 3, mw // 2 + 4, mh)
    return Dense(name="fc", kind="fc", in_shape=(mw,), out_shape=(mh,), input_bits=1,
                 input_signed=False, weights=w, acc_min=0, acc_max=mw,
                 direction=np.ones(mh, np.int8), thresholds=thr.astype(np.int64))


def _simulate(dut, layer, xs):
    b = layer.input_bits
    got = []

    async def bench(ctx):
        for x in xs:
            # element i at bits [i*B, (i+1)*B): its bit-planes, element-major
            planes = layout.bitplanes(x, b, layer.input_signed)          # (B, MW)
            ctx.set(dut.x, layout.int_to_word(planes.T.ravel()))
            await ctx.tick()
            await ctx.tick()
            y = ctx.get(dut.y)
            got.append([(y >> o) & 1 for o in range(layer.mh)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, np.uint8)


def _inputs(layer, n, seed=1):
    rng = np.random.default_rng(seed)
    b = layer.input_bits
    if b == 1:
        return rng.integers(0, 2, (n, layer.mw))
    lo, hi = (-(1 << (b - 1)), (1 << (b - 1))) if layer.input_signed else (0, 1 << b)
    x = rng.integers(lo, hi, (n, layer.mw))
    x[0], x[1] = lo, hi - 1                              # the extremes
    return x


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layer", [
    pytest.param(_conv(4, 12), id="conv-bits"),
    pytest.param(_conv(3, 8, bits=8, signed=True, seed=2), id="conv-int8-signed"),
    pytest.param(_conv(3, 8, bits=8, signed=False, seed=3), id="conv-uint8"),
    pytest.param(_fc(40, 10), id="fc-bits"),
])
def test_every_form_is_bit_exact_with_the_golden_ops(layer, mode):
    xs = _inputs(layer, 40)
    want = reference(layer, xs)
    assert 0 < want.mean() < 1, "thresholds must leave both output values in play"
    got = _simulate(UnrolledDense(layer, mode), layer, xs)
    np.testing.assert_array_equal(got, want)


def test_share_plan_counts_the_analysis_kernels():
    layer = _conv(4, 12)
    groups, classes, use = share_plan(layer)
    codes = kernel_codes(layer)                           # (C_out, C_in)
    for c in range(4):
        distinct = len(np.unique(codes[:, c]))
        merged = len({min(v, (~v) & 511) for v in codes[:, c].tolist()})
        assert len(classes[c]) == merged <= 3 and distinct >= merged
        # the plan reproduces every kernel from its class and polarity
        for o in range(12):
            ci, pol = use[c][o]
            kern = classes[c][ci] if pol > 0 else 1 - classes[c][ci]
            np.testing.assert_array_equal(kern, layer.weights[o, groups[c]])
