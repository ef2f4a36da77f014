"""Checkpoint -> network IR, exactly.

:func:`export_checkpoint` turns a trained torch BNN into a :class:`bnnhw.ir.NetworkIR`
whose integer golden model agrees with the float torch model (eval mode, CPU,
float32) on every input.

How BatchNorm + sign becomes one integer threshold per channel
--------------------------------------------------------------
The accumulator of a layer is an integer with a finite range: the popcount
``p`` in ``[0, MW]`` for binary inputs (torch sees the dot ``2p - MW``), or
``acc`` in ``[-MW*max|x|, MW*max|x|]`` for the first layer on integer inputs
(torch sees ``acc * 2**scale_log2``, exact in float32 below 2**24).  The
exporter does not round a formula: it evaluates **the model's own norm
module** (eval mode, CPU, float32) on candidate accumulator values and
bisects for the smallest value whose output is ``>= 0`` (sign(0) = +1).

Position independence: every evaluation builds a tensor in the layer's real
shape ``(R, C, H, W)`` or ``(R, C)`` (each channel's candidate copied to every
position), and evaluates it as is, at a shifted storage offset, reversed
along the batch, and (4-D) in channels-last memory format; every position
and variant must give the same float, or the export stops with an error.
(``bnnhw.train.layers.BatchNorm`` computes its eval path elementwise in one
canonical form so this holds.)  Monotonicity is checked, not assumed: the
decision is re-evaluated on both sides of each threshold (in one tensor with
varying values), constant channels are sampled across their range, and
where the table is small enough (``(range) * C <= 2**24``) every reachable
value is evaluated and compared with the folded threshold.

Per channel: increasing -> ``T`` = the smallest passing value; decreasing
(negative scale) -> the weight row is inverted (``p' = MW - p``, ``acc' =
-acc``) and ``T' = lo + hi - A`` with ``A`` the largest passing value; constant
(zero scale, or a range that never crosses 0) -> ``T = lo`` (always 1) or
``hi + 1`` (always 0).

Max-pool: torch's ``after_sign`` order pools bits (OR).  In ``before_bn``
order torch pools the accumulator and applies BN+sign after; with a
monotone f, ``sign(f(max acc)) = OR_i sign(f(acc_i))`` when f increases and
``AND_i`` when it decreases; inverting the weight row changes how each bit is
computed but not its value, so the IR pools the threshold outputs with
``pool_op = "and"`` for decreasing channels and ``"or"`` otherwise.

The output layer
----------------
The exporter evaluates the last norm on every reachable accumulator value of
every class (the same float tensor torch would compute).  If all classes
share one function (ScalarNorm) and it is strictly increasing on the
reachable values, the scores are the raw popcounts (``score_kind
"popcount"``); strictly decreasing: every row is inverted and the same holds.
Otherwise (per-class BN, a zero scale, or a tiny scale under which different
popcounts round to the same float) the IR stores a **rank table**:
``score_table[c, p]`` = the dense rank of ``g_c(p)`` among all values of all
classes, so the integer argmax with ties to the lowest index equals torch's
``argmax`` on the floats (which also returns the first maximum), for every
input.  The rank table preserves the full order of the float scores.
"""
from __future__ import annotations

import hashlib
import math
import os
import time

import numpy as np

from . import layout
from .errors import ExportError, ModelFileError
from .ir import Dense, InputQuant, MaxPool, NetworkIR, _jsonable, is_ir_file, load_ir
from .scores import scores_from_values

__all__ = ["export_checkpoint", "export_model", "load_model_any", "ExportError",
           "scores_from_values"]

_EXACT_LIMIT = 1 << 24          # float32 integers are exact below this
_EXHAUSTIVE_LIMIT = 1 << 24     # elements evaluated at most for a full monotonicity check
_TABLE_LIMIT = 1 << 24          # entries of a rank table


# ---------------------------------------------------------------------------
# entry points

def export_checkpoint(path_or_ck, *, self_check: int = 32, source: str | None = None) -> NetworkIR:
    """Export a checkpoint (a path, or the dict from ``load_checkpoint``) to the IR.

    ``self_check``: number of random images on which the golden model is compared
    with the torch model after export (0 to skip); any disagreement is an error."""
    from .train.checkpoint import load_checkpoint, model_from_checkpoint

    src_hash = None
    if isinstance(path_or_ck, (str, os.PathLike)):
        path = os.fspath(path_or_ck)
        if os.path.exists(path) and is_ir_file(path):
            raise ModelFileError(f"{path!r} is already an exported IR file",
                                 "use it directly with --model; export reads a training "
                                 "checkpoint (.pt)")
        ck = load_checkpoint(path)
        source = source or path
        src_hash = _sha256_file(path)
    else:
        ck = path_or_ck
        if not isinstance(ck, dict):
            raise ModelFileError("export_checkpoint needs a checkpoint path or dict",
                                 "pass the path of a `bnnhw train` checkpoint")
        source = source or "checkpoint"
    model = model_from_checkpoint(ck, source)
    return export_model(model, dataset=ck.get("dataset") or {}, split=ck.get("split") or {},
                        meta=ck.get("meta") or {}, source=source, source_sha256=src_hash,
                        self_check=self_check)


def load_model_any(path: str):
    """``(ir, ck_or_None)`` for a training checkpoint, an IR file or a QONNX model,
    told apart by content.

    A checkpoint is exported on the fly (with its self-check) and returned
    with the loaded checkpoint dict; an IR file is loaded and validated; an
    ONNX model is imported (:func:`bnnhw.qonnx_import.import_qonnx`, with its
    self-check against the reference execution)."""
    import zipfile
    if not os.path.exists(path):
        raise ModelFileError(f"model file {path!r} does not exist",
                             "train one with `bnnhw train` or export one with `bnnhw export`")
    if is_ir_file(path):
        return load_ir(path), None
    from .qonnx_import import import_qonnx, is_onnx_file
    if is_onnx_file(path):
        return import_qonnx(path), None
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError:
        is_zip = False
    except Exception:  # noqa: BLE001 - a damaged zip directory: load_checkpoint says so
        is_zip = True
    if not is_zip:
        raise ModelFileError(f"{path!r} is neither a bnnhw checkpoint, an IR file nor an ONNX "
                             "model (not a zip container or protobuf; truncated or another "
                             "format)", "give a checkpoint from `bnnhw train`, an IR from "
                             "`bnnhw export` or a QONNX .onnx model")
    from .train.checkpoint import load_checkpoint
    ck = load_checkpoint(path)
    return export_checkpoint(ck, source=path), ck


def export_model(model, *, dataset=None, split=None, meta=None, source=None,
                 source_sha256=None, self_check: int = 32) -> NetworkIR:
    """Export a :class:`bnnhw.train.models.BNN` (its ``spec`` and current weights).

    The model is evaluated in eval mode (its mode is restored afterwards)."""
    from .train.models import SpecError, validate_spec

    spec = model.spec
    try:
        validate_spec(spec)
    except SpecError as e:
        raise ExportError(f"invalid network spec: {e}", "fix the spec and retrain") from None
    was_training = model.training
    model.eval()
    try:
        return _export_eval(model, spec, dataset, split, meta, source, source_sha256,
                            self_check)
    finally:
        model.train(was_training)


def _export_eval(model, spec, dataset, split, meta, source, source_sha256, self_check):
    import torch

    for n, p in list(model.named_parameters()) + list(model.named_buffers()):
        if p.is_floating_point() and p.dtype != torch.float32:
            raise ExportError(f"{n} is {p.dtype}; the exporter folds the float32 model",
                              "load the checkpoint with model_from_checkpoint (float32)")
        if p.device.type != "cpu":
            raise ExportError(f"{n} is on {p.device}; thresholds are folded on the CPU",
                              "move the model to the CPU (model.cpu()) before exporting")
    q = _input_quant(spec)
    with torch.no_grad():
        layers = _fold_layers(model, spec, q)
    meta = dict(meta or {})
    meta.pop("history", None)
    prov = {"exporter": "bnnhw.export", "torch": torch.__version__, "numpy": np.__version__,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source, "source_sha256": source_sha256, "checkpoint_meta": meta,
            "float_model": "eval mode, CPU, float32"}
    ir = NetworkIR(input=q, layers=layers, num_classes=int(spec["num_classes"]),
                   spec=_jsonable(spec), dataset=_jsonable(dataset or {}),
                   split=_jsonable(split or {}), provenance=_jsonable(prov))
    ir.validate("exported IR")
    if self_check:
        lo, hi = q.raw_range
        rng = np.random.default_rng(0)
        imgs = rng.integers(lo, hi + 1, size=(int(self_check), q.channels, q.height, q.width),
                            endpoint=False).astype(np.uint8)
        imgs[0] = lo
        if len(imgs) > 1:
            imgs[1] = hi
        bad = disagreements(ir, model, imgs)
        if bad:
            raise ExportError(f"internal error: the exported golden model disagrees with the "
                              f"torch model on {bad} of {len(imgs)} random images",
                              "please report this with the checkpoint")
        ir.provenance["self_check"] = {"images": int(len(imgs)), "disagreements": 0}
    return ir


# ---------------------------------------------------------------------------
# input quantisation and layer walk

def _input_quant(spec) -> InputQuant:
    inp = spec["input"]
    c, h, w = int(inp["channels"]), int(inp["height"]), int(inp["width"])
    bits = inp["bits"]
    if bits == 1:
        t = inp["threshold"]
        if not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ExportError(f"input threshold {t!r} is not a number",
                              "set input.threshold to an integer raw value")
        return InputQuant(channels=c, height=h, width=w, bits=1, threshold=int(math.ceil(t)))
    s = inp.get("scale_log2")
    if not isinstance(s, (int, float)) or s != int(s):
        raise ExportError(f"input scale 2**{s!r} is not a power of two with an integer exponent; "
                          "the float first layer would not be exact",
                          "use an integer scale_log2 (uint8 * 2^-8, Q1.7, digits * 2^-4); "
                          "mean/std or /255 normalisation cannot be exported")
    off = inp.get("offset", 0)
    if not isinstance(off, (int, float)) or off != int(off):
        raise ExportError(f"input offset {off!r} is not an integer",
                          "use an integer offset (0 or 128)")
    if "mean" in inp or "std" in inp:
        raise ExportError("input mean/std normalisation cannot be folded exactly",
                          "use a power-of-two scale and an integer offset")
    q = InputQuant(channels=c, height=h, width=w, bits=int(bits), signed=bool(inp.get("signed", False)),
                   offset=int(off), scale_log2=int(s))
    lo, hi = q.value_range
    if lo > hi:
        raise ExportError(f"input quantisation {inp} maps no raw uint8 value into its "
                          f"{bits}-bit range", "fix offset/signed in the input spec")
    return q


def _fold_layers(model, spec, q: InputQuant) -> list:
    import torch.nn as nn

    from .train.layers import BinaryActivation, BinaryConv2d, BinaryLinear

    layers_spec = spec["layers"]
    before_bn = spec["pool_order"] == "before_bn"
    blocks = list(model.blocks)
    n_weighted = sum(1 for l in layers_spec if l["type"] in ("conv", "fc"))
    if len(blocks) != n_weighted:
        raise ExportError(f"the model has {len(blocks)} blocks but the spec {n_weighted} "
                          "weighted layers", "rebuild the model from its spec")
    out = []
    shape = (q.height, q.width, q.channels)          # channels-last shape of the current map
    b = 0
    for i, ls in enumerate(layers_spec):
        t = ls["type"]
        if t == "maxpool":
            continue
        if t not in ("conv", "fc"):
            raise ExportError(f"layer {i}: unknown layer type {t!r}",
                              "use conv, fc and maxpool layers only")
        blk = blocks[b]
        first, last = b == 0, b == n_weighted - 1
        where = f"layer {i} ({t})"
        nxt = layers_spec[i + 1] if i + 1 < len(layers_spec) else None
        pool_k = int(nxt["kernel"]) if nxt is not None and nxt["type"] == "maxpool" else 0
        in_bits = q.bits if first else 1
        # -- structure checks
        if not isinstance(blk.dropout, (nn.Identity, nn.Dropout)):
            raise ExportError(f"{where}: unsupported input module {type(blk.dropout).__name__}",
                              "only dropout (identity in eval mode) may precede a layer")
        if last:
            if not isinstance(blk.act, nn.Identity):
                raise ExportError(f"{where}: the output layer must end with its norm (scores), "
                                  f"not {type(blk.act).__name__}", "remove the activation")
        elif not isinstance(blk.act, BinaryActivation):
            raise ExportError(f"{where}: hidden activation {type(blk.act).__name__} is not "
                              "binary", "use the sign activation (BinaryActivation) after "
                              "every hidden layer")
        pb, pa = blk.pool_before, blk.pool_after
        want_before = bool(pool_k) and before_bn
        want_after = bool(pool_k) and not before_bn
        for mod, want, label in ((pb, want_before, "before the norm"),
                                 (pa, want_after, "after the sign")):
            if isinstance(mod, nn.MaxPool2d):
                ok = (want and _pool_ok(mod, pool_k))
            else:
                ok = isinstance(mod, nn.Identity) and not want
            if not ok:
                raise ExportError(f"{where}: the model's pooling {label} ({mod}) does not "
                                  f"match the spec (maxpool {pool_k or 'none'}, "
                                  f"pool_order {spec['pool_order']})",
                                  "use max-pooling with kernel = stride and no padding, as "
                                  "the spec builds it")
        if t == "conv":
            core = blk.core
            if not isinstance(core, BinaryConv2d):
                raise ExportError(f"{where}: expected a BinaryConv2d, found {type(core).__name__}",
                                  "use the binary layers of bnnhw.train")
            if len(shape) != 3:
                raise ExportError(f"{where}: conv after an fc layer", "put convs first")
            h, w, c = shape
            k = int(core.kernel_size[0])
            s = int(core.stride[0])
            if (core.kernel_size[0] != core.kernel_size[1] or core.stride[0] != core.stride[1]
                    or tuple(core.dilation) != (1, 1) or core.groups != 1
                    or tuple(core.padding) != (0, 0) or core.bias is not None):
                raise ExportError(f"{where}: only square kernels and strides, no dilation, "
                                  "groups or bias are supported", "use the spec's conv layer")
            if core.in_channels != c:
                raise ExportError(f"{where}: {core.in_channels} input channels, expected {c}",
                                  "rebuild the model from its spec")
            pad = int(core.pad)
            pad_value = _pad_value(where, core, ls, pad, in_bits, first, q)
            wbits = layout.conv_weight_to_matrix(layout.to_bits(_np(core.weight)))
            oh, ow = layout.out_size(h, k, s, pad), layout.out_size(w, k, s, pad)
            mh = int(core.out_channels)
            conv_shape = (oh, ow, mh)
            norm_spatial = (oh // pool_k, ow // pool_k) if (pool_k and before_bn) else (oh, ow)
            kw = dict(kernel=k, stride=s, padding=pad, pad_value=pad_value)
        else:
            core = blk.core
            if not isinstance(core, BinaryLinear) or core.bias is not None:
                raise ExportError(f"{where}: expected a BinaryLinear without bias, found "
                                  f"{type(core).__name__}", "use the binary layers of bnnhw.train")
            n_in = int(np.prod(shape))
            if core.in_features != n_in:
                raise ExportError(f"{where}: {core.in_features} inputs, expected {n_in}",
                                  "rebuild the model from its spec")
            wb = layout.to_bits(_np(core.weight))
            if len(shape) == 3:       # torch flattens (c, h, w); the IR uses (h, w, c)
                wb = layout.fc_weight_from_torch(wb, shape[2], shape[0], shape[1])
            wbits = wb
            mh = int(core.out_features)
            conv_shape = (mh,)
            norm_spatial = None
            kw = {}
        mw = int(wbits.shape[1])
        # -- accumulator domain
        if in_bits == 1:
            lo, hi = 0, mw

            def to_float(v, mw=mw):
                return (2 * np.asarray(v, dtype=np.int64) - mw).astype(np.float64)
        else:
            vlo, vhi = q.value_range
            amax = max(abs(vlo), abs(vhi), abs(kw.get("pad_value", 0)) if kw.get("padding") else 0)
            bound = mw * amax
            if bound >= _EXACT_LIMIT:
                raise ExportError(f"{where}: the first-layer accumulator reaches {bound}, beyond "
                                  f"float32's exact integers (2**24); the torch model's float "
                                  "forward pass is not exact", "use fewer input bits or a "
                                  "smaller first layer")
            lo, hi = -bound, bound
            sc = 2.0 ** q.scale_log2

            def to_float(v, sc=sc):
                return np.asarray(v, dtype=np.int64).astype(np.float64) * sc
        name = f"{t}{i}"
        src = {"spec_index": i, "block": b}
        if not last:
            thr, direction = _fold_threshold(blk.norm, mh, norm_spatial, lo, hi, to_float, where)
            wbits = np.where(direction[:, None] < 0, 1 - wbits, wbits).astype(np.uint8)
            layer = Dense(name=name, kind=t, in_shape=shape, out_shape=conv_shape,
                          input_bits=in_bits, input_signed=q.signed if in_bits > 1 else False,
                          weights=wbits, acc_min=lo, acc_max=hi, direction=direction,
                          thresholds=thr, source=src, **kw)
            out.append(layer)
            shape = conv_shape
            if pool_k:
                ops = np.where(direction < 0, "and", "or") if before_bn else np.full(mh, "or")
                pshape = (shape[0] // pool_k, shape[1] // pool_k, shape[2])
                out.append(MaxPool(name=f"maxpool{i + 1}", in_shape=shape, out_shape=pshape,
                                   kernel=pool_k, pool_op=np.asarray(ops, dtype="<U3"),
                                   source={"spec_index": i + 1, "block": b,
                                           "torch_order": spec["pool_order"]}))
                shape = pshape
        else:
            if t != "fc" or pool_k:
                raise ExportError(f"{where}: the output layer must be fc without pooling",
                                  "end the network with an fc layer")
            kind, table, direction = _fold_scores(blk.norm, mh, lo, hi, to_float, where)
            if kind == "popcount" and direction[0] < 0:
                wbits = (1 - wbits).astype(np.uint8)
            out.append(Dense(name=name, kind=t, in_shape=shape, out_shape=(mh,),
                             input_bits=in_bits,
                             input_signed=q.signed if in_bits > 1 else False,
                             weights=wbits, acc_min=lo, acc_max=hi, direction=direction,
                             thresholds=None, score_kind=kind, score_table=table, source=src,
                             **kw))
            shape = (mh,)
        b += 1
    return out


def _np(t):
    return t.detach().cpu().numpy()


def _pool_ok(mod, k):
    def one(v):
        return v if isinstance(v, int) else (v[0] if v[0] == v[1] else None)
    return (one(mod.kernel_size) == k and one(mod.stride) == k and one(mod.padding) == 0
            and one(mod.dilation) == 1 and not mod.ceil_mode)


def _pad_value(where, core, ls, pad, in_bits, first, q) -> int:
    if not pad:
        return 0
    pv = float(core.pad_value)
    if in_bits == 1:
        if pv not in (-1.0, 1.0):
            what = "zero padding" if pv == 0 else f"pad value {pv:g}"
            raise ExportError(f"{where}: {what} on a binary feature map makes the layer ternary, "
                              "which binary hardware cannot compute",
                              "set this conv's pad_value to -1 or +1 in the spec and retrain")
        return 1 if pv > 0 else 0
    spv = ls.get("pad_value", -1)
    if not isinstance(spv, (int, float)) or spv != int(spv):
        raise ExportError(f"{where}: pad value {spv!r} of the integer input layer is not an "
                          "integer", "use an integer pad value (0 = zero padding)")
    spv = int(spv)
    if pv != spv * 2.0 ** q.scale_log2:
        raise ExportError(f"{where}: the model pads with {pv} but the spec's pad value {spv} "
                          f"scaled by 2**{q.scale_log2} is {spv * 2.0 ** q.scale_log2}",
                          "rebuild the model from its spec")
    lo, hi = q.int_range
    if not lo <= spv <= hi:
        raise ExportError(f"{where}: pad value {spv} is not representable in the "
                          f"{q.bits}-bit {'signed' if q.signed else 'unsigned'} input "
                          f"[{lo}, {hi}]", f"use a pad value in [{lo}, {hi}] (0 = zero padding)")
    return spv


# ---------------------------------------------------------------------------
# evaluating the model's own norm

def _same(a, b):
    """Elementwise float equality, NaN equal to NaN."""
    import torch
    return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())


def _eval_norm(norm, cand, spatial, where):
    """The norm's float outputs for candidate accumulator values.

    ``cand``: float64 numpy ``(R, C)`` (exactly representable in float32).  The
    tensor given to the norm has the layer's real shape ``(R, C, H, W)`` (every
    position of channel c holding ``cand[r, c]``) or ``(R, C)``.  Raises unless
    every position, a shifted storage offset, the reversed batch and (4-D) the
    channels-last format all give the same floats.  Returns ``(R, C)`` float32."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(cand)).to(torch.float32)
    r, c = x.shape
    if spatial is not None:
        x = x[:, :, None, None].expand(r, c, *spatial).contiguous()
    y = norm(x)
    variants = [norm(torch.cat([x[:1], x])[1:]), norm(x.flip(0)).flip(0)]
    if x.dim() == 4:
        variants.append(norm(x.contiguous(memory_format=torch.channels_last)))
    for v in variants:
        if v.shape != y.shape or not _same(v, y):
            raise ExportError(f"{where}: its norm gives different floats for the same "
                              "accumulator value at different positions or memory layouts, "
                              "so no single threshold reproduces it exactly",
                              "use bnnhw.train.layers.BatchNorm, whose eval path is "
                              "position-independent")
    if x.dim() == 4:
        y0 = y[:, :, :1, :1]
        if not _same(y, y0.expand_as(y)):
            raise ExportError(f"{where}: its norm output depends on the position in the "
                              "feature map", "use bnnhw.train.layers.BatchNorm")
        y = y[:, :, 0, 0]
    if y.dtype != torch.float32:
        raise ExportError(f"{where}: the norm computes in {y.dtype}, not float32",
                          "keep the model in float32")
    return y.contiguous()


def _decide(norm, vals, spatial, where):
    """Per-channel sign decision (``norm(value) >= 0``) for ``vals`` ``(R, C)``."""
    return (_eval_norm(norm, vals, spatial, where) >= 0).numpy()


def _fold_threshold(norm, mh, spatial, lo, hi, to_float, where):
    """Integer thresholds (in the inverted-row domain) and directions for one layer."""
    lo_v = np.full(mh, lo, np.int64)
    hi_v = np.full(mh, hi, np.int64)

    def dec(v):
        return _decide(norm, to_float(v)[None, :], spatial, where)[0]

    dlo, dhi = dec(lo_v), dec(hi_v)
    inc = ~dlo & dhi
    decr = dlo & ~dhi
    const = dlo == dhi
    a, b = lo_v.copy(), hi_v.copy()      # inc: d(a)=F, d(b)=T; dec: d(a)=T, d(b)=F
    active = inc | decr
    while True:
        act = active & (b - a > 1)
        if not act.any():
            break
        m = np.where(act, (a + b) // 2, a)
        dm = dec(m)
        move_b = act & (inc == dm)
        b = np.where(move_b, m, b)
        a = np.where(act & ~move_b, m, a)
    # thresholds in the torch domain: inc -> first passing value b; dec -> last passing a
    # -- verify both sides, in one tensor holding different values
    rows = np.stack([np.where(inc, b - 1, a), np.where(inc, b, a + 1)])
    rows = np.where(active, rows, lo_v)
    got = _decide(norm, to_float(rows), spatial, where)
    if active.any() and not (np.all(~got[0][inc]) and np.all(got[1][inc])
                             and np.all(got[0][decr]) and np.all(~got[1][decr])):
        raise ExportError(f"{where}: BatchNorm + sign is not monotone in the accumulator",
                          "check the norm's parameters for NaN/inf")
    if const.any():
        samp = np.unique(np.linspace(lo, hi, 9).round().astype(np.int64))
        got = _decide(norm, to_float(np.repeat(samp[:, None], mh, axis=1)), spatial, where)
        if not np.all(got[:, const] == dlo[const][None, :]):
            raise ExportError(f"{where}: BatchNorm + sign is not monotone in the accumulator",
                              "check the norm's parameters for NaN/inf")
    n_vals = hi - lo + 1
    per_row = mh * (int(np.prod(spatial)) if spatial else 1)
    if n_vals * per_row <= _EXHAUSTIVE_LIMIT:
        _check_exhaustive(norm, mh, spatial, lo, hi, to_float, where, inc, decr, a, b, dlo)
    elif n_vals * mh <= _EXHAUSTIVE_LIMIT:
        _check_exhaustive(norm, mh, (1, 1) if spatial else None, lo, hi, to_float, where,
                          inc, decr, a, b, dlo)
    thr = np.where(inc, b, np.where(decr, lo + hi - a, np.where(dlo, lo, hi + 1)))
    direction = np.where(inc, 1, np.where(decr, -1, 0)).astype(np.int8)
    return thr.astype(np.int64), direction


def _check_exhaustive(norm, mh, spatial, lo, hi, to_float, where, inc, decr, a, b, dlo):
    """Evaluate every reachable accumulator value and compare with the folded step."""
    per_row = mh * (int(np.prod(spatial)) if spatial else 1)
    chunk = max(1, (1 << 20) // per_row)
    for s in range(lo, hi + 1, chunk):
        v = np.arange(s, min(hi, s + chunk - 1) + 1, dtype=np.int64)
        got = _decide(norm, to_float(np.repeat(v[:, None], mh, axis=1)), spatial, where)
        want = np.where(inc, v[:, None] >= b, np.where(decr, v[:, None] <= a, dlo))
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)[0]
            raise ExportError(f"{where}: BatchNorm + sign of output {bad[1]} is not monotone "
                              f"in the accumulator (value {v[bad[0]]})",
                              "check the norm's parameters for NaN/inf")


def _fold_scores(norm, mh, lo, hi, to_float, where):
    """Score representation of the output layer: ("popcount", None, dirs) or
    ("rank_table", table, dirs)."""
    n = hi - lo + 1
    if n * mh > _TABLE_LIMIT:
        raise ExportError(f"{where}: the output layer has {n} reachable accumulator values per "
                          "class, too many to verify its scores exactly",
                          "add a hidden layer (binary inputs) before the output layer, or use "
                          "fewer input bits")
    vals = np.arange(lo, hi + 1, dtype=np.int64)
    g = []
    chunk = max(1, (1 << 20) // mh)
    for s in range(0, n, chunk):
        v = vals[s:s + chunk]
        g.append(_eval_norm(norm, to_float(np.repeat(v[:, None], mh, axis=1)), None, where).numpy())
    g = np.concatenate(g)                                    # (n, mh) float32
    return scores_from_values(g, where)


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def disagreements(ir: NetworkIR, model, images, *, chunk: int = 256) -> int:
    """Number of images whose golden class (:class:`bnnhw.golden.GoldenModel`) differs
    from the torch model's (eval mode)."""
    import torch

    from .golden import GoldenModel

    images = np.asarray(images)
    g = GoldenModel(ir, chunk=chunk)
    was = model.training
    model.eval()
    bad = 0
    try:
        with torch.no_grad():
            for s in range(0, len(images), chunk):
                xb = images[s:s + chunk]
                t = model(torch.from_numpy(np.ascontiguousarray(xb))).argmax(1).numpy()
                bad += int((g.predict(xb) != t).sum())
    finally:
        model.train(was)
    return bad
