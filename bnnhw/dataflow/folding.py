"""Folding: SIMD, PE (and bit-planes) per layer, chosen for a target or a budget, or read
from a file the user edits.

Vocabulary (FINN's, :mod:`bnnhw.layout`): a conv/fc layer has ``MW`` inputs
and ``MH`` outputs per vector; ``SIMD`` (a divisor of MW) inputs and ``PE``
(a divisor of MH) outputs are computed per cycle; an integer-input first
layer also processes ``planes`` (a divisor of its input width B) bit-planes
per cycle.  A max-pool takes ``simd`` channels per beat (a divisor of C).

How a folding is chosen (:func:`plan_folding`)
----------------------------------------------
* **Target** (``target_cycles``, or ``target_fps`` at ``clock_mhz``: target
  = floor(clock / fps)): every layer must finish an image in at most the
  target number of cycles (:mod:`.models` gives each layer's cycles).  Among
  all legal foldings that do, the one with the fewest estimated LUTs is
  taken: an exact dynamic programme over the layers in stream order (its
  state is the width of the stream between two layers, because the width
  converters in between cost cycles and LUTs).  The LUT model charges
  ``2.2`` LUTs per PE*SIMD*planes and ``2*acc_bits`` per PE, so at equal
  parallelism SIMD is raised before PE (FINN's rule), and nothing is faster
  than it needs to be (a block RAM counts as 50 LUTs in this sum).  Ties go
  to the smaller PE, then the smaller SIMD.
  A target no folding meets is an error naming the layer and the minimum.
* **Budget** (``max_luts``): the smallest target whose cheapest folding fits
  the budget, FIFOs included (the cost of the cheapest folding falls as the
  target grows, so a bisection over the achievable per-layer cycle counts
  finds it).  With both a target and a budget, the target's folding must fit.
* **File** (``folding``, a dict from :func:`load_folding_file` or the JSON
  object itself): every conv/fc layer must be given (``planes`` may be left
  out: all ``B`` bit-planes per cycle); a max-pool without an entry takes the
  PE of the conv before it (no width converter needed).
  Illegal values are errors that list the legal ones; nothing falls back to
  PE=SIMD=1 silently.
* Nothing given: the target is the input-stream bound (the image enters one
  element per cycle) or the slowest layer's fastest folding, whichever is
  larger -- the fastest design the network and its input allow.

The chosen folding is written as ``folding.json`` (:meth:`FoldingPlan.to_json`)
and read back by ``--folding`` to rebuild the same design.
"""
from __future__ import annotations

import json
import numbers
import os
from dataclasses import dataclass, field
from math import gcd

from ..errors import BnnhwError
from ..ir import Dense, MaxPool, NetworkIR
from ..layout import divisors
from . import models as M
from .fifo import size_fifos
from .lower import lower_plan

__all__ = ["FOLDING_FORMAT", "FOLDING_VERSION", "LayerFold", "LayerGeom", "FoldingPlan",
           "FoldingError", "plan_folding", "load_folding_file", "network_geometry",
           "evaluate_folding", "min_cycles", "legal_values", "achievable_targets",
           "fastest_passing"]

FOLDING_FORMAT = "bnnhw.folding"
FOLDING_VERSION = 1


class FoldingError(BnnhwError):
    """An illegal folding or an impossible target/budget; the message names the layer."""


def _fmt(values) -> str:
    return ",".join(str(v) for v in values)


# ---------------------------------------------------------------------------
# geometry

@dataclass(frozen=True)
class LayerGeom:
    """What the models need to know about one IR layer."""
    name: str
    kind: str                 # conv | fc | maxpool
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

    @property
    def vectors(self) -> int:
        return self.oh * self.ow if self.kind == "conv" else 1

    @property
    def in_elements(self) -> int:
        return self.h * self.w * self.c if self.kind != "fc" else self.mw

    @property
    def score_width(self) -> int:
        """Bits of one score field leaving the MVAU (see bnnhw.cores.mvau)."""
        if self.bits == 1:
            return (self.mw).bit_length() + 1
        return M.mvau_widths(self.mw, self.bits, self.signed)[0]


def _signed_width(v: int) -> int:
    v = int(v)
    return (v.bit_length() if v >= 0 else (-v - 1).bit_length()) + 1


def network_geometry(ir: NetworkIR) -> list[LayerGeom]:
    out = []
    for i, l in enumerate(ir.layers):
        if isinstance(l, MaxPool):
            h, w, c = l.in_shape
            oh, ow, _ = l.out_shape
            out.append(LayerGeom(name=l.name, kind="maxpool", index=i, h=h, w=w, c=c,
                                 k=l.kernel, stride=l.kernel, oh=oh, ow=ow))
            continue
        assert isinstance(l, Dense)
        g = dict(name=l.name, kind=l.kind, index=i, mw=l.mw, mh=l.mh, bits=l.input_bits,
                 signed=bool(l.input_signed), acc_bits=l.acc_bits, is_output=l.is_output,
                 score_kind=l.score_kind if l.is_output else None)
        if l.is_output and l.score_kind == "rank_table":
            t = l.score_table
            g.update(score_span=l.acc_max - l.acc_min + 1,
                     score_table_width=max(_signed_width(t.min()), _signed_width(t.max())))
        if l.kind == "conv":
            h, w, c = l.in_shape
            oh, ow, _ = l.out_shape
            g.update(h=h, w=w, c=c, k=l.kernel, stride=l.stride, pad=l.padding, oh=oh, ow=ow)
        out.append(LayerGeom(**g))
    return out


# ---------------------------------------------------------------------------
# folds and their figures

@dataclass(frozen=True)
class LayerFold:
    """Folding of one layer (``pe``/``planes`` are 1 where they do not apply)."""
    name: str
    kind: str
    simd: int
    pe: int = 1
    planes: int = 1

    def as_dict(self) -> dict:
        if self.kind == "maxpool":
            return {"name": self.name, "kind": self.kind, "simd": self.simd}
        d = {"name": self.name, "kind": self.kind, "simd": self.simd, "pe": self.pe}
        return d


def in_width(g: LayerGeom, f: LayerFold) -> int:
    """Bits per beat of the first core of the layer."""
    if g.kind == "fc":
        return f.simd * g.bits
    if g.kind == "conv":
        return gcd(f.simd, g.c) * g.bits
    return f.simd


def out_width(g: LayerGeom, f: LayerFold) -> int:
    """Bits per beat leaving the layer (before a LabelSelect)."""
    if g.kind == "maxpool":
        return f.simd
    if not g.is_output:
        return f.pe
    if g.score_kind == "rank_table":
        return f.pe * g.score_table_width
    return f.pe * g.score_width


def layer_figures(g: LayerGeom, f: LayerFold, prev_width: int) -> tuple[dict, M.Cost]:
    """Cycles per image of each part of the layer (dict) and its estimated cost.

    ``prev_width``: bits per beat of the stream entering the layer (the input
    element width for the first layer)."""
    cyc: dict[str, int] = {}
    cost = M.Cost()
    first_w = in_width(g, f)
    bits_in = g.in_elements * (g.bits if g.kind != "maxpool" else 1)
    lc = M.link_cycles(prev_width, first_w, bits_in)
    if lc:
        cyc["link"] = lc
        cost.add(M.converter_cost(prev_width, first_w), "link")
    if g.kind == "maxpool":
        cyc["maxpool"] = g.h * g.w * g.c // f.simd
        cost.add(M.maxpool_cost(simd=f.simd, out_width=g.ow, cf=g.c // f.simd), "maxpool")
        return cyc, cost
    groups = g.bits // f.planes
    nf, sf = g.mh // f.pe, g.mw // f.simd
    if g.kind == "conv":
        gs = gcd(f.simd, g.c)
        cyc["swu"] = M.swu_cycles(g.h, g.w, g.c, g.k, g.oh, g.ow, gs)
        rows = M.swu_default_rows(g.h, g.k, g.stride, g.pad, g.oh)
        cost.add(M.swu_cost(width=gs * g.bits, row_words=g.w * (g.c // gs), rows=rows), "swu")
        if gs != f.simd:
            cost.add(M.converter_cost(gs * g.bits, f.simd * g.bits), "widen")
    cyc["mvau"] = g.vectors * nf * groups * sf
    cost.add(M.mvau_cost(mw=g.mw, mh=g.mh, simd=f.simd, pe=f.pe, bits=g.bits,
                         planes=f.planes, signed=g.signed,
                         thresholds=not g.is_output), "mvau")
    if g.is_output:
        sw = g.score_width
        if g.score_kind == "rank_table":
            cyc["score_table"] = nf
            cost.add(M.score_table_cost(mh=g.mh, pe=f.pe, span=g.score_span,
                                        score_width=g.score_table_width), "score_table")
            sw = g.score_table_width
        cyc["label_select"] = g.mh // f.pe
        cost.add(M.label_select_cost(pe=f.pe, score_width=sw), "label_select")
    return cyc, cost


def legal_values(g: LayerGeom) -> dict[str, list[int]]:
    if g.kind == "maxpool":
        return {"simd": divisors(g.c)}
    out = {"simd": divisors(g.mw), "pe": divisors(g.mh)}
    if g.bits > 1:
        out["planes"] = divisors(g.bits)
    return out


def _candidates(g: LayerGeom) -> list[LayerFold]:
    lv = legal_values(g)
    if g.kind == "maxpool":
        return [LayerFold(g.name, g.kind, simd=s) for s in lv["simd"]]
    return [LayerFold(g.name, g.kind, simd=s, pe=p, planes=q)
            for p in lv["pe"] for s in lv["simd"] for q in lv.get("planes", [1])]


def _fastest(g: LayerGeom) -> tuple[int, str]:
    """Fewest cycles per image the layer can reach (best link), and why."""
    best = None
    for f in _candidates(g):
        cyc, _ = layer_figures(g, f, in_width(g, f))   # no converter in front
        c = max(cyc.values())
        if best is None or c < best[0]:
            best = (c, max(cyc, key=cyc.get), f)
    c, part, f = best
    if g.kind == "conv" and part == "swu":
        why = (f"fully unrolled; its sliding-window unit emits at most C={g.c} channels per "
               f"cycle, K*K={g.k * g.k} beats for each of {g.oh}x{g.ow} output pixels")
    elif g.kind == "maxpool":
        why = f"all {g.c} channels per cycle over {g.h}x{g.w} pixels"
    elif g.kind == "conv":
        why = f"fully unrolled (one output pixel per cycle, {g.oh}x{g.ow} pixels)"
    else:
        why = "fully unrolled (one vector per cycle)"
    return c, why


def min_cycles(ir: NetworkIR) -> dict:
    """The fastest each layer (and the input stream) can go: ``{name: (cycles, why)}``
    with the input stream under ``"input"``."""
    geo = network_geometry(ir)
    q = ir.input
    out = {"input": (q.height * q.width * q.channels,
                     f"the input stream carries one element per cycle "
                     f"({q.height}x{q.width}x{q.channels} elements per image)")}
    for g in geo:
        out[g.name] = _fastest(g)
    return out


# ---------------------------------------------------------------------------
# the plan

@dataclass
class FoldingPlan:
    """A folding for every layer of a network, and how it was chosen."""
    folds: list[LayerFold]
    mode: str = "target"               # target | budget | file | default
    target_cycles: int | None = None
    max_luts: int | None = None
    clock_mhz: float | None = None
    target_fps: float | None = None
    source: str | None = None
    figures: list[dict] = field(default_factory=list)   # per layer: cycles, cost

    def fold(self, name: str) -> LayerFold:
        for f in self.folds:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def bound_cycles(self) -> int:
        """Analytic cycles per image of the slowest layer (or of the input stream)."""
        return max(fg["cycles"] for fg in self.figures)

    @property
    def bottleneck(self) -> str:
        return max(self.figures, key=lambda fg: fg["cycles"])["name"]

    @property
    def lut_estimate(self) -> int:
        """Estimated LUTs of the layers and converters (FIFOs not included)."""
        return int(round(sum(fg["lut"] for fg in self.figures)))

    def to_json(self) -> dict:
        """The ``folding.json`` object (read back by :func:`load_folding_file`)."""
        layers = []
        byname = {fg["name"]: fg for fg in self.figures}
        for f in self.folds:
            d = f.as_dict()
            if f.kind != "maxpool" and byname.get(f.name, {}).get("bits", 1) > 1:
                d["planes"] = f.planes
            fg = byname.get(f.name)
            if fg:
                d["cycles"] = fg["cycles"]
                d["lut_estimate"] = int(round(fg["lut"]))
                d["ebr_estimate"] = fg["ebr"]
            layers.append(d)
        return {"format": FOLDING_FORMAT, "version": FOLDING_VERSION,
                "how": self.mode, "target_cycles": self.target_cycles,
                "target_fps": self.target_fps, "clock_mhz": self.clock_mhz,
                "max_luts": self.max_luts,
                "bound_cycles_per_frame": self.bound_cycles, "bottleneck": self.bottleneck,
                "note": "only simd, pe and planes are read back; the other figures are "
                        "recomputed",
                "layers": layers}

    def describe(self) -> str:
        rows = []
        for f, fg in zip(self.folds, self.figures[1:]):
            what = (f"simd={f.simd}" if f.kind == "maxpool" else
                    f"simd={f.simd} pe={f.pe}" + (f" planes={f.planes}" if fg.get("bits", 1) > 1
                                                  else ""))
            rows.append(f"  {f.name:<12} {what:<28} {fg['cycles']:>9} cycles  "
                        f"~{int(round(fg['lut']))} LUT {fg['ebr']} EBR")
        return "\n".join(rows)


def evaluate_folding(ir: NetworkIR, folds: list[LayerFold]) -> list[dict]:
    """Per-layer figures of a complete folding: the input stream first, then one dict
    per layer with ``name``, ``cycles``, ``parts`` (cycles of each core), ``lut``,
    ``ebr``."""
    geo = network_geometry(ir)
    q = ir.input
    figs = [{"name": "input", "cycles": q.height * q.width * q.channels,
             "parts": {"stream": q.height * q.width * q.channels}, "lut": 0.0, "ebr": 0}]
    width = q.bits
    for n, (g, f) in enumerate(zip(geo, folds)):
        cyc, cost = layer_figures(g, f, width)
        if n == 0 and "link" in cyc:
            # the converter from the one-element input stream belongs to the input
            figs[0]["parts"]["link"] = cyc.pop("link")
            link = cost.parts.pop("link")
            cost.lut -= link["lut"]
            figs[0]["lut"] += link["lut"]
        figs.append({"name": g.name, "kind": g.kind, "bits": g.bits,
                     "cycles": max(cyc.values()), "parts": cyc,
                     "lut": cost.lut, "ebr": cost.ebr, "cost_parts": cost.parts})
        width = out_width(g, f)
    return figs


def _search(geo: list[LayerGeom], in_bits: int, target: int):
    """Cheapest folding with every layer <= target cycles: (folds, total lut) or None,
    plus the first layer that cannot meet the target."""
    # states: stream width -> (cost, folds)
    states = {in_bits: (0.0, ())}
    for g in geo:
        nxt: dict[int, tuple] = {}
        for width in sorted(states):
            base, folds = states[width]
            for f in _candidates(g):
                cyc, cost = layer_figures(g, f, width)
                if max(cyc.values()) > target:
                    continue
                total = base + cost.lut + 50.0 * cost.ebr
                key = out_width(g, f)
                cur = nxt.get(key)
                if cur is None or total < cur[0] - 1e-9:
                    nxt[key] = (total, folds + (f,))
        if not nxt:
            return None, g
        states = nxt
    best = min(states.values(), key=lambda s: s[0])
    return list(best[1]), None


def _impossible(ir: NetworkIR, target: int, layer: LayerGeom | None) -> FoldingError:
    mins = min_cycles(ir)
    fastest = max(c for c, _ in mins.values())
    if mins["input"][0] > target:
        c, why = mins["input"]
        return FoldingError(f"target {target} cycles/frame is impossible: {why}, so an image "
                            f"needs at least {c} cycles",
                            f"use a target of at least {fastest} cycles/frame (the fastest "
                            f"this network allows)")
    for name, (c, why) in mins.items():
        if name != "input" and c > target:
            return FoldingError(f"target {target} cycles/frame is impossible: {name} needs at "
                                f"least {c} cycles/frame ({why})",
                                f"use a target of at least {fastest} cycles/frame (the "
                                f"fastest this network allows)")
    name = layer.name if layer is not None else "?"
    return FoldingError(f"target {target} cycles/frame is impossible: no folding of {name} "
                        f"meets it together with the width converters around it",
                        f"use a larger target (the fastest layer foldings need {fastest})")


def _plan_for_target(ir, geo, target) -> list[LayerFold]:
    folds, bad = _search(geo, ir.input.bits, target)
    if folds is None:
        raise _impossible(ir, target, bad)
    return folds


def _check_int(value, what, name, positive=True):
    if isinstance(value, bool) or not isinstance(value, int) or (positive and value < 1):
        raise FoldingError(f"{name}: {what} must be a positive integer, not {value!r}",
                           "fix the folding file")
    return value


_INFO_KEYS = {"name", "kind", "cycles", "lut_estimate", "ebr_estimate"}


def _folds_from_file(ir: NetworkIR, geo: list[LayerGeom], data, source: str) -> list[LayerFold]:
    where = f"folding file {source}" if source else "folding"
    if not isinstance(data, dict):
        raise FoldingError(f"{where}: expected a JSON object with a 'layers' list",
                           "start from the folding.json a build writes")
    fmt = data.get("format", FOLDING_FORMAT)
    if fmt != FOLDING_FORMAT:
        raise FoldingError(f"{where}: format {fmt!r} is not {FOLDING_FORMAT!r}",
                           "start from the folding.json a build writes")
    if data.get("version", FOLDING_VERSION) != FOLDING_VERSION:
        raise FoldingError(f"{where}: version {data.get('version')!r}; this bnnhw reads "
                           f"version {FOLDING_VERSION}", "write a new one with this bnnhw")
    layers = data.get("layers")
    if isinstance(layers, dict):
        layers = [{"name": k, **(v if isinstance(v, dict) else {"_bad": v})}
                  for k, v in layers.items()]
    if not isinstance(layers, list):
        raise FoldingError(f"{where}: 'layers' must be a list of objects with name, simd "
                           f"and pe", "start from the folding.json a build writes")
    names = [g.name for g in geo]
    given: dict[str, dict] = {}
    for entry in layers:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise FoldingError(f"{where}: every layer entry needs a 'name' (got {entry!r})",
                               "start from the folding.json a build writes")
        n = entry["name"]
        if n not in names:
            raise FoldingError(f"{where}: layer {n!r} is not in the network; its layers are "
                               f"{', '.join(names)}", "use the network's layer names")
        if n in given:
            raise FoldingError(f"{where}: layer {n} is given twice", "keep one entry")
        given[n] = entry
    folds = []
    missing = [g.name for g in geo if g.kind != "maxpool" and g.name not in given]
    if missing:
        raise FoldingError(f"{where}: no folding for layer{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(missing)}",
                           "give simd and pe for every conv/fc layer (a build's folding.json "
                           "lists them all)")
    prev = None
    for g in geo:
        e = given.get(g.name)
        allowed = set(legal_values(g)) | _INFO_KEYS | ({"planes"} if g.kind != "maxpool" else set())
        if e is not None:
            unknown = sorted(set(e) - allowed)
            if unknown:
                raise FoldingError(f"{where}: layer {g.name}: unknown key"
                                   f"{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                                   f"a {g.kind} layer takes {', '.join(sorted(legal_values(g)))}",
                                   "only simd, pe and planes (integer first layers) are read")
            if e.get("kind", g.kind) != g.kind:
                raise FoldingError(f"{where}: layer {g.name} is a {g.kind} layer, not "
                                   f"{e.get('kind')!r}", "fix or drop its 'kind'")
        if g.kind == "maxpool":
            if e is None or "simd" not in e:
                simd = prev.pe if prev is not None and prev.kind == "conv" else 1
                if g.c % simd:
                    simd = gcd(simd, g.c)
            else:
                simd = _check_int(e["simd"], "simd", f"layer {g.name}")
            f = LayerFold(g.name, "maxpool", simd=simd)
        else:
            for key in ("simd", "pe"):
                if key not in e:
                    raise FoldingError(f"{where}: layer {g.name} has no {key!r}",
                                       f"give simd and pe (legal {key}: "
                                       f"{_fmt(legal_values(g)[key])})")
            simd = _check_int(e["simd"], "SIMD", f"layer {g.name}")
            pe = _check_int(e["pe"], "PE", f"layer {g.name}")
            planes = e.get("planes", g.bits)
            planes = _check_int(planes, "planes", f"layer {g.name}")
            f = LayerFold(g.name, g.kind, simd=simd, pe=pe, planes=planes)
        check_fold(g, f)
        folds.append(f)
        prev = f
    return folds


def check_fold(g: LayerGeom, f: LayerFold) -> None:
    """Raise FoldingError naming the layer and the legal values unless ``f`` is legal."""
    lv = legal_values(g)
    if g.kind == "maxpool":
        if g.c % f.simd:
            raise FoldingError(f"layer {g.name}: SIMD={f.simd} does not divide C={g.c}; "
                               f"legal: {_fmt(lv['simd'])}", "choose a legal value")
        return
    if g.mw % f.simd:
        raise FoldingError(f"layer {g.name}: SIMD={f.simd} does not divide MW={g.mw}; "
                           f"legal: {_fmt(lv['simd'])}", "choose a legal value")
    if g.mh % f.pe:
        raise FoldingError(f"layer {g.name}: PE={f.pe} does not divide MH={g.mh}; "
                           f"legal: {_fmt(lv['pe'])}", "choose a legal value")
    if g.bits % f.planes:
        legal = _fmt(lv.get("planes", [1]))
        raise FoldingError(f"layer {g.name}: planes={f.planes} does not divide the input "
                           f"width B={g.bits}; legal: {legal}", "choose a legal value")


def load_folding_file(path: str) -> dict:
    """Read a folding JSON file (errors are FoldingErrors that say what to fix)."""
    if not os.path.isfile(path):
        raise FoldingError(f"folding file {path!r} does not exist",
                           "write one with `bnnhw build -o DIR` (DIR/folding.json) or "
                           "`bnnhw sim --save-folding FILE`")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError) as e:
        raise FoldingError(f"cannot read folding file {path!r}: {e}", "check the path") from None
    except json.JSONDecodeError as e:
        raise FoldingError(f"folding file {path!r} is not valid JSON: {e.msg} at line "
                           f"{e.lineno} column {e.colno}", "fix the JSON syntax") from None
    if isinstance(data, dict):
        data = dict(data)
        data.setdefault("_source", path)
    return data


def plan_folding(ir: NetworkIR, *, target_cycles: int | None = None,
                 target_fps: float | None = None, clock_mhz: float | None = None,
                 folding: dict | list | None = None, max_luts: int | None = None,
                 source: str | None = None) -> FoldingPlan:
    """Choose (or check) a folding for every layer of ``ir``; see the module doc.

    Raises :class:`FoldingError` for illegal or impossible requests."""
    geo = network_geometry(ir)
    if target_fps is not None or clock_mhz is not None:
        if target_fps is None or clock_mhz is None:
            raise FoldingError("a frame-rate target needs both --target-fps and --clock-mhz",
                               "e.g. --target-fps 10000 --clock-mhz 50")
        if target_cycles is not None:
            raise FoldingError("give either --target-cycles or --target-fps/--clock-mhz, "
                               "not both", "drop one of them")
        if not (target_fps > 0 and clock_mhz > 0):
            raise FoldingError(f"--target-fps {target_fps} and --clock-mhz {clock_mhz} must be "
                               f"positive", "e.g. --target-fps 10000 --clock-mhz 50")
        target_cycles = int(clock_mhz * 1e6 // target_fps)
        if target_cycles < 1:
            raise FoldingError(f"{target_fps} frames/s at {clock_mhz} MHz leaves less than one "
                               f"cycle per frame", "lower --target-fps or raise --clock-mhz")
    if isinstance(target_cycles, numbers.Integral) and not isinstance(target_cycles, bool):
        target_cycles = int(target_cycles)
    if isinstance(max_luts, numbers.Integral) and not isinstance(max_luts, bool):
        max_luts = int(max_luts)
    if target_cycles is not None:
        if isinstance(target_cycles, bool) or not isinstance(target_cycles, int) \
                or target_cycles < 1:
            raise FoldingError(f"target {target_cycles!r} cycles/frame must be a positive "
                               f"integer", "e.g. --target-cycles 1000")
    if max_luts is not None and (isinstance(max_luts, bool) or not isinstance(max_luts, int)
                                 or max_luts < 1):
        raise FoldingError(f"LUT budget {max_luts!r} must be a positive integer",
                           "e.g. --max-luts 20000")
    if folding is not None:
        if target_cycles is not None or max_luts is not None:
            raise FoldingError("a folding file fixes the folding; do not also give a target "
                               "or a LUT budget", "drop --target-cycles/--target-fps/--max-luts")
        if isinstance(folding, list):
            folding = {"layers": folding}
        src = source or (folding.get("_source") if isinstance(folding, dict) else None)
        folds = _folds_from_file(ir, geo, folding, src)
        mode = "file"
    elif max_luts is not None:
        folds, target_cycles = _plan_for_budget(ir, geo, max_luts, target_cycles)
        mode = "budget"
        src = None
    else:
        mode = "target"
        src = None
        if target_cycles is None:
            mins = min_cycles(ir)
            target_cycles = max(c for c, _ in mins.values())
            mode = "default"
        folds = _plan_for_target(ir, geo, target_cycles)
    plan = FoldingPlan(folds=folds, mode=mode, target_cycles=target_cycles, max_luts=max_luts,
                       clock_mhz=clock_mhz, target_fps=target_fps, source=src)
    plan.figures = evaluate_folding(ir, folds)
    return plan


def achievable_targets(ir: NetworkIR) -> list[int]:
    """Every per-layer cycles-per-frame figure some legal folding reaches, from the
    network's fastest bound up, sorted (the targets worth trying in a search)."""
    lo = max(c for c, _ in min_cycles(ir).values())
    values = {lo}
    for g in network_geometry(ir):
        for f in _candidates(g):
            cyc, _ = layer_figures(g, f, in_width(g, f))
            c = max(cyc.values())
            if c >= lo:
                values.add(c)
    return sorted(values)


def fastest_passing(values: list[int], ok) -> int | None:
    """The smallest of the sorted targets ``values`` for which ``ok(target)`` holds, by
    bisection (``ok`` is assumed monotone: False for fast targets, True from some target
    on); None when not even ``values[-1]`` passes.  ``ok(values[-1])`` is asked first."""
    if not ok(values[-1]):
        return None
    lo, hi = 0, len(values) - 1          # values[hi] passes; find the first that does
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(values[mid]):
            hi = mid
        else:
            lo = mid + 1
    return values[hi]


def _fifo_luts(ir, folds) -> float:
    """LUTs of the FIFOs the design of ``folds`` would get (see :mod:`.fifo`)."""
    chain = lower_plan(ir, FoldingPlan(folds=list(folds)))
    sizing = size_fifos(chain)
    return sum(M.fifo_cost(width=c.o_width, depth=d).lut
               for c, d in zip(chain.cores, sizing.depths))


def _plan_for_budget(ir, geo, max_luts, target):
    def cost(folds):
        return sum(fg["lut"] for fg in evaluate_folding(ir, folds)) + _fifo_luts(ir, folds)

    if target is not None:
        folds = _plan_for_target(ir, geo, target)
        need = cost(folds)
        if need > max_luts:
            raise FoldingError(f"target {target} cycles/frame needs ~{int(round(need))} LUTs, "
                               f"over the budget of {max_luts}",
                               "raise --max-luts or the target (or drop the target and let "
                               "the budget choose it)")
        return folds, target
    values = achievable_targets(ir)
    plans = {}

    def fits(target):
        if target not in plans:
            plans[target] = _plan_for_target(ir, geo, target)
        return cost(plans[target]) <= max_luts

    best = fastest_passing(values, fits)
    if best is None:
        need = int(round(cost(plans[values[-1]])))
        raise FoldingError(f"even the smallest folding (PE=SIMD=1 everywhere, "
                           f"{values[-1]} cycles/frame) needs ~{need} "
                           f"LUTs, over the budget of {max_luts}",
                           f"raise --max-luts to at least {need + 1}")
    return plans[best], best
