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
  target number of cycles (:mod:`bnnhw.hwmodel` gives each layer's cycles).  Among
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

from .. import hwmodel as M
from ..errors import FoldingError
from ..ir import NetworkIR
from ..kinds import LayerFold, LayerGeom, get_kind, kind_of
from .fifo import size_fifos
from .lower import lower_plan

__all__ = ["FOLDING_FORMAT", "FOLDING_VERSION", "LayerFold", "LayerGeom", "FoldingPlan",
           "FoldingError", "plan_folding", "load_folding_file", "network_geometry",
           "evaluate_folding", "min_cycles", "legal_values", "achievable_targets",
           "fastest_passing"]

FOLDING_FORMAT = "bnnhw.folding"
FOLDING_VERSION = 1


# ---------------------------------------------------------------------------
# geometry, folds and their figures: asked of each layer's kind (bnnhw.kinds)

def network_geometry(ir: NetworkIR) -> list[LayerGeom]:
    return [kind_of(l).geometry(l, i) for i, l in enumerate(ir.layers)]


def in_width(g: LayerGeom, f: LayerFold) -> int:
    """Bits per beat of the first core of the layer."""
    return get_kind(g.kind).in_width(g, f)


def out_width(g: LayerGeom, f: LayerFold) -> int:
    """Bits per beat leaving the layer (before a LabelSelect)."""
    return get_kind(g.kind).out_width(g, f)


def layer_figures(g: LayerGeom, f: LayerFold, prev_width: int) -> tuple[dict, M.Cost]:
    """Cycles per image of each part of the layer (dict) and its estimated cost.

    ``prev_width``: bits per beat of the stream entering the layer (the input
    element width for the first layer)."""
    kind = get_kind(g.kind)
    cyc: dict[str, int] = {}
    cost = M.Cost()
    first_w = kind.in_width(g, f)
    lc = M.link_cycles(prev_width, first_w, kind.in_bits(g))
    if lc:
        cyc["link"] = lc
        cost.add(M.converter_cost(prev_width, first_w), "link")
    kind.add_figures(g, f, cyc, cost)
    return cyc, cost


def legal_values(g: LayerGeom) -> dict[str, list[int]]:
    return get_kind(g.kind).legal_values(g)


def _candidates(g: LayerGeom) -> list[LayerFold]:
    return get_kind(g.kind).candidates(g)


def _fastest(g: LayerGeom) -> tuple[int, str]:
    """Fewest cycles per image the layer can reach (best link), and why."""
    best = None
    for f in _candidates(g):
        cyc, _ = layer_figures(g, f, in_width(g, f))   # no converter in front
        c = max(cyc.values())
        if best is None or c < best[0]:
            best = (c, max(cyc, key=cyc.get), f)
    c, part, f = best
    return c, get_kind(g.kind).fastest_reason(g, part)


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
            d = get_kind(f.kind).fold_json(f, byname.get(f.name, {}).get("bits", 1))
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
            what = get_kind(f.kind).describe_fold(f, fg.get("bits", 1))
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
    missing = [g.name for g in geo if get_kind(g.kind).required_in_file and g.name not in given]
    if missing:
        raise FoldingError(f"{where}: no folding for layer{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(missing)}",
                           "give simd and pe for every conv/fc layer (a build's folding.json "
                           "lists them all)")
    prev = None
    for g in geo:
        kind = get_kind(g.kind)
        e = given.get(g.name)
        allowed = set(kind.fold_keys) | _INFO_KEYS
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
        f = kind.fold_from_file(g, e, prev, where)
        check_fold(g, f)
        folds.append(f)
        prev = f
    return folds


def check_fold(g: LayerGeom, f: LayerFold) -> None:
    """Raise FoldingError naming the layer and the legal values unless ``f`` is legal."""
    get_kind(g.kind).check_fold(g, f)


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
