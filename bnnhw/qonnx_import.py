"""Brevitas / QONNX binarized networks -> network IR, exactly.

:func:`import_qonnx` reads a W1A1 QONNX model (as Brevitas exports it for FINN)
and returns a :class:`bnnhw.ir.NetworkIR` whose golden model gives the same
class as the graph itself, run by the reference executor of
:mod:`bnnhw.qonnx_ref` (``onnx.reference`` + the QONNX ops), on every uint8
input image (fed as ``float32(raw) / 255``).

Nothing is derived from a formula: every integer comes from evaluating the
graph's own ops with the reference executor.

- Input: the ops between the graph input and the first MatMul/Gemm/Conv
  (scaling Mul/Add/Sub/Div, flatten, the input quantiser) are evaluated on all
  256 raw values.  Two values ``{-s, +s}`` (``s`` a power of two) rising with
  ``raw`` give a 1-bit input ``raw >= T``; values ``(raw - offset) * 2**k`` give
  a B-bit integer input.  Anything else (e.g. Brevitas CNV's rounded 8-bit
  quantiser of ``2x - 1``) is refused.
- Weights: the constant weight input of each MatMul/Gemm/Conv (after its
  BipolarQuant / Transpose, constant-folded by the reference executor) must be
  ``+-s_c`` per output channel with ``s_c`` a power of two, so the graph's
  float32 accumulation is exact and equals ``s_in * s_c * dot``.
- Hidden activations: the elementwise ops between a layer's accumulator (or
  its MaxPool) and the next pool / flatten / layer (BatchNormalization,
  Mul/Add/Sub/Div, BipolarQuant or a Quant) are evaluated on **every**
  reachable accumulator value of every channel, in the tensor's real shape
  (every position must agree); they must give ``{-s, +s}`` and be a monotone
  step in the accumulator.  Increasing -> threshold; decreasing -> the weight
  row is inverted; constant -> a constant channel (the IR's conventions).
- MaxPool after the quantiser pools bits (OR); MaxPool directly after a
  conv pools the accumulator, which with a monotone BN+sign is OR for
  increasing and AND for decreasing channels.
- Output: the ops after the last layer (e.g. TensorNorm as Sub/Pow/Div/Mul/
  Add) are evaluated on every reachable accumulator value of every class; the
  scores are the raw popcounts when all classes share one strictly monotone
  function (a negative scale inverts the rows: argmax stays argmax) and an
  exact rank table otherwise (:func:`bnnhw.export.scores_from_values`).

Anything else (multi-bit weights or activations, a non-bipolar quantiser, an
op outside the supported list, a float graph, skip connections) is a
:class:`QonnxImportError` naming the node and its op.
"""
from __future__ import annotations

import hashlib
import math
import os
import time

import numpy as np

from . import layout
from .errors import BnnhwError, ModelFileError
from .ir import Dense, InputQuant, MaxPool, NetworkIR, _jsonable
from .scores import scores_from_values
from .qonnx_ref import QONNX_DOMAINS, Reference, raw_to_float, require_onnx

__all__ = ["import_qonnx", "is_onnx_file", "QonnxImportError", "SUPPORTED_OPS"]

_QUANT_OPS = ("BipolarQuant", "Quant")
_ELEMENTWISE = ("Mul", "Add", "Sub", "Div", "Identity", "BatchNormalization")
_FLATTEN = ("Reshape", "Flatten")
_WEIGHTED = ("MatMul", "Gemm", "Conv")
_SHAPE_OPS = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice")
# ops allowed on constants only (folded by the reference executor)
_CONST_OPS = ("Constant", "Transpose", "Pow", "Sqrt", "Neg", "Reciprocal", "Reshape",
              "Mul", "Add", "Sub", "Div", "Identity", "BipolarQuant", "Quant") + _SHAPE_OPS
SUPPORTED_OPS = {
    "data path": sorted(set(_QUANT_OPS + _ELEMENTWISE + _FLATTEN + _WEIGHTED + ("MaxPool",))),
    "shape path": sorted(_SHAPE_OPS),
    "constants": sorted(set(_CONST_OPS)),
}
_CHUNK = 1 << 21        # floats per reference evaluation


class QonnxImportError(ModelFileError):
    """An ONNX model bnnhw cannot import exactly; the message names the node and op."""


# ---------------------------------------------------------------------------
# detection

_PROTO_TAGS = {0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42, 0x72}


def is_onnx_file(path: str) -> bool:
    """True if ``path`` looks like an ONNX ModelProto (by content, not extension):
    protobuf field 1 (``ir_version``, a small varint) followed by another
    ModelProto field."""
    try:
        with open(path, "rb") as f:
            head = f.read(3)
    except OSError:
        return False
    return (len(head) == 3 and head[0] == 0x08 and 1 <= head[1] < 0x80
            and head[2] in _PROTO_TAGS)


# ---------------------------------------------------------------------------
# graph helpers

def _node_label(n, i):
    name = n.name or f"#{i}"
    return f"node {name!r} ({n.op_type})"


def _attrs(n):
    import onnx
    out = {}
    for a in n.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _pow2(x) -> bool:
    x = float(x)
    if not (x > 0 and math.isfinite(x)):
        return False
    m, _ = math.frexp(x)
    return m == 0.5


class _Graph:
    """The parsed graph: constants folded, the data path as a chain of nodes."""

    def __init__(self, model, where):
        onnx = require_onnx()
        from onnx import numpy_helper
        self.model = model
        self.where = where
        g = model.graph
        self.nodes = list(g.node)
        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.inits = inits
        inputs = [i for i in g.input if i.name not in inits]
        if len(inputs) != 1:
            raise QonnxImportError(f"{where}: the graph has {len(inputs)} inputs "
                                   f"({[i.name for i in inputs]}); a classifier has one image input",
                                   "export the model with a single input")
        if len(g.output) != 1:
            raise QonnxImportError(f"{where}: the graph has {len(g.output)} outputs; bnnhw "
                                   "imports a classifier with one score output",
                                   "export the model with one output (the class scores)")
        inp = inputs[0]
        self.input_name = inp.name
        self.output_name = g.output[0].name
        tt = inp.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if tt.elem_type != onnx.TensorProto.FLOAT:
            raise QonnxImportError(f"{where}: the input {inp.name!r} is not float32",
                                   "export with a float image input (raw / 255)")
        if len(dims) != 4 or any(d is None or d < 1 for d in dims[1:]):
            raise QonnxImportError(f"{where}: the input {inp.name!r} has shape {dims}; bnnhw "
                                   "needs an image input [N, C, H, W] with fixed C, H, W",
                                   "export with a fixed input shape such as [1, 1, 28, 28]")
        self.chw = tuple(int(d) for d in dims[1:])
        # classify tensors: const (initializers, Constant outputs, shapes) or data
        kind = {k: "const" for k in inits}
        kind[self.input_name] = "data"
        self.data_nodes = []
        for i, n in enumerate(self.nodes):
            label = _node_label(n, i)
            ins = [t for t in n.input if t]
            for t in ins:
                if t not in kind:
                    raise QonnxImportError(f"{where}: {label} reads {t!r}, which no earlier node "
                                           "produces (the graph is not topologically sorted)",
                                           "re-export the model, or sort it with onnx tools")
            if n.domain not in ("", "ai.onnx") + QONNX_DOMAINS:
                raise QonnxImportError(f"{where}: {label} is in the domain {n.domain!r}, "
                                       "which bnnhw does not import",
                                       "export plain QONNX (BipolarQuant/Quant and standard "
                                       "ONNX ops), not FINN-transformed graphs")
            data_in = [t for t in ins if kind[t] == "data"]
            if n.op_type == "Shape" or not data_in:
                ok = n.op_type in _CONST_OPS or n.op_type == "Shape"
                if not ok:
                    raise QonnxImportError(f"{where}: {label}: op {n.op_type} is not supported "
                                           "(on constants bnnhw folds "
                                           f"{', '.join(SUPPORTED_OPS['constants'])})",
                                           "simplify the constant subgraph before importing")
                for t in n.output:
                    kind[t] = "const"
                continue
            if n.op_type not in SUPPORTED_OPS["data path"]:
                raise QonnxImportError(f"{where}: {label}: op {n.op_type} is not supported on the "
                                       "data path; bnnhw imports W1A1 networks built from "
                                       f"{', '.join(SUPPORTED_OPS['data path'])}",
                                       "see docs/qonnx.md for the supported patterns")
            if len(data_in) != 1 or (n.input[0] != data_in[0]):
                raise QonnxImportError(f"{where}: {label} takes {len(data_in)} data tensors "
                                       f"(or its data tensor is not its first input); bnnhw "
                                       "imports a chain of layers on constant weights",
                                       "no skip connections or float weight-by-activation products")
            if n.op_type == "BatchNormalization" and (
                    _attrs(n).get("training_mode", 0) or len([t for t in n.output if t]) > 1):
                raise QonnxImportError(f"{where}: {label} is in training mode",
                                       "export the model in eval mode (model.eval())")
            for t in n.output:
                kind[t] = "data"
            self.data_nodes.append((i, n))
        self.kind = kind
        # the data path must be a chain from the input to the output
        prev = self.input_name
        for i, n in self.data_nodes:
            if n.input[0] != prev:
                raise QonnxImportError(f"{where}: {_node_label(n, i)} reads {n.input[0]!r}, not "
                                       f"the previous layer's {prev!r}: the data path branches",
                                       "bnnhw imports a chain of layers (no skip connections)")
            if len([t for t in n.output if t]) != 1:
                raise QonnxImportError(f"{where}: {_node_label(n, i)} has several outputs",
                                       "export the model in inference mode")
            prev = n.output[0]
        if prev != self.output_name:
            raise QonnxImportError(f"{where}: the graph output {self.output_name!r} is not the end "
                                   f"of the data path ({prev!r})",
                                   "export the class scores as the only output")
        uses = {}
        for i, n in enumerate(self.nodes):
            for t in n.input:
                if t and kind.get(t) == "data" and n.op_type != "Shape":
                    uses.setdefault(t, []).append(i)
        for t, u in uses.items():
            if len(u) > 1:
                raise QonnxImportError(f"{where}: the tensor {t!r} feeds {len(u)} nodes: the data "
                                       "path branches", "bnnhw imports a chain of layers")
        # constants and shapes by one reference run on a zero image
        self.ref = Reference(model)
        c, h, w = self.chw
        vals = self.ref._sess.run(None, {self.input_name: np.zeros((1, c, h, w), np.float32)},
                                  intermediate=True)
        self.values = {k: np.asarray(v) for k, v in vals.items()}
        for k, v in inits.items():
            self.values.setdefault(k, v)

    def const(self, name):
        if self.kind.get(name) != "const":
            return None
        return self.values[name]

    def shape(self, name):
        return tuple(self.values[name].shape)


# ---------------------------------------------------------------------------
# evaluating parts of the graph

def _sub_model(G, nodes, t_in, t_out):
    """A model of ``nodes`` (elementwise, constants as initializers) from t_in to t_out."""
    import onnx
    from onnx import helper, numpy_helper
    inits, seen = [], set()
    for n in nodes:
        for t in n.input:
            if t and t != t_in and G.kind.get(t) == "const" and t not in seen:
                seen.add(t)
                inits.append(numpy_helper.from_array(np.asarray(G.values[t]), t))
    graph = helper.make_graph(list(nodes), "part",
                              [helper.make_tensor_value_info(t_in, onnx.TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info(t_out, onnx.TensorProto.FLOAT, None)],
                              initializer=inits)
    m = helper.make_model(graph, opset_imports=list(G.model.opset_import))
    m.ir_version = G.model.ir_version
    return Reference(m)


def _eval_part(ref, cand, shape1, where):
    """Evaluate an elementwise part on per-channel candidate values.

    ``cand``: float64 ``(R, C)`` (exact in float32); ``shape1``: the real tensor
    shape ``(1, C[, H, W])``.  Each channel's candidate fills every position;
    every position must give the same float.  Returns float32 ``(R, C)``."""
    r, c = cand.shape
    spatial = tuple(shape1[2:])
    per = c * int(np.prod(spatial)) if spatial else c
    if spatial and per > _CHUNK:
        spatial = (1, 1)
        per = c
    step = max(1, _CHUNK // per)
    out = []
    for s in range(0, r, step):
        x = cand[s:s + step].astype(np.float32)
        if spatial:
            x = np.ascontiguousarray(np.broadcast_to(x[:, :, None, None], x.shape + spatial))
        y = np.asarray(ref.run_float(x)[0])
        if y.shape != x.shape:
            raise QonnxImportError(f"{where}: the ops change the tensor shape {x.shape} -> "
                                   f"{y.shape}", "use elementwise per-channel ops only")
        if spatial:
            y0 = y[:, :, :1, :1]
            if not np.array_equal(y, np.broadcast_to(y0, y.shape), equal_nan=True):
                raise QonnxImportError(f"{where}: the ops give different values for the same "
                                       "accumulator at different positions of the feature map",
                                       "use per-channel (not per-position) parameters")
            y = y[:, :, 0, 0]
        out.append(y.astype(np.float32))
    return np.concatenate(out)


def _labels(G, nodes):
    idx = {id(n): i for i, n in enumerate(G.nodes)}
    return ", ".join(_node_label(n, idx[id(n)]) for n in nodes)


# ---------------------------------------------------------------------------
# the importer

def import_qonnx(path_or_model, *, self_check: int = 64, source: str | None = None) -> NetworkIR:
    """Import a W1A1 QONNX / Brevitas model (a path or an ``onnx.ModelProto``).

    Guarantee: the returned IR's golden model gives, for every uint8 image,
    the class of the graph's argmax under the reference executor (ties to the
    lowest index).  ``self_check``: random images (plus all-0 and all-255)
    on which that is verified after import; a disagreement is an error."""
    onnx = require_onnx()
    src_hash = None
    if isinstance(path_or_model, (str, os.PathLike)):
        path = os.fspath(path_or_model)
        if not os.path.exists(path):
            raise ModelFileError(f"model file {path!r} does not exist", "check the path")
        try:
            model = onnx.load(path)
        except Exception as e:  # noqa: BLE001 - any protobuf failure means unreadable
            raise ModelFileError(f"{path!r} is not a readable ONNX model ({type(e).__name__}: "
                                 f"{str(e)[:120]})", "give a QONNX .onnx file") from None
        source = source or path
        with open(path, "rb") as f:
            src_hash = hashlib.sha256(f.read()).hexdigest()
    else:
        model = path_or_model
        source = source or "onnx model"
    where = os.path.basename(source)
    try:
        ir = _import(model, where)
    except BnnhwError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as e:
        raise QonnxImportError(f"{where}: cannot evaluate the graph ({type(e).__name__}: "
                               f"{str(e)[:200]})", "check that the model is a valid QONNX "
                               "export (see docs/qonnx.md)") from None
    meta = {p.key: p.value for p in model.metadata_props}
    import json
    for k in ("dataset", "split", "spec"):
        if f"bnnhw.{k}" in meta:
            try:
                setattr(ir, k, json.loads(meta[f"bnnhw.{k}"]))
            except ValueError:
                pass
    ir.provenance = _jsonable({
        "importer": "bnnhw.qonnx_import", "source": source, "source_sha256": src_hash,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "reference_executor": "onnx.reference.ReferenceEvaluator + QONNX ops (bnnhw.qonnx_ref)",
        "onnx": onnx.__version__, "numpy": np.__version__,
        "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "input_convention": "x = float32(raw) / 255, NCHW"})
    ir.validate("imported IR")
    if self_check:
        bad, n = check_against_reference(ir, model, self_check)
        if bad:
            raise QonnxImportError(f"internal error: the imported golden model disagrees with "
                                   f"the reference execution on {bad} of {n} images",
                                   "please report this with the model")
        ir.provenance["self_check"] = {"images": n, "disagreements": 0}
    return ir


def check_against_reference(ir, model, count: int = 64, seed: int = 0):
    """``(disagreements, images)``: golden vs reference argmax on ``count`` random
    uint8 images plus the all-0 and all-255 images."""
    from .golden import GoldenModel
    q = ir.input
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, size=(int(count) + 2, q.channels, q.height, q.width),
                        dtype=np.uint8)
    imgs[0] = 0
    imgs[1] = 255
    ref = Reference(model).predict(imgs)
    gold = GoldenModel(ir).predict(imgs)
    return int((ref != gold).sum()), int(len(imgs))


def _import(model, where) -> NetworkIR:
    G = _Graph(model, where)
    chain = [n for _, n in G.data_nodes]
    wpos = [k for k, n in enumerate(chain) if n.op_type in _WEIGHTED]
    if not wpos:
        raise QonnxImportError(f"{where}: no MatMul, Gemm or Conv layer on the data path",
                               "bnnhw imports binarized classifiers")
    c, h, w = G.chw
    # -- input segment
    seg = chain[:wpos[0]]
    lay = ("map", c, h, w)
    for n in seg:
        if n.op_type in _FLATTEN:
            lay = _flatten(G, n, lay)
        elif n.op_type not in _ELEMENTWISE + _QUANT_OPS or n.op_type == "BatchNormalization":
            raise QonnxImportError(f"{where}: {_labels(G, [n])} before the first layer; the "
                                   "input may only be scaled (Mul/Add/Sub/Div), flattened and "
                                   "quantised", "see docs/qonnx.md")
    first = chain[wpos[0]]
    q, s_in = _input_quant(G, seg, first, lay)
    shape = (h, w, c)                        # IR shape of the current map/vector
    layers = []
    in_bits = q.bits
    for li, k in enumerate(wpos):
        node = chain[k]
        last = li == len(wpos) - 1
        end = wpos[li + 1] if not last else len(chain)
        seg = chain[k + 1:end]
        lw = f"{where}: {_labels(G, [node])}"
        wbits, s_c, kw, lay_out, mw, mh = _weighted(G, node, lay, shape, in_bits, q, lw)
        kind = "conv" if node.op_type == "Conv" else "fc"
        if in_bits == 1:
            lo, hi = 0, mw
            unit = s_in

            def to_float(v, mw=mw):
                return (2 * np.asarray(v, np.int64) - mw).astype(np.float64)
        else:
            vlo, vhi = q.value_range
            amax = max(abs(vlo), abs(vhi))
            lo, hi = -mw * amax, mw * amax
            if hi >= 1 << 24:
                raise QonnxImportError(f"{lw}: the first-layer accumulator reaches {hi}, beyond "
                                       "float32's exact integers; the graph's float accumulation "
                                       "is not exact", "use fewer input bits or a smaller layer")
            unit = s_in

            def to_float(v):
                return np.asarray(v, np.int64).astype(np.float64)
        scale = unit * s_c                        # float of one accumulator step, per channel
        out_shape = (lay_out[2], lay_out[3], mh) if kind == "conv" else (mh,)
        name = f"{kind}{len(layers)}"
        src = {"onnx_node": node.name or f"#{G.nodes.index(node)}", "onnx_op": node.op_type}
        if last:
            for n in seg:
                if n.op_type not in _ELEMENTWISE:
                    raise QonnxImportError(f"{where}: {_labels(G, [n])} after the last layer; "
                                           "the output must be the class scores (elementwise "
                                           "ops such as a norm only)", "see docs/qonnx.md")
            vals = np.arange(lo, hi + 1, dtype=np.int64)
            if len(vals) * mh > (1 << 24):
                raise QonnxImportError(f"{lw}: too many accumulator values to verify the scores",
                                       "add a hidden layer before the output layer")
            cand = to_float(vals)[:, None] * scale[None, :]
            if seg:
                ref = _sub_model(G, seg, node.output[0], seg[-1].output[0])
                g = _eval_part(ref, cand, (1, mh), f"{where}: {_labels(G, seg)}")
            else:
                g = cand.astype(np.float32)
            skind, table, direction = scores_from_values(g, f"{where}: {_labels(G, seg or [node])}")
            if skind == "popcount" and direction[0] < 0:
                wbits = (1 - wbits).astype(np.uint8)
            layers.append(Dense(name=name, kind=kind, in_shape=shape, out_shape=(mh,),
                                input_bits=in_bits, input_signed=q.signed if in_bits > 1 else False,
                                weights=wbits, acc_min=lo, acc_max=hi, direction=direction,
                                thresholds=None, score_kind=skind, score_table=table,
                                source=src, **kw))
            shape = (mh,)
            break
        # -- hidden layer: [MaxPool] act-part [MaxPool] [flatten]
        j = 0
        pool_before = None
        if j < len(seg) and seg[j].op_type == "MaxPool":
            pool_before = seg[j]
            j += 1
        act = []
        while j < len(seg) and seg[j].op_type in _ELEMENTWISE + _QUANT_OPS:
            act.append(seg[j])
            j += 1
        pool_after = None
        if j < len(seg) and seg[j].op_type == "MaxPool" and pool_before is None:
            pool_after = seg[j]
            j += 1
        flat = []
        while j < len(seg) and seg[j].op_type in _FLATTEN:
            flat.append(seg[j])
            j += 1
        if j < len(seg):
            raise QonnxImportError(f"{where}: {_labels(G, [seg[j]])} is not supported here; "
                                   "between two layers bnnhw imports [MaxPool] BatchNorm/"
                                   "elementwise ops + BipolarQuant [MaxPool] [flatten]",
                                   "see docs/qonnx.md")
        if not any(n.op_type in _QUANT_OPS for n in act):
            nxt = chain[end]
            raise QonnxImportError(f"{where}: no quantiser between {_labels(G, [node])} and "
                                   f"{_labels(G, [nxt])}: a float activation, not a binarized "
                                   "network", "quantise every hidden activation with a "
                                   "bipolar quantiser (Brevitas QuantIdentity/QuantHardTanh, 1 bit)")
        _check_act_quants(G, act, where)
        pool_k = None
        for pn in (pool_before, pool_after):
            if pn is not None:
                if kind != "conv":
                    raise QonnxImportError(f"{where}: {_labels(G, [pn])} after an fc layer",
                                           "pool after conv layers only")
                pool_k = _pool_kernel(G, pn, where)
        t_in = (pool_before.output[0] if pool_before is not None else node.output[0])
        shape1 = G.shape(t_in)
        vals = np.arange(lo, hi + 1, dtype=np.int64)
        cand = to_float(vals)[:, None] * scale[None, :]
        lab = f"{where}: {_labels(G, act)}"
        ref = _sub_model(G, act, t_in, act[-1].output[0])
        y = _eval_part(ref, cand, shape1, lab)
        s_out, bits = _bipolar(G, y, act, where)
        thr, direction = _fold(bits, lo, hi, lab)
        wbits = np.where(direction[:, None] < 0, 1 - wbits, wbits).astype(np.uint8)
        layers.append(Dense(name=name, kind=kind, in_shape=shape, out_shape=out_shape,
                            input_bits=in_bits, input_signed=q.signed if in_bits > 1 else False,
                            weights=wbits, acc_min=lo, acc_max=hi, direction=direction,
                            thresholds=thr, source=src, **kw))
        shape = out_shape
        lay = lay_out
        if pool_k:
            ops = (np.where(direction < 0, "and", "or") if pool_before is not None
                   else np.full(mh, "or"))
            pshape = (shape[0] // pool_k, shape[1] // pool_k, shape[2])
            pn = pool_before if pool_before is not None else pool_after
            layers.append(MaxPool(name=f"maxpool{len(layers)}", in_shape=shape, out_shape=pshape,
                                  kernel=pool_k, pool_op=np.asarray(ops, dtype="<U3"),
                                  source={"onnx_node": pn.name, "onnx_op": "MaxPool",
                                          "order": "before_bn" if pool_before is not None
                                          else "after_sign"}))
            shape = pshape
            lay = ("map", mh, pshape[0], pshape[1])
        for n in flat:
            lay = _flatten(G, n, lay)
        s_in = s_out
        in_bits = 1
    return NetworkIR(input=q, layers=layers, num_classes=int(layers[-1].mh))


def _flatten(G, n, lay):
    ins, outs = G.shape(n.input[0]), G.shape(n.output[0])
    total = int(np.prod(ins[1:]))
    if outs != (ins[0], total):
        raise QonnxImportError(f"{G.where}: {_labels(G, [n])} reshapes {ins} to {outs}; bnnhw "
                               "imports only the flatten [N, C, H, W] -> [N, C*H*W]",
                               "flatten with Flatten(axis=1) or the Shape/Gather/Reshape pattern")
    if n.op_type == "Flatten" and _attrs(n).get("axis", 1) != 1:
        raise QonnxImportError(f"{G.where}: {_labels(G, [n])} flattens at axis "
                               f"{_attrs(n).get('axis')}", "use Flatten(axis=1)")
    if lay[0] == "map":
        return ("vec", total, (lay[1], lay[2], lay[3]))
    return lay


def _input_quant(G, seg, first, lay):
    """InputQuant and the float scale of one input step, from all 256 raw values."""
    where = G.where
    if not any(n.op_type in _QUANT_OPS for n in seg):
        raise QonnxImportError(f"{where}: the input reaches {_labels(G, [first])} without a "
                               "quantiser: a float first layer, not a binarized network",
                               "quantise the input (BipolarQuant after 2x-1, or an integer Quant)")
    c, h, w = G.chw
    raw = np.arange(256, dtype=np.uint8)
    imgs = np.broadcast_to(raw[:, None, None, None], (256, c, h, w))
    v = np.asarray(G.ref.run_float(raw_to_float(imgs), [first.input[0]])[0])
    v = v.reshape(256, c, h * w)          # NCHW or its (c, h, w) flatten
    if not np.array_equal(v, np.broadcast_to(v[:, :, :1], v.shape)):
        raise QonnxImportError(f"{where}: the input quantisation ({_labels(G, seg)}) depends on "
                               "the pixel position", "use per-tensor input scaling")
    if not np.array_equal(v, np.broadcast_to(v[:, :1], v.shape)):
        raise QonnxImportError(f"{where}: the input quantisation ({_labels(G, seg)}) differs "
                               "between channels; bnnhw's input quantiser is per tensor",
                               "use per-tensor input scaling")
    f = v[:, 0, 0].astype(np.float64)
    r = np.arange(256)
    mags = np.unique(np.abs(f))
    quants = [n for n in seg if n.op_type in _QUANT_OPS]
    ql = _labels(G, quants)
    if len(mags) == 1 and mags[0] > 0 and len(np.unique(f)) <= 2:
        s = float(mags[0])
        bits = f > 0
        t = int(256 - bits.sum())
        if not np.array_equal(bits, r >= t):
            raise QonnxImportError(f"{where}: the 1-bit input quantiser ({ql}) is not "
                                   "+1 exactly for raw values above a threshold",
                                   "scale the input as 2x - 1 (or x - c) before BipolarQuant")
        if not _pow2(s):
            raise QonnxImportError(f"{where}: the input quantiser ({ql}) has scale {s}, not a "
                                   "power of two, so the float first layer is not exact",
                                   "use scale 1 on the input BipolarQuant")
        return InputQuant(channels=c, height=h, width=w, bits=1, threshold=t), s
    d = np.diff(f)
    step = float(d[0]) if len(d) else 0.0
    off = -f[0] / step if step else None
    if (step > 0 and _pow2(step) and np.all(d == step) and off == int(off)
            and np.array_equal(f, (r - int(off)) * step)):
        off = int(off)
        xs = r - off
        lo_x, hi_x = int(xs.min()), int(xs.max())
        if lo_x < 0:
            bits = max(_swidth(lo_x), _swidth(hi_x))
            signed = True
        else:
            bits, signed = max(1, hi_x.bit_length()), False
        if bits < 2 or bits > 16:
            raise QonnxImportError(f"{where}: the input quantiser ({ql}) gives {bits}-bit integers",
                                   "use an 8-bit input")
        sl = int(math.frexp(step)[1] - 1)
        return InputQuant(channels=c, height=h, width=w, bits=bits, signed=signed, offset=off,
                          scale_log2=sl), step
    vals = np.unique(f)
    raise QonnxImportError(
        f"{where}: the input quantiser ({ql}) maps the 256 raw values to {len(vals)} levels "
        f"({vals[:3].tolist()} ... {vals[-2:].tolist()}) that are neither two values +-s (a "
        "1-bit input) nor (raw - offset) * 2**k (an integer input): e.g. Brevitas CNV's 8-bit "
        "quantiser of 2x - 1 rounds, which bnnhw's IR cannot represent exactly",
        "quantise the input to 1 bit (BipolarQuant of 2x - 1) or to raw - offset")


def _swidth(v):
    v = int(v)
    return (v.bit_length() if v >= 0 else (-v - 1).bit_length()) + 1


def _weighted(G, node, lay, shape, in_bits, q, lw):
    """Weight bits in IR layout, per-row scale, conv kwargs, output layout, MW, MH."""
    a = _attrs(node)
    op = node.op_type
    wname = node.input[1] if len(node.input) > 1 else ""
    W = G.const(wname)
    if W is None:
        raise QonnxImportError(f"{lw}: its weights {wname!r} are not constant",
                               "export the model in inference mode with constant weights")
    W = np.asarray(W, dtype=np.float64)
    bias = G.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if op == "Gemm":
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0:
            raise QonnxImportError(f"{lw}: Gemm with transA/alpha", "export a plain MatMul/Gemm")
        if bias is not None and np.any(bias != 0):
            raise QonnxImportError(f"{lw}: a bias on a binary layer", "train without bias")
        Wm = W if a.get("transB", 0) else W.T
    elif op == "MatMul":
        Wm = W.T
    else:
        if bias is not None and np.any(bias != 0):
            raise QonnxImportError(f"{lw}: a bias on a binary conv", "train without bias")
        Wm = W
    if op in ("MatMul", "Gemm"):
        if lay[0] != "vec" or Wm.ndim != 2 or Wm.shape[1] != lay[1]:
            raise QonnxImportError(f"{lw}: weights {W.shape} do not fit its input "
                                   f"{G.shape(node.input[0])}", "flatten before an fc layer")
    else:
        if lay[0] != "map" or Wm.ndim != 4 or Wm.shape[1] != lay[1]:
            raise QonnxImportError(f"{lw}: weights {W.shape} do not fit its input "
                                   f"{G.shape(node.input[0])}", "conv on 2-D feature maps only")
    mh = Wm.shape[0]
    flat = np.abs(Wm.reshape(mh, -1))
    s_c = flat.max(axis=1)
    if np.any(flat.min(axis=1) != s_c) or np.any(s_c == 0):
        nv = len(np.unique(Wm))
        raise QonnxImportError(f"{lw}: its weights are not binary ({nv} distinct values, "
                               f"e.g. {np.unique(Wm)[:4].tolist()}); bnnhw imports 1-bit weights "
                               "(W1A1) only", "binarise the weights (BipolarQuant, 1 bit)")
    if not all(_pow2(s) for s in s_c):
        raise QonnxImportError(f"{lw}: weight scales {sorted(set(s_c.tolist()))[:3]} are not "
                               "powers of two, so the graph's float accumulation is not exact",
                               "use weight scale 1 (Brevitas's default for binary weights)")
    bits = (Wm > 0).astype(np.uint8)
    kw = {}
    if op == "Conv":
        oc, ci, kh, kwid = Wm.shape
        strides = list(a.get("strides", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        dil = list(a.get("dilations", [1, 1]))
        if (kh != kwid or a.get("group", 1) != 1 or dil != [1, 1] or strides[0] != strides[1]
                or len(set(pads)) > 1 or a.get("auto_pad", "NOTSET") not in ("NOTSET", "")):
            raise QonnxImportError(f"{lw}: only square kernels and strides, equal pads, no "
                                   "groups or dilation", "use plain convs")
        p = int(pads[0])
        if p and in_bits == 1:
            raise QonnxImportError(f"{lw}: zero padding on a binary feature map makes the layer "
                                   "ternary, which binary hardware cannot compute",
                                   "train without padding (Brevitas CNV has none)")
        _, hh, ww = lay[1], lay[2], lay[3]
        k, s = int(kh), int(strides[0])
        wbits = layout.conv_weight_to_matrix(bits)
        oh, ow = layout.out_size(hh, k, s, p), layout.out_size(ww, k, s, p)
        kw = dict(kernel=k, stride=s, padding=p, pad_value=0)
        lay_out = ("map", oc, oh, ow)
    else:
        if lay[2] is not None:
            cc, hh, ww = lay[2]
            wbits = layout.fc_weight_from_torch(bits, cc, hh, ww)
        else:
            wbits = bits
        lay_out = ("vec", mh, None)
    return (np.ascontiguousarray(wbits, dtype=np.uint8), s_c.astype(np.float64), kw, lay_out,
            int(wbits.shape[1]), int(mh))


def _check_act_quants(G, act, where):
    for n in act:
        if n.op_type == "Quant":
            bw = G.const(n.input[3]) if len(n.input) > 3 else None
            if bw is None:
                raise QonnxImportError(f"{where}: {_labels(G, [n])} has a non-constant bit width",
                                       "export with constant quantiser parameters")
            if float(np.asarray(bw).reshape(-1)[0]) != 1:
                raise QonnxImportError(f"{where}: {_labels(G, [n])} quantises activations to "
                                       f"{float(np.asarray(bw).reshape(-1)[0]):g} bits; bnnhw "
                                       "imports binarized (W1A1) networks only",
                                       "use 1-bit bipolar activations (BipolarQuant)")
        for t in n.input[1:]:
            if t and G.kind.get(t) != "const":
                raise QonnxImportError(f"{where}: {_labels(G, [n])} has a non-constant parameter",
                                       "export in inference mode")


def _bipolar(G, y, act, where):
    vals = np.unique(y)
    mags = np.unique(np.abs(vals))
    if len(mags) != 1 or mags[0] == 0 or not set(vals.tolist()) <= {-mags[0], mags[0]} \
            or not _pow2(mags[0]):
        quants = [n for n in act if n.op_type in _QUANT_OPS]
        raise QonnxImportError(f"{where}: the activation ({_labels(G, quants)}) gives the values "
                               f"{vals[:4].tolist()}, not bipolar +-s with s a power of two (a "
                               "plain 1-bit Quant gives {-1, 0} or {0, 1})",
                               "use BipolarQuant, or affine ops that map the Quant to exactly "
                               "+-1")
    return float(mags[0]), y > 0


def _fold(bits, lo, hi, where):
    """Thresholds (inverted-row domain) and directions from the decision table
    ``bits[v - lo, c]`` of every reachable accumulator value."""
    n, mh = bits.shape
    v = np.arange(lo, hi + 1, dtype=np.int64)[:, None]
    first, lastv = bits[0], bits[-1]
    cnt = bits.sum(axis=0).astype(np.int64)
    inc = ~first & lastv
    dec = first & ~lastv
    t_inc = lo + n - cnt                       # first passing value
    a_dec = lo + cnt - 1                       # last passing value
    want = np.where(inc, v >= t_inc, np.where(dec, v <= a_dec, first[None, :]))
    if not np.array_equal(want, bits):
        ch = int(np.argwhere((want != bits).any(axis=0))[0][0])
        raise QonnxImportError(f"{where}: BatchNorm + sign of channel {ch} is not a monotone "
                               "step in the accumulator, so no threshold reproduces it",
                               "check the norm's parameters (NaN, zero variance)")
    thr = np.where(inc, t_inc, np.where(dec, lo + hi - a_dec, np.where(first, lo, hi + 1)))
    direction = np.where(inc, 1, np.where(dec, -1, 0)).astype(np.int8)
    return thr.astype(np.int64), direction


def _pool_kernel(G, n, where):
    a = _attrs(n)
    ks = list(a.get("kernel_shape", []))
    st = list(a.get("strides", ks))
    if (len(ks) != 2 or ks[0] != ks[1] or st != ks or any(a.get("pads", [0, 0, 0, 0]))
            or a.get("ceil_mode", 0) or list(a.get("dilations", [1, 1])) != [1, 1]
            or a.get("auto_pad", "NOTSET") not in ("NOTSET", "")):
        raise QonnxImportError(f"{where}: {_labels(G, [n])} with kernel {ks}, strides {st}: "
                               "bnnhw pools with kernel = stride, no padding, floor mode",
                               "use MaxPool2d(k, k)")
    return int(ks[0])
