"""Declarative BNN topologies.

A network is a JSON-able *spec* (stored in every checkpoint, so the exporter
rebuilds the exact architecture) turned into a torch module by
:func:`build_model`.  Spec keys::

    {"version": 1, "arch": "cnv", "num_classes": 10,
     "input": {"channels": 3, "height": 32, "width": 32,
               "bits": 8, "signed": true, "offset": 128, "scale_log2": -7},
               # or, 1-bit inputs: {"bits": 1, "threshold": 128, ...}
     "layers": [{"type": "conv", "out_channels": 64, "kernel": 3, "stride": 1,
                 "padding": 0, "pad_value": -1},
                {"type": "maxpool", "kernel": 2},
                {"type": "fc", "out_features": 512}, ...],
     "pool_order": "after_sign" | "before_bn",
     "norm": "bn" | "shift", "last_norm": "scalar" | "bn",
     "binarize": "det" | "stochastic", "dropout": 0.0, "input_dropout": 0.0,
     "bn_eps": 1e-4, "bn_momentum": 0.1}

Every conv/fc layer is binary-weight, followed by a norm; all but the last
are followed by the sign.  ``maxpool`` follows the conv it pools: in
``after_sign`` order (FINN) the block is conv -> BN -> sign -> pool, in
``before_bn`` order (the paper) conv -> pool -> BN -> sign.  The last fc
layer's norm gives the class scores.  The first layer sees the integer input
``x_int = raw - offset`` as the float ``x_int * 2**scale_log2`` (exact), or,
for 1-bit inputs, ``+1 if raw >= threshold else -1``.  Raw inputs are the
dataset's uint8 values, NCHW.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn

from .layers import (BatchNorm, BinaryActivation, BinaryConv2d, BinaryLinear,
                     ScalarNorm, ShiftBatchNorm)

SPEC_VERSION = 1

__all__ = ["ARCHS", "make_spec", "validate_spec", "build_model", "BNN", "SpecError",
           "input_quant_for"]


class SpecError(ValueError):
    """A network spec that cannot be built; the message names the layer and the fix."""


def _fc(n):
    return {"type": "fc", "out_features": n}


def _conv(n, pad=0, pad_value=-1):
    return {"type": "conv", "out_channels": n, "kernel": 3, "stride": 1,
            "padding": pad, "pad_value": pad_value}


_POOL = {"type": "maxpool", "kernel": 2}

# name -> (hidden layers as a function of width multiplier, defaults)
ARCHS = {
    "tfc": dict(doc="FINN TFC: 3 x FC 64", layers=lambda m: [_fc(_w(64, m))] * 3,
                defaults={"dropout": 0.2, "input_dropout": 0.2}),
    "sfc": dict(doc="FINN SFC: 3 x FC 256", layers=lambda m: [_fc(_w(256, m))] * 3,
                defaults={"dropout": 0.2, "input_dropout": 0.2}),
    "lfc": dict(doc="FINN LFC: 3 x FC 1024", layers=lambda m: [_fc(_w(1024, m))] * 3,
                defaults={"dropout": 0.2, "input_dropout": 0.2}),
    "mlp4096": dict(doc="paper's MNIST MLP: 3 x FC 4096",
                    layers=lambda m: [_fc(_w(4096, m))] * 3,
                    defaults={"dropout": 0.2, "input_dropout": 0.2, "last_norm": "bn"}),
    "cnv": dict(doc="FINN CNV: 2x64C3-MP-2x128C3-MP-2x256C3-2xFC512, no padding",
                layers=lambda m: [_conv(_w(64, m)), _conv(_w(64, m)), _POOL,
                                  _conv(_w(128, m)), _conv(_w(128, m)), _POOL,
                                  _conv(_w(256, m)), _conv(_w(256, m)),
                                  _fc(_w(512, m)), _fc(_w(512, m))],
                defaults={}),
    "vgg": dict(doc="paper's CIFAR net: 2x128C3-MP-2x256C3-MP-2x512C3-MP-2x1024FC, "
                    "binary padding, pool before BN",
                layers=lambda m: [_conv(_w(128, m), 1, 0), _conv(_w(128, m), 1), _POOL,
                                  _conv(_w(256, m), 1), _conv(_w(256, m), 1), _POOL,
                                  _conv(_w(512, m), 1), _conv(_w(512, m), 1), _POOL,
                                  _fc(_w(1024, m)), _fc(_w(1024, m))],
                defaults={"pool_order": "before_bn", "last_norm": "bn"}),
}


def _w(n: int, mult: float) -> int:
    return max(1, int(round(n * mult)))


def input_quant_for(dataset_kind: str, bits: int = 8) -> dict:
    """Default input quantisation: ``"image"`` -> uint8 * 2^-8 (or 1-bit at 128),
    ``"image_signed"`` -> Q1.7 = (raw - 128) * 2^-7, ``"digits"`` -> 0..16 * 2^-4."""
    if bits == 1:
        return {"bits": 1, "threshold": 9 if dataset_kind == "digits" else 128}
    if bits != 8:
        raise SpecError(f"--input-bits must be 1 or 8, not {bits}")
    if dataset_kind == "digits":
        return {"bits": 5, "signed": False, "offset": 0, "scale_log2": -4}
    if dataset_kind == "image_signed":
        return {"bits": 8, "signed": True, "offset": 128, "scale_log2": -7}
    return {"bits": 8, "signed": False, "offset": 0, "scale_log2": -8}


def make_spec(arch: str, *, input_shape, num_classes: int, input_quant: dict,
              width: float = 1.0, **overrides) -> dict:
    """Spec for a named architecture; ``overrides`` set any top-level key."""
    if arch not in ARCHS:
        raise SpecError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    c, h, w = (int(v) for v in input_shape)
    a = ARCHS[arch]
    spec = {
        "version": SPEC_VERSION, "arch": arch, "num_classes": int(num_classes),
        "width": float(width),
        "input": {"channels": c, "height": h, "width": w, **input_quant},
        "layers": copy.deepcopy(a["layers"](width)) + [_fc(int(num_classes))],
        "pool_order": "after_sign", "norm": "bn", "last_norm": "scalar",
        "binarize": "det", "dropout": 0.0, "input_dropout": 0.0,
        "bn_eps": 1e-4, "bn_momentum": 0.1,
    }
    spec.update(copy.deepcopy(a["defaults"]))
    spec.update({k: v for k, v in overrides.items() if v is not None})
    validate_spec(spec)
    return spec


def _int(v, what: str, lo: int, hi: int) -> int:
    """``v`` as an int in lo..hi (bools and non-integers refused), else SpecError."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise SpecError(f"{what} is {v!r}; expected an integer in {lo}..{hi:,}")
    return int(v)


def _shapes(spec):
    """Yield (index, layer, in_shape) and return the final shape; in_shape is
    (C, H, W) for maps or (N,) for vectors.  Every size is checked against
    :mod:`bnnhw.limits` (before any tensor is allocated)."""
    from ..limits import (MAX_CHANNELS, MAX_FEATURE_MAP, MAX_IMAGE_SIDE, MAX_KERNEL,
                          MAX_LAYER_WIDTH, MAX_LAYERS, MAX_WEIGHTS)
    inp = spec["input"]
    if not isinstance(inp, dict):
        raise SpecError(f"spec input is {type(inp).__name__}, expected a dict")
    shape = (_int(inp["channels"], "input channels", 1, MAX_CHANNELS),
             _int(inp["height"], "input height", 1, MAX_IMAGE_SIDE),
             _int(inp["width"], "input width", 1, MAX_IMAGE_SIDE))
    layers = spec["layers"]
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise SpecError(f"spec layers must be a list of 1..{MAX_LAYERS} layers")
    out = []
    weights = 0
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise SpecError(f"layer {i} is {type(layer).__name__}, expected a dict")
        out.append((i, layer, shape))
        t = layer.get("type")
        if t == "conv":
            if len(shape) != 3:
                raise SpecError(f"layer {i} (conv) follows an fc layer; convs must come first")
            k = _int(layer["kernel"], f"layer {i} kernel", 1, MAX_KERNEL)
            s = _int(layer.get("stride", 1), f"layer {i} stride", 1, MAX_KERNEL)
            p = _int(layer.get("padding", 0), f"layer {i} padding", 0, MAX_KERNEL)
            oc = _int(layer["out_channels"], f"layer {i} out_channels", 1, MAX_CHANNELS)
            if k > shape[1] + 2 * p or k > shape[2] + 2 * p:
                raise SpecError(f"layer {i} (conv): kernel {k} larger than its padded "
                                f"input {shape[1]}x{shape[2]}; use a smaller net or input")
            weights += oc * shape[0] * k * k
            shape = (oc, (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
        elif t == "maxpool":
            k = _int(layer["kernel"], f"layer {i} kernel", 1, MAX_KERNEL)
            if len(shape) != 3 or shape[1] < k or shape[2] < k:
                raise SpecError(f"layer {i} (maxpool {k}): input {shape} too small")
            shape = (shape[0], shape[1] // k, shape[2] // k)
        elif t == "fc":
            n = _int(layer["out_features"], f"layer {i} out_features", 1, MAX_LAYER_WIDTH)
            weights += n * int(np.prod(shape))
            shape = (n,)
        else:
            raise SpecError(f"layer {i}: unknown type {t!r} (expected conv, maxpool, fc)")
        if int(np.prod(shape)) > MAX_FEATURE_MAP:
            raise SpecError(f"layer {i} ({t}): output {shape} has more than "
                            f"{MAX_FEATURE_MAP:,} elements per image (bnnhw's limit)")
        if weights > MAX_WEIGHTS:
            raise SpecError(f"the network has more than {MAX_WEIGHTS:,} weights by layer {i} "
                            "(bnnhw's limit)", )
    return out, shape


def validate_spec(spec: dict) -> None:
    """Raise SpecError unless the spec builds into a valid BNN of sizes within
    :mod:`bnnhw.limits` (a malformed spec of any type is a SpecError too)."""
    try:
        _validate_spec(spec)
    except SpecError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
        raise SpecError(f"malformed spec ({type(e).__name__}: {e})") from None


def _validate_spec(spec: dict) -> None:
    if not isinstance(spec, dict) or spec.get("version") != SPEC_VERSION:
        raise SpecError(f"network spec version {spec.get('version') if isinstance(spec, dict) else None}"
                        f" is not supported (expected {SPEC_VERSION})")
    for key, allowed in (("pool_order", ("after_sign", "before_bn")), ("norm", ("bn", "shift")),
                         ("last_norm", ("scalar", "bn")), ("binarize", ("det", "stochastic"))):
        if spec.get(key) not in allowed:
            raise SpecError(f"spec {key}={spec.get(key)!r}; expected one of {allowed}")
    inp = spec["input"]
    if not isinstance(inp, dict):
        raise SpecError(f"spec input is {type(inp).__name__}, expected a dict")
    if inp.get("bits") == 1:
        if "threshold" not in inp:
            raise SpecError("1-bit input needs a 'threshold'")
    elif not (inp.get("bits") in range(2, 17) and "scale_log2" in inp):
        raise SpecError(f"input quantisation {inp} needs bits in 2..16 and a power-of-two "
                        f"scale (scale_log2); mean/std normalisation cannot be exported")
    layers, final = _shapes(spec)
    weighted = [i for i, l, _ in layers if l["type"] in ("conv", "fc")]
    if not weighted or spec["layers"][-1]["type"] != "fc":
        raise SpecError("the last layer must be fc (the class scores)")
    from ..limits import MAX_CLASSES
    _int(spec["num_classes"], "num_classes", 1, MAX_CLASSES)
    if final != (spec["num_classes"],):
        raise SpecError(f"last fc has {final} outputs, expected num_classes={spec['num_classes']}")
    for i, l, _ in layers:
        if l["type"] == "maxpool" and (i == 0 or spec["layers"][i - 1]["type"] != "conv"):
            raise SpecError(f"layer {i} (maxpool) must directly follow a conv layer")
        if l["type"] == "conv":
            pv = l.get("pad_value", -1)
            if l.get("padding", 0) and i == weighted[0]:
                continue  # integer input layer: any integer pad value (0 = zero padding)
            if l.get("padding", 0) and pv not in (-1, 1):
                raise SpecError(f"layer {i} (conv): pad_value {pv} on a binary feature map "
                                f"makes it ternary; use -1 or +1")


class Block(nn.Module):
    """One weighted layer: [dropout] -> binary conv/fc -> [pool] -> norm -> [sign] -> [pool]."""

    def __init__(self, core, norm, act, pool_before, pool_after, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.core, self.norm, self.act = core, norm, act or nn.Identity()
        self.pool_before = pool_before or nn.Identity()
        self.pool_after = pool_after or nn.Identity()

    def forward(self, x):
        if isinstance(self.core, BinaryLinear) and x.dim() > 2:
            x = x.flatten(1)
        return self.pool_after(self.act(self.norm(self.pool_before(self.core(self.dropout(x))))))


class InputQuant(nn.Module):
    """Raw dataset values (uint8 or their float) -> the float the first layer sees."""

    def __init__(self, q: dict):
        super().__init__()
        self.q = dict(q)

    def forward(self, raw):
        raw = raw.to(torch.get_default_dtype())
        if self.q["bits"] == 1:
            return torch.where(raw >= self.q["threshold"], 1.0, -1.0).to(raw.dtype)
        return (raw - self.q.get("offset", 0)) * (2.0 ** self.q["scale_log2"])


class BNN(nn.Module):
    """The torch model of a spec.  ``forward(raw)`` takes NCHW raw inputs and
    returns class scores; ``blocks`` holds one :class:`Block` per weighted layer."""

    def __init__(self, spec: dict):
        super().__init__()
        validate_spec(spec)
        self.spec = copy.deepcopy(spec)
        self.quant = InputQuant(spec["input"])
        layers, _ = _shapes(spec)
        eps, mom = spec["bn_eps"], spec["bn_momentum"]
        norm_cls = ShiftBatchNorm if spec["norm"] == "shift" else BatchNorm
        blocks = []
        n_weighted = sum(1 for _, l, _ in layers if l["type"] != "maxpool")
        first_bits = spec["input"]["bits"]
        for i, l, shape in layers:
            if l["type"] == "maxpool":
                continue
            is_first, is_last = not blocks, len(blocks) == n_weighted - 1
            nxt = spec["layers"][i + 1] if i + 1 < len(spec["layers"]) else None
            pool = nn.MaxPool2d(nxt["kernel"]) if nxt and nxt["type"] == "maxpool" else None
            if l["type"] == "conv":
                pv = l.get("pad_value", -1)
                if is_first and first_bits != 1:
                    pv = pv * 2.0 ** spec["input"]["scale_log2"]
                core = BinaryConv2d(shape[0], l["out_channels"], l["kernel"],
                                    l.get("stride", 1), l.get("padding", 0), pv)
                out = l["out_channels"]
            else:
                fan_in = shape[0] if len(shape) == 1 else shape[0] * shape[1] * shape[2]
                core = BinaryLinear(fan_in, l["out_features"])
                out = l["out_features"]
            if is_last:
                norm = ScalarNorm(eps, mom) if spec["last_norm"] == "scalar" else norm_cls(out, eps, mom)
            else:
                norm = norm_cls(out, eps, mom)
            act = None if is_last else BinaryActivation(spec["binarize"])
            before = spec["pool_order"] == "before_bn"
            drop = spec["input_dropout"] if is_first else spec["dropout"]
            if l["type"] == "conv":
                drop = 0.0  # no dropout on conv maps (as in CNV)
            blocks.append(Block(core, norm, act, pool if before else None,
                                None if before else pool, drop))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, raw):
        x = self.quant(raw)
        for b in self.blocks:
            x = b(x)
        return x

    def clip_weights_(self) -> None:
        """Clamp every latent weight to [-1, 1] (after each optimizer step)."""
        for b in self.blocks:
            b.core.clip_weights_()


def build_model(spec: dict) -> BNN:
    return BNN(spec)
