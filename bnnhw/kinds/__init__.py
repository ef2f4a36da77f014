"""Layer kinds: one registration per IR layer kind bundles what every stage needs.

A :class:`LayerKind` says, for the IR layers whose ``kind`` is one of its
``names``:

* **IR semantics** -- the golden op (:meth:`~LayerKind.golden_prepare`,
  :meth:`~LayerKind.golden`: integers in, integers out, channels-last), and for
  kinds beyond the built-in ones their IR file fields and shape check
  (:meth:`~LayerKind.ir_arrays`, :meth:`~LayerKind.ir_header`,
  :meth:`~LayerKind.ir_from_header`, :meth:`~LayerKind.ir_check`);
* **folding** -- its geometry (:meth:`~LayerKind.geometry`), legal foldings
  (:meth:`~LayerKind.legal_values`, :meth:`~LayerKind.candidates`,
  :meth:`~LayerKind.check_fold`), cycles per image and cost of a folding
  (:meth:`~LayerKind.figures`, from :mod:`bnnhw.hwmodel`), stream widths, and how a
  folding file entry is read (:meth:`~LayerKind.fold_from_file`);
* **lowering** -- the chain of registered cores (:mod:`bnnhw.cores`) it becomes
  (:meth:`~LayerKind.layer_hw`, :meth:`~LayerKind.lower`); each core carries its
  own cost model per FPGA family (``core.cost(family)``) and its conformance
  adapter (:mod:`bnnhw.cores.registry`);
* **estimates** -- its row of a design's estimates (:meth:`~LayerKind.estimate_row`).

The golden model (:mod:`bnnhw.golden`), the folding search (:mod:`bnnhw.dataflow.folding`),
the lowering of a plan (:mod:`bnnhw.dataflow.lower`), the estimates
(:mod:`bnnhw.dataflow.design`) and the board-fit hints (:mod:`bnnhw.dataflow.fit`)
iterate over the layers and ask each layer's kind; an unregistered kind is an error
naming the registered ones.  Adding a layer kind = one module with a
``@register_kind`` class and its core(s) with ``@register`` (``docs/extending.md``
walks through one).  Built in: :mod:`.dense` (``fc``, ``conv``), :mod:`.maxpool`.

Not yet here: the IR fields and checks of the built-in kinds (still in
:mod:`bnnhw.ir`), the torch and QONNX front ends and the QONNX writer
(:mod:`bnnhw.export`, :mod:`bnnhw.qonnx_import`, :mod:`bnnhw.qonnx_export`), and the
per-kind parts of :mod:`bnnhw.report`, :mod:`bnnhw.analyze` and
:mod:`bnnhw.dataflow.debug`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..errors import BnnhwError, FoldingError

__all__ = ["LayerKind", "LayerGeom", "LayerFold", "register_kind", "get_kind", "kind_of",
           "kinds", "fmt_values"]


def fmt_values(values) -> str:
    return ",".join(str(v) for v in values)


@dataclass(frozen=True)
class LayerGeom:
    """What the folding models need to know about one IR layer (fields a kind does not
    use keep their defaults; ``extra`` holds anything else a kind needs)."""
    name: str
    kind: str
    index: int
    mw: int = 0
    mh: int = 0
    bits: int = 1             # input element width (1 = binary)
    signed: bool = False
    acc_bits: int = 1
    is_output: bool = False
    score_kind: str | None = None
    score_span: int = 0
    score_table_width: int = 0
    h: int = 1
    w: int = 1
    c: int = 1
    k: int = 1
    stride: int = 1
    pad: int = 0
    oh: int = 1
    ow: int = 1
    extra: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class LayerFold:
    """Folding of one layer (``pe``/``planes`` are 1 where they do not apply)."""
    name: str
    kind: str
    simd: int
    pe: int = 1
    planes: int = 1

    def as_dict(self) -> dict:
        """The layer's entry of a folding file (the keys its kind reads)."""
        d = {"name": self.name, "kind": self.kind}
        for key in get_kind(self.kind).fold_keys:
            if key != "planes":
                d[key] = getattr(self, key)
        return d


class LayerKind:
    """Base of a layer kind; see the module docstring.  Subclasses set ``names`` (the IR
    ``kind`` strings they handle) and ``fold_keys`` (the folding parameters they take,
    among ``simd``, ``pe``, ``planes``), and implement the methods below that raise
    ``NotImplementedError``."""

    names: tuple = ()
    fold_keys: tuple = ("simd",)
    #: a folding file must give this kind's layers (False: a default is derived)
    required_in_file: bool = True

    # -- IR semantics ------------------------------------------------------
    def golden_prepare(self, layer, reference: bool):
        """Anything :meth:`golden` wants precomputed once per network (packed weights)."""
        return None

    def golden(self, layer, prep, x, outs, reference: bool):
        """The layer's output for the integer batch ``x`` (channels-last, batch first);
        append the layer's record (a dict of arrays) to ``outs`` unless it is None."""
        raise NotImplementedError(f"kind {self.names} has no golden op")

    # -- IR file (kinds beyond the built-in fc, conv, maxpool of bnnhw.ir) ---------
    def ir_arrays(self, layer) -> dict:
        """The layer's arrays stored in the IR file, by member name."""
        return {}

    def ir_header(self, layer) -> dict:
        """The JSON fields of the layer's header entry besides ``name``, ``kind``,
        ``in_shape``, ``out_shape``, ``arrays`` and ``source``."""
        raise NotImplementedError(f"kind {self.names} cannot be saved in an IR file")

    def ir_from_header(self, d: dict, arrays: dict):
        """The layer of header entry ``d`` with its arrays (member name -> array)."""
        raise NotImplementedError(f"kind {self.names} cannot be loaded from an IR file")

    def ir_check(self, layer, shape: tuple, bad) -> tuple:
        """Check ``layer`` against the shape it receives; return the shape it produces.
        Raise ``bad(message)`` for what is wrong."""
        return tuple(layer.out_shape)

    # -- folding -------------------------------------------------------------
    def geometry(self, layer, index: int) -> LayerGeom:
        raise NotImplementedError(f"kind {self.names} has no geometry")

    def legal_values(self, g: LayerGeom) -> dict:
        """``{key: [legal values]}`` for every key of ``fold_keys``."""
        raise NotImplementedError(f"kind {self.names} has no legal foldings")

    def candidates(self, g: LayerGeom) -> list:
        """Every legal :class:`LayerFold` (the search keeps the first of equal cost)."""
        return [LayerFold(g.name, g.kind, simd=s) for s in self.legal_values(g)["simd"]]

    def check_fold(self, g: LayerGeom, f: LayerFold) -> None:
        """Raise FoldingError naming the layer and the legal values unless ``f`` is legal."""
        for key, legal in self.legal_values(g).items():
            if getattr(f, key) not in legal:
                raise FoldingError(f"layer {g.name}: {key}={getattr(f, key)} is not legal; "
                                   f"legal: {fmt_values(legal)}", "choose a legal value")

    def in_width(self, g: LayerGeom, f: LayerFold) -> int:
        """Bits per beat of the layer's first core."""
        raise NotImplementedError

    def out_width(self, g: LayerGeom, f: LayerFold) -> int:
        """Bits per beat leaving the layer (before a LabelSelect)."""
        raise NotImplementedError

    def in_bits(self, g: LayerGeom) -> int:
        """Bits of one image entering the layer."""
        return g.h * g.w * g.c * g.bits

    def add_figures(self, g: LayerGeom, f: LayerFold, cyc: dict, cost) -> None:
        """Add the cycles per image of each core of the layer to ``cyc`` (name -> cycles)
        and their estimated costs to ``cost`` (a :class:`bnnhw.hwmodel.Cost`, ECP5;
        ``cost.add(part_cost, name)``).  The width converter in front of the layer is
        already there (:func:`bnnhw.dataflow.folding.layer_figures`)."""
        raise NotImplementedError(f"kind {self.names} has no cycle/cost formulas")

    def fastest_reason(self, g: LayerGeom, part: str) -> str:
        """Why ``part`` limits the layer at its fastest folding (for error messages)."""
        return "fully unrolled"

    def fold_from_file(self, g: LayerGeom, entry: dict | None, prev: LayerFold | None,
                       where: str) -> LayerFold:
        """The fold a folding file's ``entry`` gives (None: the layer has no entry)."""
        if entry is None:
            raise FoldingError(f"{where}: no folding for layer {g.name}",
                               f"give {', '.join(self.fold_keys)}")
        vals = {}
        for key in self.fold_keys:
            if key not in entry:
                raise FoldingError(f"{where}: layer {g.name} has no {key!r}",
                                   f"give {', '.join(self.fold_keys)}")
            vals[key] = check_int(entry[key], key, f"layer {g.name}")
        return LayerFold(g.name, g.kind, **vals)

    def fold_json(self, f: LayerFold, bits: int) -> dict:
        """The layer's entry of ``folding.json`` (``bits``: its input element width)."""
        return f.as_dict()

    def describe_fold(self, f: LayerFold, bits: int) -> str:
        return " ".join(f"{k}={getattr(f, k)}" for k in self.fold_keys)

    def fold_further(self, g: LayerGeom, f: LayerFold, key: str) -> tuple:
        """``(now, tip)``: the fold as text and what to try to use fewer LUTs
        (``key == "lut"``) or block RAMs (``"ebr"``)."""
        lv = self.legal_values(g)
        now = self.describe_fold(f, g.bits)
        for k in ("pe", "simd"):
            smaller = [v for v in lv.get(k, []) if v < getattr(f, k)]
            if smaller:
                return now, f"{k}={smaller[-1]}"
        return now, "already fully folded"

    # -- lowering --------------------------------------------------------------
    def layer_hw(self, layer, fold: LayerFold):
        """The :class:`bnnhw.cores.lowering.LayerHW` of ``layer`` under ``fold``."""
        raise NotImplementedError(f"kind {self.names} has no lowering")

    def lower(self, hw):
        """The :class:`bnnhw.cores.lowering.Chain` of cores for ``hw`` (built-in kinds:
        :func:`bnnhw.cores.lowering.lower`; :func:`bnnhw.dataflow.lower_plan` registers
        the others with :func:`bnnhw.cores.lowering.register_lowering`)."""
        raise NotImplementedError(f"kind {self.names} has no lowering")

    # -- estimates ---------------------------------------------------------------
    def estimate_row(self, layer, fold: LayerFold) -> dict:
        """The layer's fields of ``estimates.json`` beyond name, kind and cycles."""
        return {"simd": fold.simd, "weight_bits": 0, "threshold_bits": 0}


def check_int(value, what, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FoldingError(f"{name}: {what} must be a positive integer, not {value!r}",
                           "fix the folding file")
    return value


_KINDS: dict[str, LayerKind] = {}
_LOADED = False


def register_kind(cls):
    """Class decorator: register a :class:`LayerKind` for each of its ``names``.  A name
    registered again by another class replaces it (a kind can be overridden)."""
    inst = cls()
    for name in cls.names:
        _KINDS[name] = inst
    return cls


def _load_builtin():
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for mod in ("dense", "maxpool"):
            importlib.import_module(f"{__name__}.{mod}")


def get_kind(name: str) -> LayerKind:
    """The kind registered as ``name``; a BnnhwError naming the registered ones if none."""
    _load_builtin()
    try:
        return _KINDS[name]
    except KeyError:
        raise BnnhwError(f"layer kind {name!r} is not registered; registered: "
                         f"{', '.join(sorted(_KINDS))}",
                         "import the module that registers it (bnnhw.kinds.register_kind)") \
            from None


def kind_of(layer) -> LayerKind:
    return get_kind(getattr(layer, "kind", None))


def kinds() -> dict[str, LayerKind]:
    _load_builtin()
    return dict(_KINDS)
