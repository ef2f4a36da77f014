"""The reference execution of QONNX models: ``onnx.reference.ReferenceEvaluator``
with the QONNX quantisers added as written in the QONNX operator spec.

Everything the importer derives from an ONNX graph (input threshold, layer
thresholds, score order) and everything the tests compare against comes from
this one executor, so "bit-exact" has one meaning: the same integers as the
graph's own float ops evaluated by ``onnx.reference`` (numpy, float32).

QONNX ops (domains ``onnx.brevitas``, ``qonnx.custom_op.general`` and
``finn.custom_op.general``):

``BipolarQuant(x, scale)``
    ``where(x >= 0, +1, -1) * scale`` (0 maps to +1).
``Quant(x, scale, zeropt, bitwidth; signed, narrow, rounding_mode)``
    ``y = clip(round(x / scale + zeropt), min, max)``; output
    ``(y - zeropt) * scale``, with ``min = -2**(b-1) + narrow`` (signed) or 0,
    ``max = 2**(b-1) - 1`` (signed) or ``2**b - 1 - narrow``.  As the spec
    says, a 1-bit signed Quant gives {-1, 0}, not {-1, +1} (``qonnx``'s own
    ``execute_onnx`` special-cases it as bipolar; bnnhw follows the spec and
    refuses the node unless the ops around it make it exactly bipolar).

BatchNormalization (default domain) is evaluated in inference mode, as the
ONNX spec defines a single-output node: ``onnx.reference`` (1.23) treats an
opset-9 node that carries the ``momentum`` attribute (as PyTorch 1.x exports
it, e.g. the QONNX model zoo's TFC) as training mode and normalises with the
batch's own statistics, which makes a classifier's output depend on the
other images of the batch.  bnnhw replaces it with ``onnx.reference``'s own
inference-mode formula.

Inputs: an image of raw uint8 values ``raw`` is fed as
``x = float32(raw) / 255`` (float32 division), in NCHW, as Brevitas/FINN
models expect.
"""
from __future__ import annotations

import numpy as np

from .errors import ModelFileError

__all__ = ["QONNX_DOMAINS", "require_onnx", "with_qonnx_opsets", "Reference", "raw_to_float"]

QONNX_DOMAINS = ("onnx.brevitas", "qonnx.custom_op.general", "finn.custom_op.general")
EXPORT_DOMAIN = "qonnx.custom_op.general"


def require_onnx():
    """Import ``onnx`` or raise a ModelFileError naming the optional extra."""
    try:
        import onnx
        import onnx.reference  # noqa: F401
    except ImportError:
        raise ModelFileError("reading or writing ONNX/QONNX models needs the `onnx` package",
                             "install the optional extra: pip install 'bnnhw[onnx]'") from None
    return onnx


def raw_to_float(raw) -> np.ndarray:
    """Raw uint8 images -> the float32 input of a Brevitas/QONNX model (raw / 255)."""
    return np.asarray(raw).astype(np.float32) / np.float32(255)


def _round_fn(mode: str):
    m = (mode or "ROUND").upper()
    if m in ("ROUND", "HALF_EVEN"):
        return np.round
    if m == "CEIL":
        return np.ceil
    if m == "FLOOR":
        return np.floor
    if m == "UP":
        return lambda v: np.sign(v) * np.ceil(np.abs(v))
    if m == "DOWN":
        return np.fix
    if m == "HALF_UP":
        return lambda v: np.sign(v) * np.floor(np.abs(v) + 0.5)
    if m == "HALF_DOWN":
        return lambda v: np.sign(v) * np.ceil(np.abs(v) - 0.5)
    raise ValueError(f"unknown rounding_mode {mode!r}")


def quant(x, scale, zeropt, bitwidth, signed, narrow, rounding_mode):
    """The QONNX spec's Quant (see module doc), in x's float dtype."""
    b = int(np.asarray(bitwidth).reshape(-1)[0])
    if signed:
        lo, hi = -(2 ** (b - 1)) + int(narrow), 2 ** (b - 1) - 1
    else:
        lo, hi = 0, 2 ** b - 1 - int(narrow)
    dt = x.dtype
    y = x / scale + zeropt
    y = np.clip(_round_fn(rounding_mode)(y), lo, hi)
    return ((y - zeropt) * scale).astype(dt)


def bipolar_quant(x, scale):
    """The QONNX spec's BipolarQuant: ``where(x >= 0, 1, -1) * scale``."""
    return (np.where(x >= 0, 1, -1).astype(x.dtype) * scale).astype(x.dtype)


def batchnorm_inference(x, scale, bias, mean, var, epsilon):
    """BatchNormalization in inference mode, as ``onnx.reference`` computes it
    (``scale * (x - mean) / sqrt(var + epsilon) + bias`` in x's dtype)."""
    ones = (1,) * (x.ndim - 2)
    s, b, m, v = (np.asarray(a).reshape(-1, *ones) for a in (scale, bias, mean, var))
    return (s * (x - m) / np.sqrt(v + epsilon) + b).astype(x.dtype)


def _op_classes():
    from onnx.reference.op_run import OpRun

    def _bq_run(self, x, scale):
        return (bipolar_quant(x, scale),)

    def _q_run(self, x, scale, zeropt, bitwidth, signed=None, narrow=None, rounding_mode=None):
        s = getattr(self, "signed", signed)
        n = getattr(self, "narrow", narrow)
        r = getattr(self, "rounding_mode", rounding_mode)
        r = r.decode() if isinstance(r, bytes) else r
        return (quant(x, scale, zeropt, bitwidth, int(s or 0), int(n or 0), r or "ROUND"),)

    def _bn_run(self, x, scale, bias, mean, var, epsilon=None, momentum=None,
                training_mode=None, is_test=None, spatial=None):
        eps = getattr(self, "epsilon", epsilon)
        return (batchnorm_inference(x, scale, bias, mean, var,
                                    1e-5 if eps is None else eps),)

    out = [type("BatchNormalization", (OpRun,), {"op_domain": "", "_run": _bn_run,
                                                 "__module__": f"{__name__}.bn"})]
    for i, d in enumerate(QONNX_DOMAINS):
        out.append(type("BipolarQuant", (OpRun,), {"op_domain": d, "_run": _bq_run,
                                                   "__module__": f"{__name__}.d{i}"}))
        out.append(type("Quant", (OpRun,), {"op_domain": d, "_run": _q_run,
                                            "__module__": f"{__name__}.d{i}"}))
    return out


def with_qonnx_opsets(model):
    """A copy of ``model`` whose ``opset_import`` names every QONNX domain its nodes use
    (Brevitas's legacy exports list only the default domain)."""
    onnx = require_onnx()
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.domain for o in m.opset_import}
    for d in sorted({n.domain for n in m.graph.node} - have - {"", "ai.onnx"}):
        m.opset_import.append(onnx.helper.make_opsetid(d, 1))
    return m


class Reference:
    """The reference executor of one model: ``onnx.reference.ReferenceEvaluator``
    plus the QONNX ops above."""

    def __init__(self, model):
        require_onnx()
        from onnx.reference import ReferenceEvaluator
        self.model = with_qonnx_opsets(model)
        self.input_name = [i.name for i in self.model.graph.input
                           if i.name not in {t.name for t in self.model.graph.initializer}][0]
        self.output_name = self.model.graph.output[0].name
        self._sess = ReferenceEvaluator(self.model, new_ops=_op_classes())
        self._batchable = None

    @property
    def batchable(self) -> bool:
        """Whether the graph runs on a batch (False when it reshapes to a fixed batch of
        1, as torch's dynamo exporter writes ``view``): then images run one by one."""
        if self._batchable is None:
            shp = [d.dim_value or 1 for d in
                   next(i for i in self.model.graph.input
                        if i.name == self.input_name).type.tensor_type.shape.dim]
            try:
                y = self._sess.run([self.output_name],
                                   {self.input_name: np.zeros([2] + shp[1:], np.float32)})[0]
                self._batchable = bool(np.asarray(y).shape[:1] == (2,))
            except Exception:  # noqa: BLE001 - any failure: evaluate image by image
                self._batchable = False
        return self._batchable

    def run_float(self, x, outputs=None):
        """Evaluate on float inputs ``(N, ...)``; ``outputs``: tensor names (default: the
        graph output).  Returns one array per name, batch first."""
        names = list(outputs) if outputs else [self.output_name]
        x = np.asarray(x, dtype=np.float32)
        if len(x) <= 1 or self.batchable:
            return self._sess.run(names, {self.input_name: x})
        res = [self._sess.run(names, {self.input_name: x[i:i + 1]}) for i in range(len(x))]
        return [np.concatenate([np.asarray(r[k]) for r in res]) for k in range(len(names))]

    def scores(self, raw, chunk: int = 2048) -> np.ndarray:
        """The graph output (float32 ``(N, classes)``) for raw uint8 images ``(N, C, H, W)``."""
        raw = np.asarray(raw)
        out = [self.run_float(raw_to_float(raw[s:s + chunk]))[0]
               for s in range(0, len(raw), chunk)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def predict(self, raw, chunk: int = 2048) -> np.ndarray:
        """Classes: argmax of the reference scores (first maximum, as numpy)."""
        return np.argmax(self.scores(raw, chunk), axis=1).astype(np.int64)
