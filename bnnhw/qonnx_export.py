"""Network IR -> QONNX model, exactly, in Brevitas's node patterns.

:func:`export_qonnx` writes a bnnhw network as a QONNX model (opset 13, the
quantisers in the ``qonnx.custom_op.general`` domain) that FINN / qonnx
tools load, and that the reference execution (:mod:`bnnhw.qonnx_ref`) runs to
the golden model's class on every uint8 image fed as ``float32(raw) / 255``.

Node patterns (as Brevitas exports a BNN):

- input, 1 bit: ``Mul(2) -> Sub(c) -> BipolarQuant`` with ``c = 2 * float32(T)
  / 255``: the sign of a float subtraction is exact, so ``+1 iff raw >= T``;
  B bits: ``Mul(255) -> Quant(scale 1, 8 bits, ROUND) -> Sub(offset) ->
  Mul(2**scale_log2)``, exactly ``(raw - offset) * 2**scale_log2``;
- fc: ``weights (+-1, [out, in]) -> BipolarQuant -> Transpose -> MatMul``;
  conv: ``weights (+-1, [OC, C, K, K]) -> BipolarQuant -> Conv``;
- hidden activation: ``BatchNormalization -> BipolarQuant`` whose BN puts the
  threshold half a step from every reachable accumulator (``epsilon = 0``,
  ``var = 1``, ``scale = +1 / -1 / 0`` for increasing / decreasing (rows
  exported un-inverted) / constant channels), so it is exact in float32;
- max-pool: after the BipolarQuant (OR on bits) or, where the IR pools with
  AND, between the conv and its BN (pooling the accumulator);
- flatten: ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``;
- output: ``MatMul`` (``-> Mul(-1)`` for inverted score rows): the scores are
  ``2 * popcount - MW`` (or its negation), whose argmax is the IR's.

Guarantee: the exported model imports back (:func:`bnnhw.qonnx_import.import_qonnx`)
to the same IR (weights, thresholds, directions, pool ops, scores, input
quantisation, layer names), which :func:`export_qonnx` checks before it
returns, together with golden vs reference on ``self_check`` images.
Refused (a clear error): rank-table scores (a per-class output norm), a
binary conv with padding, integer inputs not covering all raw values 0..255.
"""
from __future__ import annotations

import json

import numpy as np

from . import layout
from .errors import BnnhwError
from .ir import Dense, MaxPool, NetworkIR, _jsonable
from .qonnx_ref import EXPORT_DOMAIN, require_onnx

__all__ = ["export_qonnx", "ir_differences", "QonnxExportError"]

OPSET = 13


class QonnxExportError(BnnhwError):
    """A network the QONNX exporter cannot write exactly; the message says which layer."""


class _Builder:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, stem):
        self.n += 1
        return f"{stem}_{self.n}"

    def const(self, stem, arr):
        from onnx import numpy_helper
        nm = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def node(self, op, inputs, domain="", stem=None, **attrs):
        from onnx import helper
        nm = self.name(stem or op)
        out = nm + "_out"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=nm, domain=domain,
                                           **attrs))
        return out

    def bipolar(self, x):
        return self.node("BipolarQuant", [x, self.const("scale", np.float32(1.0))],
                         domain=EXPORT_DOMAIN)

    def flatten(self, x):
        shp = self.node("Shape", [x])
        n = self.node("Gather", [shp, self.const("idx", np.int64(0))], axis=0)
        u = self.node("Unsqueeze", [n, self.const("axes", np.array([0], np.int64))])
        cat = self.node("Concat", [u, self.const("minus1", np.array([-1], np.int64))], axis=0)
        return self.node("Reshape", [x, cat])


def export_qonnx(ir: NetworkIR, path: str | None = None, *, self_check: int = 64):
    """Write ``ir`` as a QONNX ``onnx.ModelProto`` (saved to ``path`` if given);
    raises QonnxExportError for what QONNX cannot express exactly, and checks
    the round trip (see module doc) before returning."""
    onnx = require_onnx()
    from onnx import helper
    ir.validate("IR")
    b = _Builder()
    q = ir.input
    x = "global_in"
    first = ir.layers[0]
    if first.kind == "fc":
        x = b.flatten(x)
    if q.bits == 1:
        t = min(max(int(q.threshold), 0), 256)
        c = np.float32(2) * (np.float32(t) / np.float32(255))
        x = b.node("Mul", [x, b.const("two", np.float32(2.0))])
        x = b.node("Sub", [x, b.const("thr", np.float32(c))])
        x = b.bipolar(x)
        unit = 1.0
    else:
        if (q.raw_min, q.raw_max) != (0, 255) or q.raw_range != (0, 255):
            raise QonnxExportError(f"the {q.bits}-bit input represents raw values "
                                   f"{q.raw_range} only; a QONNX input quantiser sees all of "
                                   "0..255", "export networks with an 8-bit input over 0..255")
        x = b.node("Mul", [x, b.const("s255", np.float32(255.0))])
        x = b.node("Quant", [x, b.const("scale", np.float32(1.0)),
                             b.const("zeropt", np.float32(0.0)), b.const("bitwidth",
                                                                         np.float32(8.0))],
                   domain=EXPORT_DOMAIN, signed=0, narrow=0, rounding_mode="ROUND")
        if q.offset:
            x = b.node("Sub", [x, b.const("offset", np.float32(q.offset))])
        sl = q.scale_log2 or 0
        if sl:
            x = b.node("Mul", [x, b.const("scale", np.float32(2.0 ** sl))])
        unit = 2.0 ** sl
    layers = ir.layers
    for i, l in enumerate(layers):
        if isinstance(l, MaxPool):
            continue                  # written with the conv before it
        where = f"layer {l.name}"
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if l.kind == "fc" and i > 0 and len(l.in_shape) == 3:
            x = b.flatten(x)
        if l.is_output:
            if l.score_kind != "popcount":
                raise QonnxExportError(f"{where}: the output layer's scores are a per-class rank "
                                       "table (a per-class output norm), which QONNX elementwise "
                                       "ops cannot reproduce exactly",
                                       "train with a scalar output norm (last_norm scalar, the "
                                       "default)")
            neg = int(l.direction[0]) < 0
            rows = (1 - l.weights) if neg else l.weights
        else:
            rows = np.where(np.asarray(l.direction)[:, None] < 0, 1 - l.weights, l.weights)
        wf = layout.from_bits(rows).astype(np.float32)
        if l.kind == "conv":
            if l.padding and l.input_bits == 1:
                raise QonnxExportError(f"{where}: binary padding (pad value "
                                       f"{'+1' if l.pad_value else '-1'}) has no QONNX Conv "
                                       "equivalent (Conv pads with 0)",
                                       "use a network without padding (e.g. cnv)")
            if l.padding and l.pad_value != 0:
                raise QonnxExportError(f"{where}: integer padding with {l.pad_value}, but a "
                                       "QONNX Conv pads with 0", "pad the first layer with 0")
            c = l.in_shape[2]
            w4 = layout.conv_weight_from_matrix(wf, c, l.kernel)
            wq = b.bipolar(b.const("W", w4))
            p = int(l.padding)
            x = b.node("Conv", [x, wq], kernel_shape=[l.kernel, l.kernel],
                       strides=[l.stride, l.stride], pads=[p, p, p, p], dilations=[1, 1],
                       group=1)
        else:
            if len(l.in_shape) == 3:
                hh, ww, cc = l.in_shape
                wf = layout.fc_weight_to_torch(wf, cc, hh, ww)
            wq = b.node("Transpose", [b.bipolar(b.const("W", wf))], perm=[1, 0])
            x = b.node("MatMul", [x, wq])
        if l.is_output:
            if neg:
                x = b.node("Mul", [x, b.const("neg", np.float32(-1.0))])
            break
        # pooling placement
        pool_before = pool_after = None
        if isinstance(nxt, MaxPool):
            ops = np.asarray(nxt.pool_op).astype(str)
            if np.all(ops == "or"):
                pool_after = nxt
            elif np.array_equal(ops, np.where(np.asarray(l.direction) < 0, "and", "or")):
                pool_before = nxt
            else:
                raise QonnxExportError(f"{nxt.name}: AND-pooled channels that are not the "
                                       "decreasing channels of the layer before",
                                       "export from the checkpoint the IR came from")
        if pool_before is not None:
            k = pool_before.kernel
            x = b.node("MaxPool", [x], kernel_shape=[k, k], strides=[k, k])
        x = _bn_sign(b, x, l, unit, where)
        if pool_after is not None:
            k = pool_after.kernel
            x = b.node("MaxPool", [x], kernel_shape=[k, k], strides=[k, k])
        unit = 1.0
    out = x
    c, h, w = q.channels, q.height, q.width
    graph = helper.make_graph(
        b.nodes, "bnnhw",
        [helper.make_tensor_value_info("global_in", onnx.TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, [1, ir.num_classes])],
        initializer=b.inits)
    model = helper.make_model(graph, producer_name="bnnhw",
                              opset_imports=[helper.make_opsetid("", OPSET),
                                             helper.make_opsetid(EXPORT_DOMAIN, 1)])
    model.ir_version = 8
    for k in ("dataset", "split", "spec"):
        v = getattr(ir, k)
        if v:
            p = model.metadata_props.add()
            p.key, p.value = f"bnnhw.{k}", json.dumps(_jsonable(v), sort_keys=True)
    onnx.checker.check_model(model)
    # the round trip, checked
    from .qonnx_import import import_qonnx
    back = import_qonnx(model, self_check=self_check, source="exported QONNX")
    diff = ir_differences(ir, back)
    if diff:
        raise QonnxExportError(f"internal error: the exported QONNX model imports to a different "
                               f"IR ({'; '.join(diff[:3])})", "please report this with the model")
    if path is not None:
        onnx.save(model, path)
    return model


def _bn_sign(b, x, l: Dense, unit, where):
    """BatchNormalization + BipolarQuant reproducing ``acc >= T`` exactly (module doc)."""
    mh = l.mh
    t = np.asarray(l.thresholds, np.int64)
    d = np.asarray(l.direction)
    if l.input_bits == 1:
        a_inc = 2 * t - l.mw                 # dot of the stored row
        a_dec = l.mw - 2 * t                 # dot of the un-inverted row
    else:
        a_inc, a_dec = t, -t
    if max(np.abs(a_inc).max(), np.abs(a_dec).max()) >= 1 << 22:
        raise QonnxExportError(f"{where}: thresholds beyond float32's exact half-integers",
                               "use a smaller layer")
    scale = np.where(d > 0, 1.0, np.where(d < 0, -1.0, 0.0))
    mean = np.where(d > 0, (a_inc - 0.5) * unit, np.where(d < 0, (a_dec + 0.5) * unit, 0.0))
    bias = np.where(d == 0, np.where(t <= l.acc_min, 1.0, -1.0), 0.0)
    f32 = np.float32
    x = b.node("BatchNormalization",
               [x, b.const("bn_scale", scale.astype(f32)), b.const("bn_bias", bias.astype(f32)),
                b.const("bn_mean", mean.astype(f32)), b.const("bn_var", np.ones(mh, f32))],
               epsilon=0.0)
    return b.bipolar(x)


def ir_differences(a: NetworkIR, b: NetworkIR) -> list[str]:
    """What differs between two IRs in what they compute and how they are laid out
    (input quantisation, layer names/kinds/shapes, weights, thresholds, directions,
    pool ops, scores); provenance and metadata are not compared."""
    out = []
    ia, ib = a.input.to_json(), b.input.to_json()
    if ia != ib:
        out.append(f"input {ia} != {ib}")
    if a.num_classes != b.num_classes:
        out.append(f"num_classes {a.num_classes} != {b.num_classes}")
    if len(a.layers) != len(b.layers):
        return out + [f"{len(a.layers)} layers != {len(b.layers)}"]
    for la, lb in zip(a.layers, b.layers):
        for f in ("name", "kind", "in_shape", "out_shape", "kernel"):
            if getattr(la, f, None) != getattr(lb, f, None):
                out.append(f"{la.name}.{f}: {getattr(la, f, None)} != {getattr(lb, f, None)}")
        if isinstance(la, MaxPool):
            if not np.array_equal(np.asarray(la.pool_op).astype(str),
                                  np.asarray(lb.pool_op).astype(str)):
                out.append(f"{la.name}.pool_op")
            continue
        for f in ("input_bits", "input_signed", "acc_min", "acc_max", "stride", "padding",
                  "pad_value", "score_kind"):
            if getattr(la, f) != getattr(lb, f):
                out.append(f"{la.name}.{f}: {getattr(la, f)} != {getattr(lb, f)}")
        for f in ("weights", "direction", "thresholds", "score_table"):
            va, vb = getattr(la, f), getattr(lb, f)
            if (va is None) != (vb is None) or (va is not None and not np.array_equal(va, vb)):
                out.append(f"{la.name}.{f}")
    return out
