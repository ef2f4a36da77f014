"""Random small BNNs for the IR/export/golden tests, and the torch-vs-golden comparison.

``random_spec`` draws a spec (hypothesis), ``randomize`` sets weights and norm
parameters from a seed: weights with exact zeros (sign(0) = +1), norm scales
positive, negative, zero and tiny, running means picked from the layer's real
accumulator values on the test images (so some pre-activations land exactly
on 0: the tie sign(0) = +1 is exercised), and crafted ``mean = v + d, bias =
d * scale`` channels (exactly 0 with a non-zero bias).  ``compare`` checks the
golden model against the torch model: every layer's accumulator and bits, the
classes and the full order of the scores.
"""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from bnnhw import layout
from bnnhw.export import export_model
from bnnhw.golden import GoldenModel
from bnnhw.ir import Dense, InputQuant, MaxPool, ir_from_bytes
from bnnhw.train.layers import ScalarNorm
from bnnhw.train.models import make_spec

QUANTS = {
    "bit": lambda thr: {"bits": 1, "threshold": thr},
    "u8": lambda _: {"bits": 8, "signed": False, "offset": 0, "scale_log2": -8},
    "q17": lambda _: {"bits": 8, "signed": True, "offset": 128, "scale_log2": -7},
    "digits": lambda _: {"bits": 5, "signed": False, "offset": 0, "scale_log2": -4},
}


@st.composite
def input_quants(draw):
    kind = draw(st.sampled_from(["bit", "u8", "q17", "digits", "other"]))
    if kind != "other":
        return QUANTS[kind](draw(st.integers(1, 255)))
    bits = draw(st.integers(2, 8))
    signed = draw(st.booleans())
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    offset = draw(st.integers(max(-255, -hi), min(255, 255 - lo)))
    if not (max(lo, -offset) <= min(hi, 255 - offset)):
        offset = 0 if not signed else 1 << (bits - 1)
    return {"bits": bits, "signed": signed, "offset": offset,
            "scale_log2": draw(st.integers(-8, 1))}


def _int_range(q):
    if q["bits"] == 1:
        return (-1, 1)
    b = q["bits"]
    return ((-(1 << (b - 1)), (1 << (b - 1)) - 1) if q["signed"] else (0, (1 << b) - 1))


_CH = st.one_of(st.integers(1, 7), st.integers(8, 24), st.sampled_from([63, 64, 65, 70]))


@st.composite
def random_spec(draw, kind):
    """A valid spec: ``kind`` "fc" (fc only) or "conv" (convs [+ pools] then fc)."""
    q = draw(input_quants())
    if kind == "conv":
        c = draw(st.integers(1, 3))
        h, w = draw(st.integers(3, 8)), draw(st.integers(3, 8))
    else:
        c = draw(st.integers(1, 2))
        h, w = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    layers = []
    shape = (c, h, w)
    if kind == "conv":
        for j in range(draw(st.integers(1, 3))):
            k = draw(st.integers(1, 3))
            p = draw(st.integers(0, 1))
            s = draw(st.integers(1, 2))
            if k > min(shape[1], shape[2]) + 2 * p:
                k = 1
            if j == 0 and q["bits"] > 1:
                lo, hi = _int_range(q)
                pv = draw(st.one_of(st.just(0), st.integers(lo, hi)))
            else:
                pv = draw(st.sampled_from([-1, 1]))
            oc = draw(_CH) if shape[1] * shape[2] <= 36 else draw(st.integers(1, 24))
            layers.append({"type": "conv", "out_channels": oc, "kernel": k, "stride": s,
                           "padding": p, "pad_value": pv})
            oh, ow = (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1
            shape = (oc, oh, ow)
            if min(oh, ow) >= 2 and draw(st.booleans()):
                layers.append({"type": "maxpool", "kernel": 2})
                shape = (oc, oh // 2, ow // 2)
    for _ in range(draw(st.integers(0 if kind == "conv" else 0, 2))):
        layers.append({"type": "fc", "out_features": draw(st.one_of(st.integers(1, 9),
                                                                      st.integers(60, 80)))})
    ncls = draw(st.integers(2, 5))
    layers.append({"type": "fc", "out_features": ncls})
    return make_spec("tfc", input_shape=(c, h, w), num_classes=ncls, input_quant=q,
                     layers=layers,
                     pool_order=draw(st.sampled_from(["after_sign", "before_bn"])),
                     norm=draw(st.sampled_from(["bn", "shift"])),
                     last_norm=draw(st.sampled_from(["scalar", "bn"])),
                     binarize=draw(st.sampled_from(["det", "stochastic"])))


def raw_range(spec):
    i = spec["input"]
    q = InputQuant(channels=i["channels"], height=i["height"], width=i["width"], bits=i["bits"],
                   signed=i.get("signed", False), offset=i.get("offset", 0),
                   threshold=i.get("threshold"), scale_log2=i.get("scale_log2"))
    return q.raw_range


def images_for(spec, rng, n=24):
    i = spec["input"]
    lo, hi = raw_range(spec)
    shp = (i["channels"], i["height"], i["width"])
    x = rng.integers(lo, hi + 1, size=(n,) + shp)
    extra = [np.full(shp, lo), np.full(shp, hi)]
    if i["bits"] == 1:
        t = int(i["threshold"])
        extra.append(rng.integers(max(0, t - 1), min(255, t + 1) + 1, size=shp))
    return np.concatenate([x, np.stack(extra)]).astype(np.uint8)


def _scale_choice(rng, n):
    """Per channel: a norm weight (gamma) that is positive, negative, zero or tiny."""
    kind = rng.choice(5, size=n, p=[0.4, 0.3, 0.1, 0.1, 0.1])
    mag = np.exp(rng.uniform(-2, 2, size=n))
    g = np.where(kind == 0, mag, -mag)
    g = np.where(kind == 2, 0.0, g)
    g = np.where(kind == 3, 1e-30, g)
    g = np.where(kind == 4, -1e-30, g)
    return g


@torch.no_grad()
def randomize(model, images, seed, *, tie_classes=True):
    """Set latent weights and every norm's parameters/statistics from ``seed``."""
    rng = np.random.default_rng(seed)
    model.eval()
    for b in model.blocks:
        w = torch.from_numpy(rng.uniform(-1, 1, size=tuple(b.core.weight.shape))).float()
        w[torch.from_numpy(rng.random(tuple(w.shape)) < 0.1)] = 0.0  # sign(0) = +1
        b.core.weight.copy_(w)
    x = torch.from_numpy(images)
    for bi, b in enumerate(model.blocks):
        seen = {}
        h = b.norm.register_forward_hook(lambda m, i, o: seen.__setitem__("x", i[0].detach()))
        model(x)
        h.remove()
        pre = seen["x"]                                     # the norm's real input
        norm = b.norm
        scalar = isinstance(norm, ScalarNorm)
        nch = 1 if scalar else pre.shape[1]
        g = _scale_choice(rng, nch)
        var = np.exp(rng.uniform(-3, 3, size=nch))
        var[rng.random(nch) < 0.1] = 0.0
        means = np.empty(nch)
        mode = rng.choice(3, size=nch, p=[0.45, 0.3, 0.25])
        for c in range(nch):
            v = (pre if scalar else pre[:, c]).flatten().numpy()
            pick = float(v[rng.integers(len(v))])
            if mode[c] == 1:
                means[c] = rng.uniform(v.min() - 1, v.max() + 1)
            else:
                means[c] = pick                            # exactly on an accumulator value
        norm.weight.copy_(torch.from_numpy(g).float())
        norm.running_var.copy_(torch.from_numpy(var).float())
        delta = np.where(mode == 2, 0.5, 0.0)
        norm.running_mean.copy_(torch.from_numpy(means + delta).float())
        scale = norm.eval_scale().detach()
        bias = torch.from_numpy(rng.normal(size=nch) * 0.5).float() * scale.abs()
        bias = torch.where(torch.from_numpy(mode == 0), torch.zeros_like(bias), bias)
        # mode 2: (v - (v + d)) * s + d*s == 0 exactly, with a non-zero bias
        bias = torch.where(torch.from_numpy(mode == 2), torch.from_numpy(delta).float() * scale,
                           bias)
        norm.bias.copy_(bias)
        last = bi == len(model.blocks) - 1
        if last and tie_classes and nch >= 2 and rng.random() < 0.5:
            # two classes with identical rows and norms: equal scores, ties to the lowest index
            b.core.weight[1] = b.core.weight[0]
            for t in (norm.weight, norm.bias, norm.running_mean, norm.running_var):
                t[1] = t[0]
    return model


def _torch_trace(model, images):
    """Per block: the core's output (pre-pool accumulator as float) and the block output."""
    cores, outs = [], []
    hs = []
    for b in model.blocks:
        hs.append(b.core.register_forward_hook(lambda m, i, o: cores.append(o.detach())))
        hs.append(b.register_forward_hook(lambda m, i, o: outs.append(o.detach())))
    try:
        with torch.no_grad():
            scores = model(torch.from_numpy(images))
    finally:
        for h in hs:
            h.remove()
    return cores, outs, scores


def _cl(t):
    a = t.numpy()
    return np.moveaxis(a, 1, -1) if a.ndim == 4 else a


def check_roundtrip(ir):
    data = ir.to_bytes()
    ir2 = ir_from_bytes(data)
    assert ir2.header() == ir.header()
    a1, a2 = ir.arrays(), ir2.arrays()
    assert a1.keys() == a2.keys()
    for k in a1:
        assert a1[k].dtype == a2[k].dtype and np.array_equal(a1[k], a2[k]), k
    assert ir2.to_bytes() == data
    return ir2


def compare(model, images, ir=None, *, reference=True):
    """Export (unless given) and assert golden == torch on every layer and input."""
    model.eval()
    if ir is None:
        ir = export_model(model, self_check=0)
    ir = check_roundtrip(ir)
    cores, outs, tscores = _torch_trace(model, images)
    engines = [GoldenModel(ir, chunk=7)] + ([GoldenModel(ir, reference=True)] if reference else [])
    q = ir.input
    for eng in engines:
        classes, scores, per = eng.run(images, collect=True)
        assert np.array_equal(classes, tscores.argmax(1).numpy()), "classes differ"
        assert np.array_equal(classes, np.argmax(scores, axis=1))
        # the full order of the scores is the torch order
        t = tscores.numpy()
        assert np.array_equal(np.sign(t[:, :, None] - t[:, None, :]),
                              np.sign(scores[:, :, None] - scores[:, None, :])), "score order"
        for li, layer in enumerate(ir.layers):
            if not isinstance(layer, Dense):
                continue
            b = layer.source["block"]
            acc = per[li]["acc"]
            # torch accumulator in the layer's domain, rows inverted like the IR
            tv = _cl(cores[b]).astype(np.float64)
            if layer.domain == "popcount":
                tacc = (tv + layer.mw) / 2
            else:
                tacc = tv / 2.0 ** q.scale_log2
            assert np.array_equal(tacc, np.round(tacc)), "torch accumulator not integer"
            inv = layer.direction < 0
            tacc = np.where(inv, layer.acc_min + layer.acc_max - tacc, tacc).astype(np.int64)
            assert np.array_equal(acc, tacc), f"{layer.name}: accumulators differ"
            if layer.is_output:
                continue
            nxt = ir.layers[li + 1] if li + 1 < len(ir.layers) else None
            got = per[li + 1]["bits"] if isinstance(nxt, MaxPool) else per[li]["bits"]
            want = layout.to_bits(_cl(outs[b]))
            assert got.shape == want.shape
            assert np.array_equal(got, want), f"{layer.name}: bits differ"
    return ir
