"""Lowering: layer descriptions -> chains of registered cores.

The network IR (``bnnhw.ir``) is young, so lowering is defined against a
small description this module owns, :class:`LayerHW` (one layer plus its
folding), and :func:`layer_hw_from_ir` adapts an IR layer object to it by
attribute names (``kind``, ``in_shape``, ``weights``, ``thresholds``,
``kernel``, ``stride``, ``padding``, ``pad_value``, ``input_bits``,
``input_signed``, ``pool_op``, ``score_kind``).  When the IR changes, only
that adapter changes.

Rules
-----
* ``fc``: one MVAU (binary inputs) or FirstLayerMVAU (``input_bits > 1``)
  [+ ScoreTable for a per-class score table].
* ``conv``: SlidingWindow (SIMD ``gcd(SIMD, C)``) [+ WidthConverter up to
  the MVAU's SIMD] + MVAU/FirstLayerMVAU over ``K*K*C`` inputs, one vector
  per output pixel.
* ``maxpool``: MaxPool.
* ``label_select``: LabelSelect.
* :func:`lower_network` joins the chains and inserts WidthConverters where
  one core's output width differs from the next core's input width (through
  the gcd when neither divides the other), and optionally a LabelSelect after
  a score-emitting last layer.

Cores are looked up in the registry by name (``registry.get``).  Further layer
kinds bring their own lowering (:func:`register_lowering`, done by
:func:`bnnhw.kinds.register_kind`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from math import gcd

import numpy as np
from amaranth.hdl import Module, unsigned
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from . import registry
from ._common import StreamCore

__all__ = ["LayerHW", "Chain", "ChainTop", "lower", "lower_network", "layer_hw_from_ir",
           "register_lowering", "with_repeats"]

KINDS = ("fc", "conv", "maxpool", "label_select")
# lowerings of further kinds (bnnhw.kinds.register_kind adds them): kind -> LayerHW -> Chain
LOWERINGS: dict = {}


def register_lowering(kind: str, fn) -> None:
    """Lower layers of ``kind`` with ``fn(layer_hw) -> Chain``."""
    LOWERINGS[kind] = fn


@dataclass
class LayerHW:
    """One layer and its folding, as the cores need it.

    ``weights`` ``(MH, MW)`` bits in layout order (im2col columns for
    convs); ``thresholds`` ``(MH,)`` in the acc domain, or ``None`` for a
    score layer.  ``in_shape``: ``(H, W, C)`` for conv/maxpool, ``(MW,)`` for
    fc.  ``input_bits``/``input_signed``: integer inputs of a first layer
    (1 = binary).  ``simd``/``pe``: folding of the MVAU (``simd`` is the
    channels-per-beat of a maxpool).  ``planes_per_cycle``: first-layer
    bit-planes per cycle (default: all ``input_bits``).  ``score``: "dot" or
    "popcount" for a binary score layer.  ``score_table`` (``(MH, acc_max -
    acc_min + 1)``) with ``acc_min``/``acc_max``: per-class score lookup after
    a score layer (the IR's "rank_table").  ``num_classes``/``score_width``:
    label_select."""
    name: str
    kind: str
    in_shape: tuple = ()
    weights: np.ndarray | None = None
    thresholds: np.ndarray | None = None
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    pad_value: int = 0
    input_bits: int = 1
    input_signed: bool = False
    pool_op: object = "or"
    simd: int = 1
    pe: int = 1
    planes_per_cycle: int | None = None
    score: str = "dot"
    levels_per_stage: int = 2
    swu_rows: int | None = None
    num_classes: int | None = None
    score_width: int | None = None
    score_table: np.ndarray | None = None
    acc_min: int | None = None
    acc_max: int | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Chain:
    """Cores in stream order, with how many of each core's frames make one image."""
    cores: list[StreamCore]
    repeats: list[int]
    layers: list[str]

    def cycles_per_image(self) -> int:
        """Steady-state cycles per image of the slowest core (ideal FIFOs)."""
        return max(c.throughput * r for c, r in zip(self.cores, self.repeats))

    def bottleneck(self):
        """The slowest core (the first of equals): it sets :meth:`cycles_per_image`."""
        return max(zip(self.cores, self.repeats), key=lambda cr: cr[0].throughput * cr[1])[0]

    def __iter__(self):
        return iter(self.cores)

    def __len__(self):
        return len(self.cores)


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


class ChainTop(wiring.Component):
    """Cores in stream order (a :class:`Chain` or a list), joined directly or through a
    StreamFIFO: ``fifo_depths[n] > 0`` puts one of that depth between core ``n`` and core
    ``n+1`` (``fifo_depth``: the same depth everywhere; neither: direct connections).

    Ports ``i`` and ``o`` are the first core's input and the last core's output;
    submodules ``sNN_<core name>`` and ``sNN_fifo``."""

    def __init__(self, chain, *, fifo_depth: int | None = None,
                 fifo_depths: list[int] | None = None):
        self.cores = list(getattr(chain, "cores", chain))
        n = len(self.cores) - 1
        if fifo_depths is None:
            fifo_depths = [int(fifo_depth or 0)] * n
        if len(fifo_depths) != n:
            raise ValueError(f"{len(self.cores)} cores need {n} FIFO depths, "
                             f"got {len(fifo_depths)}")
        self.fifo_depths = [int(d) for d in fifo_depths]
        super().__init__({"i": In(stream.Signature(unsigned(self.cores[0].i_width))),
                          "o": Out(stream.Signature(unsigned(self.cores[-1].o_width)))})

    def elaborate(self, platform):
        m = Module()
        cores = self.cores
        for n, core in enumerate(cores):
            m.submodules[f"s{n:02d}_{_sanitize(core.name)}"] = core
        wiring.connect(m, wiring.flipped(self.i), cores[0].i)
        for n, (a, b) in enumerate(zip(cores, cores[1:])):
            depth = self.fifo_depths[n]
            if depth > 0:
                fifo = registry.get("fifo")(name=f"fifo{n:02d}", width=a.o_width, depth=depth)
                m.submodules[f"s{n:02d}_fifo"] = fifo
                wiring.connect(m, a.o, fifo.i)
                wiring.connect(m, fifo.o, b.i)
            else:
                wiring.connect(m, a.o, b.i)
        wiring.connect(m, cores[-1].o, wiring.flipped(self.o))
        return m


def _mvau(layer: LayerHW, mw: int, name: str):
    w = np.asarray(layer.weights)
    common = dict(name=name, mw=mw, mh=w.shape[0], simd=layer.simd, pe=layer.pe, weights=w,
                  thresholds=layer.thresholds, levels_per_stage=layer.levels_per_stage)
    if layer.input_bits > 1:
        return registry.get("first_layer_mvau")(
            bits=layer.input_bits, signed=layer.input_signed,
            planes_per_cycle=layer.planes_per_cycle or layer.input_bits, **common)
    return registry.get("mvau")(score=layer.score, **common)


def _score_table(layer: LayerHW, mvau) -> StreamCore:
    if layer.thresholds is not None:
        raise ValueError(f"layer {layer.name}: a score table needs a score layer "
                         f"(thresholds=None)")
    if mvau.binary and mvau.score != "popcount":
        raise ValueError(f"layer {layer.name}: a score table is indexed by the popcount; "
                         f"use score='popcount'")
    lo = layer.acc_min if layer.acc_min is not None else mvau.acc_min
    hi = layer.acc_max if layer.acc_max is not None else mvau.acc_max
    return registry.get("score_table")(
        name=f"{layer.name}.scores", mh=mvau.mh, pe=mvau.pe, acc_min=lo, acc_max=hi,
        table=layer.score_table, in_width=mvau.score_width)


def lower(layer: LayerHW) -> Chain:
    """The chain of cores for one layer (``repeats`` relative to one image)."""
    if layer.kind in LOWERINGS:
        return LOWERINGS[layer.kind](layer)
    if layer.kind not in KINDS:
        raise ValueError(f"layer {layer.name}: kind {layer.kind!r} has no lowering; "
                         f"known kinds: {', '.join(KINDS)}")
    if layer.kind == "fc":
        if layer.weights is None:
            raise ValueError(f"layer {layer.name}: an fc layer needs weights")
        mw = int(np.asarray(layer.weights).shape[1])
        if layer.in_shape and int(np.prod(layer.in_shape)) != mw:
            raise ValueError(f"layer {layer.name}: input of {int(np.prod(layer.in_shape))} "
                             f"elements does not match MW={mw}")
        core = _mvau(layer, mw, layer.name)
        cores, names = [core], [layer.name]
        if layer.score_table is not None:
            cores.append(_score_table(layer, core))
            names.append(layer.name)
        return with_repeats(cores, names, first_repeats=1)
    if layer.kind == "conv":
        if layer.weights is None or len(layer.in_shape) != 3:
            raise ValueError(f"layer {layer.name}: a conv layer needs weights and in_shape "
                             f"(H, W, C)")
        h, w, c = (int(v) for v in layer.in_shape)
        k = layer.kernel
        mw = int(np.asarray(layer.weights).shape[1])
        if mw != k * k * c:
            raise ValueError(f"layer {layer.name}: weights have MW={mw} columns, expected "
                             f"K*K*C = {k}*{k}*{c} = {k * k * c}")
        swu_simd = gcd(layer.simd, c)
        swu = registry.get("swu")(
            name=f"{layer.name}.swu", height=h, width=w, channels=c, k=k,
            stride=layer.stride, pad=layer.padding, pad_value=layer.pad_value,
            elem_bits=layer.input_bits, signed=layer.input_signed, simd=swu_simd,
            rows=layer.swu_rows)
        cores = [swu]
        names = [layer.name]
        mvau = _mvau(layer, mw, f"{layer.name}.mvau")
        if swu.o_width != mvau.i_width:
            conv = registry.get("width_converter")(
                name=f"{layer.name}.widen", i_width=swu.o_width, o_width=mvau.i_width)
            cores.append(conv)
            names.append(layer.name)
        cores.append(mvau)
        names.append(layer.name)
        if layer.score_table is not None:
            cores.append(_score_table(layer, mvau))
            names.append(layer.name)
        return with_repeats(cores, names, first_repeats=1)
    if layer.kind == "maxpool":
        h, w, c = (int(v) for v in layer.in_shape)
        core = registry.get("maxpool")(name=layer.name, height=h, width=w, channels=c,
                                       k=layer.kernel, simd=layer.simd, pool_op=layer.pool_op)
        return Chain([core], [1], [layer.name])
    # label_select
    if layer.num_classes is None or layer.score_width is None:
        raise ValueError(f"layer {layer.name}: label_select needs num_classes and score_width")
    core = registry.get("label_select")(name=layer.name, num_classes=layer.num_classes,
                                        pe=layer.pe, score_width=layer.score_width)
    return Chain([core], [1], [layer.name])


def with_repeats(cores, names, first_repeats) -> Chain:
    """A :class:`Chain` of ``cores`` (each named after its layer in ``names``), the
    frames of each core per image counted from ``first_repeats`` of the first."""
    repeats = [first_repeats]
    beats = cores[0].out_beats * first_repeats
    for prev_name, core in zip(names, cores[1:]):
        if beats % core.in_beats:
            raise ValueError(f"layer {core.name}: takes frames of {core.in_beats} beats but "
                             f"{prev_name} delivers {beats} beats per image")
        r = beats // core.in_beats
        repeats.append(r)
        beats = r * core.out_beats
    return Chain(list(cores), repeats, list(names))


def _link(a: StreamCore, b: StreamCore, name: str) -> list[StreamCore]:
    """Width converters from ``a``'s output to ``b``'s input."""
    wa, wb = a.o_width, b.i_width
    if wa == wb:
        return []
    make = registry.get("width_converter")
    if wa % wb == 0 or wb % wa == 0:
        return [make(name=f"{name}.link", i_width=wa, o_width=wb)]
    g = gcd(wa, wb)
    return [make(name=f"{name}.link_down", i_width=wa, o_width=g),
            make(name=f"{name}.link_up", i_width=g, o_width=wb)]


def lower_network(layers: list[LayerHW], *, label_select: bool = True,
                  input_width: int | None = None) -> Chain:
    """Lower every layer, join the chains with width converters, append LabelSelect.

    ``input_width``: bits per beat of the accelerator's input stream (e.g.
    ``B`` for one element per beat); a converter to the first core is inserted
    when it differs.  ``label_select``: append a LabelSelect after a last
    layer that emits scores (``thresholds is None``), with its PE."""
    if not layers:
        raise ValueError("lower_network: no layers")
    cores: list[StreamCore] = []
    names: list[str] = []
    for layer in layers:
        chain = lower(layer)
        if cores:
            for conv in _link(cores[-1], chain.cores[0], layer.name):
                cores.append(conv)
                names.append(layer.name)
        cores.extend(chain.cores)
        names.extend(chain.layers)
    last = layers[-1]
    if label_select and last.kind in ("fc", "conv") and last.thresholds is None:
        mv = cores[-1]          # the score MVAU, or its ScoreTable
        cores.append(registry.get("label_select")(
            name="label_select", num_classes=mv.mh, pe=mv.pe, score_width=mv.score_width))
        names.append("label_select")
    if input_width is not None and input_width != cores[0].i_width:
        class _Src:   # a stand-in producer for _link
            o_width = input_width
        front = _link(_Src, cores[0], "input")
        cores[:0] = front
        names[:0] = ["input"] * len(front)
    # repeats: image-level beat accounting from the first core
    first = cores[0]
    in_bits = _image_in_elements(layers[0]) * layers[0].input_bits
    if in_bits % first.i_width:
        raise ValueError(f"layer {layers[0].name}: {in_bits} input bits per image do not "
                         f"split into {first.i_width}-bit beats")
    first_repeats, rem = divmod(in_bits // first.i_width, first.in_beats)
    if rem:
        raise ValueError(f"layer {first.name}: {in_bits // first.i_width} beats per image "
                         f"are not whole frames of {first.in_beats} beats")
    return with_repeats(cores, names, first_repeats)


def _image_in_elements(layer: LayerHW) -> int:
    """Elements of one image at the input of ``layer``."""
    if layer.in_shape:
        return int(np.prod(layer.in_shape))
    return int(np.asarray(layer.weights).shape[1])


def layer_hw_from_ir(layer, *, simd: int = 1, pe: int = 1, **overrides) -> LayerHW:
    """Adapt an IR layer object (``bnnhw.ir.Dense`` / ``bnnhw.ir.MaxPool``) to LayerHW.

    Reads attributes by name only.  Raises ValueError for what the cores do
    not implement (``score_kind == "rank_table"``)."""
    kind = getattr(layer, "kind", None)
    name = getattr(layer, "name", "layer")
    if kind == "maxpool":
        hw = LayerHW(name=name, kind="maxpool", in_shape=tuple(layer.in_shape),
                     kernel=int(layer.kernel), pool_op=[str(o) for o in layer.pool_op],
                     simd=simd)
    elif kind in ("conv", "fc"):
        score_kind = getattr(layer, "score_kind", None)
        if layer.thresholds is None and score_kind not in (None, "popcount", "rank_table"):
            raise ValueError(f"layer {name}: score_kind {score_kind!r} has no core; "
                             f"known: 'popcount', 'rank_table'")
        table = getattr(layer, "score_table", None) if score_kind == "rank_table" else None
        bits = int(getattr(layer, "input_bits", 1))
        hw = LayerHW(name=name, kind=kind, in_shape=tuple(layer.in_shape),
                     weights=np.asarray(layer.weights), thresholds=layer.thresholds,
                     kernel=int(getattr(layer, "kernel", 1)),
                     stride=int(getattr(layer, "stride", 1)),
                     padding=int(getattr(layer, "padding", 0)),
                     pad_value=int(getattr(layer, "pad_value", 0)),
                     input_bits=bits, input_signed=bool(getattr(layer, "input_signed", False)),
                     simd=simd, pe=pe, score="popcount", score_table=table,
                     acc_min=getattr(layer, "acc_min", None),
                     acc_max=getattr(layer, "acc_max", None))
    else:
        raise ValueError(f"layer {name}: kind {kind!r} has no lowering; known kinds: "
                         f"{', '.join(KINDS)}")
    for k, v in overrides.items():
        if not hasattr(hw, k):
            raise ValueError(f"layer {name}: unknown override {k!r}")
        setattr(hw, k, v)
    return hw
