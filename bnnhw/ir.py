"""The network IR: an integer-only, self-describing, versioned description of a BNN.

One IR feeds the golden model, the hardware generator, the testbenches and
the reports.  It holds integers and bits only; every order and packing is
the one :mod:`bnnhw.layout` defines.

What the network computes (all integer)
---------------------------------------
``input``
    Raw dataset values (uint8, NCHW) -> channels-last ``(H, W, C)``.
    ``bits == 1``: the bit ``raw >= threshold``.  ``bits > 1``: the integer
    ``x = raw - offset`` in ``bits`` bits (two's complement when ``signed``);
    torch saw the float ``x * 2**scale_log2`` (exact; ``scale_log2`` is kept
    for provenance only).
``conv`` / ``fc`` (:class:`Dense`)
    A binary-weight matrix ``weights`` ``(MH, MW)`` of bits (1 = +1), columns
    in im2col order ``(ky, kx, c)`` for convs and in the ``(h, w, c)`` flatten
    order for the first fc after a conv.  The accumulator domain is
    ``"popcount"`` for binary inputs (``p = popcount(XNOR(x, w))`` in
    ``[0, MW]``; the +-1 dot product is ``2p - MW``; binary padding with the
    bit ``pad_value``) or ``"int"`` for the first layer on integer inputs
    (``acc = sum x_i * w_i``; padding with the integer ``pad_value``).
    Hidden layers output the bit ``acc >= thresholds[c]``: BatchNorm + sign
    folded exactly by the exporter.  ``direction[c]`` records how channel c
    was folded: +1 increasing, -1 decreasing (its weight row is stored
    inverted so ``>=`` stays the only comparator), 0 constant (threshold
    ``acc_min`` = always 1, or ``acc_max + 1`` = always 0).
    The output layer (the last fc) has no thresholds; its integer class
    scores are ``acc`` itself (``score_kind == "popcount"``, in the acc domain
    named above) or ``score_table[c, acc - acc_min]`` (``"rank_table"``).
``maxpool`` (:class:`MaxPool`)
    Kernel = stride = ``kernel`` on bits (floor), per channel ``pool_op``:
    ``"or"`` (max of +-1) or ``"and"`` (min of +-1: a channel whose BN+sign is
    decreasing when the torch model pooled before BatchNorm).
``output``
    The class is the argmax of the integer scores, ties to the lowest index.

File format (version 1)
-----------------------
An uncompressed ``.npz`` (zip; loaded with ``allow_pickle=False``) with a
member ``header``: the UTF-8 bytes of a JSON object (as uint8), and one
member per array, ``"<layer name>.<array>"``:

``weights``      uint64 ``(MH, ceil(MW/64))``: rows packed by
                 :func:`bnnhw.layout.pack_bits` (element j at bit j%64 of word j//64)
``thresholds``   int64 ``(MH,)``  (hidden conv/fc)
``direction``    int8 ``(MH,)``   (conv/fc)
``pool_op``      uint8 ``(C,)``, 0 = or, 1 = and (maxpool)
``score_table``  int32 ``(MH, acc_max - acc_min + 1)`` (output layer, rank_table)

Header fields: ``format`` ("bnnhw.ir"), ``version``, ``input`` (see
:class:`InputQuant`), ``num_classes``, ``output`` (``{"rule": "argmax",
"ties": "lowest_index"}``), ``layers`` (one object per layer: its scalar
fields, shapes, and ``arrays`` naming its members), ``arrays`` (per member:
dtype, shape and sha256 of the bytes), ``spec`` (the torch spec),
``dataset`` and ``split`` (from the checkpoint, so evaluation uses the same
holdout), ``provenance``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from . import layout
from .errors import BnnhwError, ModelFileError
from .kinds import get_kind, kinds

__all__ = ["FORMAT", "VERSION", "InputQuant", "Dense", "MaxPool", "NetworkIR",
           "load_ir", "save_ir", "is_ir_file", "POOL_OPS"]

FORMAT = "bnnhw.ir"
VERSION = 1
POOL_OPS = ("or", "and")          # file codes 0, 1
SCORE_KINDS = ("popcount", "rank_table")
_OUTPUT = {"rule": "argmax", "ties": "lowest_index"}


# ---------------------------------------------------------------------------
# layers

@dataclass
class InputQuant:
    """Raw uint8 -> the integers (or bits) the first layer sees.

    ``bits == 1``: bit = ``raw >= threshold``.  Otherwise ``x = raw - offset``
    must lie in the ``bits``-bit (signed or unsigned) range."""
    channels: int
    height: int
    width: int
    bits: int
    signed: bool = False
    offset: int = 0
    threshold: int | None = None
    scale_log2: int | None = None
    raw_min: int = 0
    raw_max: int = 255

    @property
    def shape(self) -> tuple[int, int, int]:
        """Channels-last ``(H, W, C)``."""
        return (self.height, self.width, self.channels)

    @property
    def int_range(self) -> tuple[int, int]:
        """Range of the B-bit input integers (for 1-bit inputs: the bits 0, 1)."""
        if self.bits == 1:
            return (0, 1)
        if self.signed:
            return (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1)
        return (0, (1 << self.bits) - 1)

    @property
    def value_range(self) -> tuple[int, int]:
        """Integers the first layer can actually see from raw values in [raw_min, raw_max]."""
        if self.bits == 1:
            return (0, 1)
        lo, hi = self.int_range
        return (max(lo, self.raw_min - self.offset), min(hi, self.raw_max - self.offset))

    @property
    def raw_range(self) -> tuple[int, int]:
        """Raw values that map into the representable range."""
        if self.bits == 1:
            return (self.raw_min, self.raw_max)
        lo, hi = self.value_range
        return (lo + self.offset, hi + self.offset)

    def quantize(self, raw) -> np.ndarray:
        """Raw ``(N, C, H, W)`` integers -> channels-last ``(N, H, W, C)``: uint8 bits
        for 1-bit inputs, else int32 integers.  Raises BnnhwError on values outside
        the range the hardware can represent."""
        raw = np.asarray(raw)
        want = (self.channels, self.height, self.width)
        if raw.ndim != 4 or tuple(raw.shape[1:]) != want:
            raise BnnhwError(f"input images have shape {tuple(raw.shape)}, the model expects "
                             f"(N, {want[0]}, {want[1]}, {want[2]}) raw values (NCHW)",
                             "use the dataset the model was trained on")
        if raw.dtype.kind not in "ui":
            if raw.dtype.kind == "f" and raw.size and np.all(np.floor(raw) == raw):
                raw = raw.astype(np.int64)
            elif raw.size:
                raise BnnhwError(f"input images have dtype {raw.dtype}; the golden model "
                                 "takes raw integer values (uint8)", "pass the dataset's "
                                 "raw uint8 images, not normalised floats")
            else:
                raw = raw.astype(np.int64)
        x = np.moveaxis(raw, 1, -1)
        if self.bits == 1:
            return (x >= self.threshold).astype(np.uint8)
        rlo, rhi = self.raw_range
        if x.size:
            mn, mx = int(x.min()), int(x.max())
            if mn < rlo or mx > rhi:
                raise BnnhwError(f"raw input values span [{mn}, {mx}] but the model's "
                                 f"{self.bits}-bit {'signed' if self.signed else 'unsigned'} "
                                 f"input (offset {self.offset}) represents raw values "
                                 f"[{rlo}, {rhi}] only",
                                 "use the dataset the model was trained on")
        return (x.astype(np.int32) - np.int32(self.offset))

    def to_json(self) -> dict:
        d = {"channels": self.channels, "height": self.height, "width": self.width,
             "bits": self.bits, "raw_min": self.raw_min, "raw_max": self.raw_max,
             "raw_dtype": "uint8", "raw_layout": "NCHW"}
        if self.bits == 1:
            d["threshold"] = self.threshold
        else:
            d.update(signed=self.signed, offset=self.offset, scale_log2=self.scale_log2)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "InputQuant":
        bits = d["bits"]
        return cls(channels=d["channels"], height=d["height"], width=d["width"], bits=bits,
                   signed=bool(d.get("signed", False)), offset=d.get("offset", 0),
                   threshold=d.get("threshold"), scale_log2=d.get("scale_log2"),
                   raw_min=d.get("raw_min", 0), raw_max=d.get("raw_max", 255))


@dataclass
class Dense:
    """A binary-weight conv or fc layer with its folded activation (see module doc)."""
    name: str
    kind: str                     # "conv" | "fc"
    in_shape: tuple               # (H, W, C) of the input map, or (N,) for a vector
    out_shape: tuple              # (OH, OW, MH) for conv, (MH,) for fc
    input_bits: int               # 1: binary inputs (popcount domain); >1: integer inputs
    input_signed: bool
    weights: np.ndarray           # (MH, MW) uint8 bits, layout order
    acc_min: int
    acc_max: int
    direction: np.ndarray         # (MH,) int8
    thresholds: np.ndarray | None = None     # (MH,) int64; None for the output layer
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    pad_value: int = 0            # a bit for binary inputs, an integer for integer inputs
    score_kind: str | None = None            # output layer: "popcount" | "rank_table"
    score_table: np.ndarray | None = None    # (MH, acc_max - acc_min + 1) int32
    source: dict = field(default_factory=dict)

    @property
    def mw(self) -> int:
        return int(self.weights.shape[1])

    @property
    def mh(self) -> int:
        return int(self.weights.shape[0])

    @property
    def domain(self) -> str:
        """``"popcount"`` (binary inputs) or ``"int"`` (integer first layer)."""
        return "popcount" if self.input_bits == 1 else "int"

    @property
    def is_output(self) -> bool:
        return self.thresholds is None

    @property
    def acc_bits(self) -> int:
        """Two's complement width holding every accumulator value and threshold."""
        lo, hi = self.acc_min, self.acc_max + 1
        return max(_signed_width(lo), _signed_width(hi))

    @property
    def score_range(self) -> tuple[int, int]:
        """Range of the output layer's integer scores."""
        if self.score_kind == "rank_table":
            return (int(self.score_table.min()), int(self.score_table.max()))
        return (self.acc_min, self.acc_max)


@dataclass
class MaxPool:
    """Max-pool on bits, kernel = stride = ``kernel``, per-channel ``pool_op`` (or/and)."""
    name: str
    in_shape: tuple               # (H, W, C)
    out_shape: tuple              # (H // k, W // k, C)
    kernel: int
    pool_op: np.ndarray           # (C,) of "or" / "and"
    source: dict = field(default_factory=dict)
    kind: str = "maxpool"


def _signed_width(v: int) -> int:
    v = int(v)
    return (v.bit_length() if v >= 0 else (-v - 1).bit_length()) + 1


# ---------------------------------------------------------------------------
# the network

@dataclass
class NetworkIR:
    """A whole network: input quantisation, layers in order, argmax output."""
    input: InputQuant
    layers: list
    num_classes: int
    spec: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @property
    def dense_layers(self) -> list:
        return [l for l in self.layers if isinstance(l, Dense)]

    @property
    def output_layer(self) -> Dense:
        return self.layers[-1]

    # -- serialisation ------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """The IR's arrays as stored in the file, keyed by member name."""
        out = {}
        for l in self.layers:
            if isinstance(l, Dense):
                out[f"{l.name}.weights"] = layout.pack_bits(l.weights).astype("<u8")
                out[f"{l.name}.direction"] = np.asarray(l.direction, dtype=np.int8)
                if l.thresholds is not None:
                    out[f"{l.name}.thresholds"] = np.asarray(l.thresholds, dtype="<i8")
                if l.score_table is not None:
                    out[f"{l.name}.score_table"] = np.asarray(l.score_table, dtype="<i4")
            elif isinstance(l, MaxPool):
                codes = np.array([POOL_OPS.index(str(o)) for o in l.pool_op], dtype=np.uint8)
                out[f"{l.name}.pool_op"] = codes
            else:                   # a registered layer kind (bnnhw.kinds)
                for n, a in get_kind(l.kind).ir_arrays(l).items():
                    out[f"{l.name}.{n}"] = a
        return out

    def header(self, arrays: dict | None = None) -> dict:
        arrays = self.arrays() if arrays is None else arrays
        layers = []
        for l in self.layers:
            if isinstance(l, Dense):
                d = {"name": l.name, "kind": l.kind, "in_shape": list(l.in_shape),
                     "out_shape": list(l.out_shape), "mw": l.mw, "mh": l.mh,
                     "input": ({"kind": "bits"} if l.input_bits == 1 else
                               {"kind": "int", "bits": l.input_bits,
                                "signed": bool(l.input_signed)}),
                     "acc": {"domain": l.domain, "min": int(l.acc_min), "max": int(l.acc_max)},
                     "activation": "scores" if l.is_output else "threshold",
                     "source": l.source}
                if l.kind == "conv":
                    d.update(kernel=l.kernel, stride=l.stride, padding=l.padding,
                             pad_value=int(l.pad_value))
                names = ["weights", "direction"]
                if l.thresholds is not None:
                    names.append("thresholds")
                else:
                    d["scores"] = {"kind": l.score_kind}
                    if l.score_table is not None:
                        names.append("score_table")
                d["arrays"] = {n: f"{l.name}.{n}" for n in names}
            elif isinstance(l, MaxPool):
                d = {"name": l.name, "kind": "maxpool", "in_shape": list(l.in_shape),
                     "out_shape": list(l.out_shape), "kernel": l.kernel,
                     "arrays": {"pool_op": f"{l.name}.pool_op"},
                     "pool_op_codes": list(POOL_OPS), "source": l.source}
            else:                   # a registered layer kind (bnnhw.kinds)
                kind = get_kind(l.kind)
                d = {**kind.ir_header(l), "name": l.name, "kind": l.kind,
                     "in_shape": list(l.in_shape), "out_shape": list(l.out_shape),
                     "arrays": {n: f"{l.name}.{n}" for n in kind.ir_arrays(l)},
                     "source": getattr(l, "source", {})}
            layers.append(d)
        return {
            "format": FORMAT, "version": VERSION,
            "input": self.input.to_json(), "num_classes": int(self.num_classes),
            "output": dict(_OUTPUT), "layers": layers,
            "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape),
                           "sha256": hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()}
                       for k, v in sorted(arrays.items())},
            "spec": self.spec, "dataset": self.dataset, "split": self.split,
            "provenance": self.provenance,
        }

    def to_bytes(self) -> bytes:
        arrays = self.arrays()
        head = json.dumps(_jsonable(self.header(arrays)), sort_keys=True, allow_nan=False)
        buf = io.BytesIO()
        np.savez(buf, header=np.frombuffer(head.encode("utf-8"), dtype=np.uint8), **arrays)
        return buf.getvalue()

    def save(self, path: str) -> None:
        """Write atomically (temp file + rename, usual permissions): a failure never
        leaves half a file."""
        self.validate()
        from .outputs import atomic_write
        atomic_write(path, self.to_bytes())

    @classmethod
    def load(cls, path: str) -> "NetworkIR":
        return load_ir(path)

    # -- validation ---------------------------------------------------------

    def validate(self, where: str = "IR") -> None:
        """Raise ModelFileError unless every shape, range and array is consistent."""
        _validate(self, where)


def save_ir(ir: NetworkIR, path: str) -> None:
    ir.save(path)


def is_ir_file(path: str) -> bool:
    """True if ``path`` is an npz with a ``header`` member (by content, not extension)."""
    try:
        with zipfile.ZipFile(path) as z:
            return "header.npy" in z.namelist()
    except Exception:  # noqa: BLE001 - any damage (BadZipFile, NotImplementedError ...)
        return False


def _jsonable(obj):
    """Plain JSON types only (tuples -> lists, numpy/torch scalars and arrays -> lists)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if hasattr(obj, "tolist"):  # torch tensors
        return _jsonable(obj.tolist())
    return str(obj)


# ---------------------------------------------------------------------------
# loading

def _bad(path, msg, hint="re-export it with `bnnhw export --model model.pt -o model.bnn`"):
    return ModelFileError(f"{path}: {msg}", hint)


def load_ir(path: str) -> NetworkIR:
    """Load and validate an IR file; every problem is a ModelFileError that says what."""
    if not os.path.exists(path):
        raise ModelFileError(f"model file {path!r} does not exist",
                             "export one with `bnnhw export --model model.pt -o model.bnn`")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelFileError(f"cannot read {path!r}: {e.strerror}", "check the path") from None
    return ir_from_bytes(data, path)


def ir_from_bytes(data: bytes, path: str = "IR") -> NetworkIR:
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any failure here means an unreadable file
        raise _bad(path, f"not a readable IR file (truncated or corrupted: "
                         f"{type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise _bad(path, "not an IR file (a single .npy array, not an npz archive)")
    with npz:
        if "header" not in npz.files:
            raise _bad(path, "not a bnnhw IR file (no header member)")
    from .limits import read_npz
    try:   # every member's size checked against the file before it is allocated
        arrays = read_npz(io.BytesIO(data), where="member", error=ModelFileError)
    except ModelFileError as e:  # CRC errors, truncated members, lying headers, objects
        raise _bad(path, f"corrupted IR file ({e.message})") from None
    head_arr = arrays.pop("header")
    if head_arr.dtype != np.uint8 or head_arr.ndim != 1:
        raise _bad(path, "corrupted IR header (expected UTF-8 bytes)")
    try:
        header = json.loads(head_arr.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"corrupted IR header (not valid JSON: {e})") from None
    return ir_from_parts(header, arrays, path)


def ir_from_parts(header: dict, arrays: dict, path: str = "IR") -> NetworkIR:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _bad(path, f"not a bnnhw IR (format {header.get('format') if isinstance(header, dict) else None!r})")
    if header.get("version") != VERSION:
        raise _bad(path, f"IR version {header.get('version')!r}; this bnnhw reads version "
                         f"{VERSION}", "re-export the checkpoint with this bnnhw "
                         "(`bnnhw export --model model.pt -o model.bnn`)")
    try:
        return _from_parts(header, arrays, path)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as e:
        raise _bad(path, f"inconsistent IR header ({type(e).__name__}: {e})") from None


def _from_parts(header, arrays, path):
    described = header["arrays"]
    if set(described) != set(arrays):
        missing = sorted(set(described) - set(arrays))
        extra = sorted(set(arrays) - set(described))
        raise _bad(path, f"arrays do not match the header (missing {missing}, unexpected {extra})")
    for k, meta in described.items():
        a = arrays[k]
        if a.dtype.str != meta["dtype"] or list(a.shape) != list(meta["shape"]):
            raise _bad(path, f"array {k}: {a.dtype.str} {list(a.shape)} but the header says "
                             f"{meta['dtype']} {meta['shape']}")
        if hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() != meta["sha256"]:
            raise _bad(path, f"array {k} is corrupted (checksum mismatch)")
    inp = InputQuant.from_json(header["input"])
    layers = []
    for d in header["layers"]:
        kind = d["kind"]
        arr = {n: arrays[m] for n, m in d["arrays"].items()}
        if kind in ("conv", "fc"):
            mw, mh = int(d["mw"]), int(d["mh"])
            w = arr["weights"]
            if w.shape != (mh, max(1, -(-mw // 64))):
                raise _bad(path, f"layer {d['name']}: weights {w.shape} do not hold "
                                 f"{mh}x{mw} bits")
            bits = layout.unpack_bits(w, mw)
            if not np.array_equal(layout.pack_bits(bits), w):
                raise _bad(path, f"layer {d['name']}: weight padding bits are not zero")
            inp_d = d["input"]
            layers.append(Dense(
                name=d["name"], kind=kind, in_shape=tuple(d["in_shape"]),
                out_shape=tuple(d["out_shape"]),
                input_bits=1 if inp_d["kind"] == "bits" else int(inp_d["bits"]),
                input_signed=bool(inp_d.get("signed", False)), weights=bits,
                acc_min=int(d["acc"]["min"]), acc_max=int(d["acc"]["max"]),
                direction=arr["direction"].astype(np.int8),
                thresholds=(arr["thresholds"].astype(np.int64) if "thresholds" in arr else None),
                kernel=int(d.get("kernel", 1)), stride=int(d.get("stride", 1)),
                padding=int(d.get("padding", 0)), pad_value=int(d.get("pad_value", 0)),
                score_kind=(d.get("scores") or {}).get("kind"),
                score_table=(arr["score_table"].astype(np.int32) if "score_table" in arr
                             else None),
                source=d.get("source", {})))
            if d["acc"]["domain"] != layers[-1].domain:
                raise _bad(path, f"layer {d['name']}: accumulator domain {d['acc']['domain']!r} "
                                 f"does not match its input kind")
        elif kind == "maxpool":
            codes = arr["pool_op"]
            if codes.size and int(codes.max()) >= len(POOL_OPS):
                raise _bad(path, f"layer {d['name']}: pool_op codes must be 0 (or) or 1 (and)")
            layers.append(MaxPool(name=d["name"], in_shape=tuple(d["in_shape"]),
                                  out_shape=tuple(d["out_shape"]), kernel=int(d["kernel"]),
                                  pool_op=np.array(POOL_OPS)[codes.astype(np.intp)],
                                  source=d.get("source", {})))
        elif kind in kinds():       # a registered layer kind (bnnhw.kinds)
            layers.append(get_kind(kind).ir_from_header(d, arr))
        else:
            raise _bad(path, f"layer {d.get('name')}: unknown kind {kind!r} (this bnnhw knows "
                             f"{', '.join(sorted(kinds()))})")
    ir = NetworkIR(input=inp, layers=layers, num_classes=int(header["num_classes"]),
                   spec=header.get("spec", {}), dataset=header.get("dataset", {}),
                   split=header.get("split", {}), provenance=header.get("provenance", {}))
    if header.get("output") != _OUTPUT:
        raise _bad(path, f"unknown output rule {header.get('output')}")
    ir.validate(path)
    return ir


def _validate(ir: NetworkIR, where: str) -> None:
    def bad(msg):
        return _bad(where, msg)

    q = ir.input
    if not (isinstance(q.bits, int) and 1 <= q.bits <= 16):
        raise bad(f"input bits {q.bits!r} not in 1..16")
    if q.bits == 1 and not isinstance(q.threshold, int):
        raise bad("1-bit input needs an integer threshold")
    if min(q.channels, q.height, q.width) < 1:
        raise bad(f"input shape {q.shape} is empty")
    if not ir.layers:
        raise bad("no layers")
    shape = q.shape
    names = set()
    first = True
    for i, l in enumerate(ir.layers):
        if l.name in names:
            raise bad(f"duplicate layer name {l.name!r}")
        names.add(l.name)
        if tuple(l.in_shape) != tuple(shape):
            raise bad(f"layer {l.name}: input shape {tuple(l.in_shape)} but the previous "
                      f"layer produces {tuple(shape)}")
        last = i == len(ir.layers) - 1
        if isinstance(l, MaxPool):
            prev = ir.layers[i - 1] if i else None
            if prev is None or isinstance(prev, MaxPool) or (isinstance(prev, Dense)
                                                              and prev.kind != "conv"):
                raise bad(f"layer {l.name}: maxpool must follow a conv layer")
            h, w, c = shape
            if l.kernel < 1 or h < l.kernel or w < l.kernel:
                raise bad(f"layer {l.name}: kernel {l.kernel} does not fit {shape}")
            shape = (h // l.kernel, w // l.kernel, c)
            if np.asarray(l.pool_op).shape != (c,) or not set(map(str, l.pool_op)) <= set(POOL_OPS):
                raise bad(f"layer {l.name}: pool_op must give or/and for each of {c} channels")
        elif isinstance(l, Dense):
            ib = q.bits if first else 1
            if l.input_bits != ib or (ib > 1 and bool(l.input_signed) != bool(q.signed)):
                raise bad(f"layer {l.name}: input kind ({l.input_bits} bits) does not match "
                          f"what it receives ({ib} bits)")
            if l.weights.ndim != 2 or l.weights.dtype != np.uint8 or (
                    l.weights.size and int(l.weights.max()) > 1):
                raise bad(f"layer {l.name}: weights must be a 2-D array of bits")
            mh = l.mh
            if l.kind == "conv":
                if len(shape) != 3:
                    raise bad(f"layer {l.name}: conv after an fc layer")
                h, w, c = shape
                k, s, p = l.kernel, l.stride, l.padding
                if k < 1 or s < 1 or p < 0 or k > h + 2 * p or k > w + 2 * p:
                    raise bad(f"layer {l.name}: kernel {k}, stride {s}, padding {p} do not "
                              f"fit input {shape}")
                if l.mw != k * k * c:
                    raise bad(f"layer {l.name}: MW={l.mw} but K*K*C={k * k * c}")
                if p and ib == 1 and l.pad_value not in (0, 1):
                    raise bad(f"layer {l.name}: binary pad value must be a bit, not {l.pad_value}")
                if p and ib > 1:
                    lo, hi = q.int_range
                    if not lo <= l.pad_value <= hi:
                        raise bad(f"layer {l.name}: pad value {l.pad_value} not representable "
                                  f"in the {ib}-bit input")
                shape = (layout.out_size(h, k, s, p), layout.out_size(w, k, s, p), mh)
            elif l.kind == "fc":
                n = int(np.prod(shape))
                if l.mw != n:
                    raise bad(f"layer {l.name}: MW={l.mw} but its input has {n} elements")
                shape = (mh,)
            else:
                raise bad(f"layer {l.name}: unknown kind {l.kind!r}")
            if tuple(l.out_shape) != tuple(shape):
                raise bad(f"layer {l.name}: output shape {tuple(l.out_shape)}, expected {shape}")
            if ib == 1:
                if (l.acc_min, l.acc_max) != (0, l.mw):
                    raise bad(f"layer {l.name}: popcount range [{l.acc_min}, {l.acc_max}] "
                              f"!= [0, {l.mw}]")
            elif not l.acc_min <= 0 <= l.acc_max:
                raise bad(f"layer {l.name}: accumulator range [{l.acc_min}, {l.acc_max}]")
            if np.asarray(l.direction).shape != (mh,) or not set(
                    np.unique(l.direction).tolist()) <= {-1, 0, 1}:
                raise bad(f"layer {l.name}: direction must be -1/0/+1 per output")
            if last:
                if l.kind != "fc" or l.thresholds is not None:
                    raise bad(f"layer {l.name}: the last layer must be an fc layer giving scores")
                if mh != ir.num_classes:
                    raise bad(f"layer {l.name}: {mh} scores but num_classes={ir.num_classes}")
                if l.score_kind not in SCORE_KINDS:
                    raise bad(f"layer {l.name}: unknown score kind {l.score_kind!r}")
                if l.score_kind == "rank_table":
                    t = l.score_table
                    if t is None or t.shape != (mh, l.acc_max - l.acc_min + 1):
                        raise bad(f"layer {l.name}: score table shape "
                                  f"{None if t is None else t.shape}, expected "
                                  f"{(mh, l.acc_max - l.acc_min + 1)}")
                elif l.score_table is not None:
                    raise bad(f"layer {l.name}: a score table with score kind 'popcount'")
            else:
                t = l.thresholds
                if t is None or np.asarray(t).shape != (mh,):
                    raise bad(f"layer {l.name}: needs one threshold per output ({mh})")
                if mh and (int(t.min()) < l.acc_min or int(t.max()) > l.acc_max + 1):
                    raise bad(f"layer {l.name}: thresholds outside [{l.acc_min}, "
                              f"{l.acc_max + 1}]")
            first = False
        elif getattr(l, "kind", None) in kinds():      # a registered layer kind
            shape = tuple(get_kind(l.kind).ir_check(l, tuple(shape), bad))
            if tuple(l.out_shape) != shape:
                raise bad(f"layer {l.name}: output shape {tuple(l.out_shape)}, expected {shape}")
        else:
            raise bad(f"layer {i}: unknown layer object {type(l).__name__}")
    if shape != (ir.num_classes,):
        raise bad(f"network output {shape} but num_classes={ir.num_classes}")
