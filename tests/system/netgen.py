"""Random-weight network IRs of any shape, built directly (no torch), for the system tests.

``random_ir(input=(H, W, C, bits), layers=[...])`` with layer tuples
``("conv", out_channels, kernel, stride, padding)``, ``("pool", k)`` and
``("fc", out_features)``; the last fc gives the class scores (``int_pad_value``:
the integer a padded first layer on integer inputs pads with).  Thresholds are
drawn near the middle of each accumulator's range so outputs are mixed.
"""
from __future__ import annotations

import numpy as np

from bnnhw import layout
from bnnhw.ir import Dense, InputQuant, MaxPool, NetworkIR


def random_ir(*, input=(8, 8, 1, 8), layers, seed=0, signed=False, pad_value=None,
              int_pad_value=0, rank_table=False) -> NetworkIR:
    rng = np.random.default_rng(seed)
    h, w, c, bits = input
    if bits == 1:
        q = InputQuant(channels=c, height=h, width=w, bits=1, threshold=128)
    else:
        q = InputQuant(channels=c, height=h, width=w, bits=bits, signed=signed,
                       offset=(1 << (bits - 1)) if signed else 0, scale_log2=-bits)
    shape = (h, w, c)
    out = []
    first = True
    for i, spec in enumerate(layers):
        kind = spec[0]
        last = i == len(layers) - 1
        if kind == "pool":
            k = spec[1]
            hh, ww, cc = shape
            out.append(MaxPool(name=f"pool{i}", in_shape=shape,
                               out_shape=(hh // k, ww // k, cc), kernel=k,
                               pool_op=np.array(rng.choice(["or", "and"], cc))))
            shape = (hh // k, ww // k, cc)
            continue
        ib = bits if first else 1
        if kind == "conv":
            _, oc, k, s, p = spec
            hh, ww, cc = shape
            mw = k * k * cc
            oh, ow = layout.out_size(hh, k, s, p), layout.out_size(ww, k, s, p)
            out_shape = (oh, ow, oc)
            mh = oc
        else:
            mh = spec[1]
            mw = int(np.prod(shape))
            out_shape = (mh,)
        if ib == 1:
            lo, hi = 0, mw
        else:
            xmax = (1 << (bits - 1)) if signed else (1 << bits) - 1
            lo, hi = -mw * xmax, mw * xmax
        wts = rng.integers(0, 2, (mh, mw)).astype(np.uint8)
        if ib == 1:
            pv = int(rng.integers(0, 2)) if pad_value is None else pad_value
        else:
            pv = int_pad_value          # the first layer's integer padding
        d = Dense(name=f"{kind}{i}", kind=kind, in_shape=shape, out_shape=out_shape,
                  input_bits=ib, input_signed=signed if ib > 1 else False, weights=wts,
                  acc_min=lo, acc_max=hi, direction=np.ones(mh, np.int8))
        if kind == "conv":
            d.kernel, d.stride, d.padding, d.pad_value = k, s, p, (pv if p else 0)
        if last:
            if rank_table and ib == 1:
                d.score_kind = "rank_table"
                d.score_table = rng.integers(-40, 40, (mh, hi - lo + 1)).astype(np.int32)
            else:
                d.score_kind = "popcount"
        else:
            if ib == 1:
                mid = mw // 2
                spread = max(1, int(np.sqrt(mw)))
                d.thresholds = rng.integers(mid - spread, mid + spread + 1, mh).astype(np.int64)
            else:
                spread = max(1, int(np.sqrt(mw)) * ((1 << bits) // 4))
                centre = 0 if signed else mw * ((1 << bits) - 1) // 2 * 0
                d.thresholds = rng.integers(centre - spread, centre + spread + 1,
                                            mh).astype(np.int64)
            d.thresholds = np.clip(d.thresholds, lo, hi + 1)
        out.append(d)
        shape = out_shape
        first = False
    ir = NetworkIR(input=q, layers=out, num_classes=layers[-1][1])
    ir.validate("random IR")
    return ir


def random_images(ir: NetworkIR, n: int, seed: int = 1) -> np.ndarray:
    """Raw uint8 images (N, C, H, W) inside the model's representable raw range."""
    rng = np.random.default_rng(seed)
    q = ir.input
    lo, hi = q.raw_range
    return rng.integers(lo, hi + 1, (n, q.channels, q.height, q.width)).astype(np.uint8)


# --------------------------------------------------------------------------- CNV-shaped

CNV_SPEC_LAYERS = [
    {"type": "conv", "out_channels": 8, "kernel": 3, "stride": 1, "padding": 1, "pad_value": 0},
    {"type": "conv", "out_channels": 8, "kernel": 3, "stride": 1, "padding": 1, "pad_value": -1},
    {"type": "maxpool", "kernel": 2},
    {"type": "conv", "out_channels": 16, "kernel": 3, "stride": 1, "padding": 0},
    {"type": "maxpool", "kernel": 2},
    {"type": "fc", "out_features": 32},
    {"type": "fc", "out_features": 10},
]


def synthetic_npz(path, *, n_train=200, n_test=64, size=16, channels=3, seed=0):
    """A small RGB dataset (uint8 NCHW, 10 classes): each class a brightness ramp in
    its own direction plus noise, so the images differ in structure."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n)
        yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
        ang = y[:, None, None] * (np.pi / 5)
        ramp = np.cos(ang) * xx[None] + np.sin(ang) * yy[None]
        base = (ramp - ramp.min(axis=(1, 2), keepdims=True)) * 180
        x = base[:, None] + rng.normal(0, 30, (n, channels, size, size))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    x_tr, y_tr = make(n_train)
    x_te, y_te = make(n_test)
    np.savez(path, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    return path


def cnv_checkpoint(path, npz_path, *, seed=0, layers=None, size=16, channels=3,
                   pool_order="after_sign", train_steps=0, negative_scales=0.0):
    """A CNV-shaped BNN (convs with integer and binary padding, max-pools, fcs) with
    random binary weights and BatchNorm statistics calibrated on the dataset's
    training images, saved as a training checkpoint.

    ``train_steps``: that many Adam steps (square hinge loss, batches of 32) on the
    training images first; ``negative_scales``: that share of every hidden BatchNorm's
    channels gets a negative scale (gamma) after calibration; ``pool_order``: the
    spec's ("before_bn": conv -> pool -> BN -> sign)."""
    import copy
    import torch
    from bnnhw.train.checkpoint import save_checkpoint
    from bnnhw.train.models import build_model, validate_spec

    torch.manual_seed(seed)
    spec = {"version": 1, "arch": "cnv_small", "num_classes": 10, "width": 1.0,
            "input": {"channels": channels, "height": size, "width": size, "bits": 8,
                      "signed": True, "offset": 128, "scale_log2": -7},
            "layers": copy.deepcopy(layers or CNV_SPEC_LAYERS),
            "pool_order": pool_order, "norm": "bn", "last_norm": "scalar",
            "binarize": "det", "dropout": 0.0, "input_dropout": 0.0,
            "bn_eps": 1e-4, "bn_momentum": 0.5}
    validate_spec(spec)
    model = build_model(spec)
    z = np.load(npz_path)
    x = torch.from_numpy(z["x_train"][:128].astype(np.int64))
    model.train()
    if train_steps:
        from bnnhw.train.optim import square_hinge_loss
        xt = torch.from_numpy(z["x_train"].astype(np.int64))
        yt = torch.from_numpy(z["y_train"].astype(np.int64))
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        for step in range(train_steps):
            k = (np.arange(32) + 32 * step) % len(xt)
            loss = square_hinge_loss(model(xt[k]), yt[k])
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.clip_weights_()
    with torch.no_grad():
        for _ in range(4):          # running BatchNorm statistics from real activations
            model(x)
        if negative_scales:
            g = torch.Generator().manual_seed(seed)
            for b in model.blocks[:-1]:
                w = b.norm.weight
                flip = torch.rand(w.shape, generator=g) < negative_scales
                w.copy_(torch.where(flip, -w.abs(), w.abs()))
    model.eval()
    save_checkpoint(str(path), spec=spec, model=model, dataset={"name": "synthetic"},
                    split={}, meta={"note": "random weights, calibrated BatchNorm"})
    return path
