"""Stitching: a folding plan -> registered cores -> one Amaranth top with FIFOs.

:func:`build_design` lowers every IR layer with :mod:`bnnhw.cores.lowering`
(one chain of cores, width converters where widths differ, LabelSelect at
the end), sizes a FIFO for every link between two cores
(:mod:`bnnhw.dataflow.fifo`) and wraps it all in :class:`DataflowTop`.

Ports of the top (``amaranth.lib.wiring.Component``, Verilog names
``i__payload`` ...):

``i``: stream of ``B`` bits
    One image element per beat, raster order, channels-last
    (:mod:`bnnhw.layout`): the integer ``raw - offset`` in ``B`` bits (two's
    complement if signed) or, for 1-bit inputs, the bit itself.
``o``: stream of ``layout.class_index_width(classes)`` bits
    One beat per image: the class index (argmax, ties to the lowest index).
    With ``scores=True`` the top has no LabelSelect and ``o`` carries the
    last layer's scores instead: ``classes/PE`` beats per image, ``PE``
    signed fields each (see :class:`bnnhw.cores.MVAU`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from .. import layout
from ..boards.family import ECP5, Family
from ..cores.lowering import ChainTop
from ..errors import BnnhwError
from ..ir import NetworkIR, load_ir
from ..kinds import kind_of
from .. import hwmodel as M
from .fifo import size_fifos
from .folding import FoldingPlan, load_folding_file, plan_folding
from .lower import _silence, lower_plan

__all__ = ["DataflowTop", "Design", "build_design", "lower_plan", "write_build_dir",
           "read_build_dir", "TOP_NAME", "encode_images", "core_cost"]

TOP_NAME = "bnnhw_top"


class DataflowTop(ChainTop):
    """The whole accelerator: cores in stream order, a FIFO where ``fifo_depths[n] > 0``
    between core ``n`` and core ``n+1`` (a direct connection otherwise).

    Ports ``i`` and ``o``: see the module docstring."""

    def __init__(self, cores, fifo_depths):
        super().__init__(cores, fifo_depths=fifo_depths)


def core_cost(core, family: Family = ECP5) -> M.Cost:
    """Resource estimate of one core in ``family``: the core's own ``cost(family)`` (models
    in :mod:`.models`).  A core without a cost model is an error, never a zero."""
    try:
        return core.cost(family)
    except NotImplementedError as e:
        raise BnnhwError(f"no resource estimate: {e}",
                         f"give {type(core).__name__} a cost(family) method (see "
                         f"bnnhw.hwmodel)") from None


@dataclass
class Design:
    """A built accelerator: the top, its cores, FIFO depths and estimates."""
    ir: NetworkIR
    plan: FoldingPlan
    top: DataflowTop
    chain: object
    fifo_depths: list[int]
    estimates: dict
    fifo_method: dict = field(default_factory=dict)
    _verilog: str | None = field(default=None, repr=False)

    @property
    def input_width(self) -> int:
        return self.top.cores[0].i_width

    @property
    def output_width(self) -> int:
        return self.top.cores[-1].o_width

    @property
    def bound_cycles(self) -> int:
        return int(self.estimates["bound_cycles_per_frame"])

    def verilog(self) -> str:
        """Verilog of the top (module ``bnnhw_top``); byte-identical for the same IR
        and plan, whatever the process (generated once, then cached)."""
        if self._verilog is None:
            from amaranth.back import verilog
            self._verilog = verilog.convert(self.top, name=TOP_NAME, emit_src=False)
        return self._verilog

    def encode_images(self, raw) -> np.ndarray:
        """Input beats for raw images ``(N, C, H, W)``: see :func:`encode_images`."""
        return encode_images(self.ir, raw)


def encode_images(ir: NetworkIR, raw) -> np.ndarray:
    """Input stream beats of raw images ``(N, C, H, W)``, all images in one flat uint64
    array: :func:`bnnhw.layout.input_beats` of the quantised images (one element per
    beat, raster order, channels-last, ``B``-bit two's complement)."""
    x = np.moveaxis(np.asarray(ir.input.quantize(raw)), -1, 1)     # (N, C, H, W) integers
    q = ir.input
    return layout.input_beats(x, q.bits, bool(q.signed) and q.bits > 1).reshape(-1)


def _estimates(ir, plan, chain, fifo_depths, latency) -> dict:
    q = ir.input
    in_cycles = q.height * q.width * q.channels
    layers = []
    byname = {}
    for l, f in zip(ir.layers, plan.folds):
        d = {"name": l.name, "kind": l.kind, **kind_of(l).estimate_row(l, f)}
        d.update(cycles=0, latency=0, lut=0.0, ebr=0, cores=[])
        layers.append(d)
        byname[l.name] = d
    extra = {"name": "input", "kind": "stream", "cycles": in_cycles, "latency": 0,
             "lut": 0.0, "ebr": 0, "cores": [], "weight_bits": 0, "threshold_bits": 0}
    tail = {"name": "label_select", "kind": "label_select", "cycles": 0, "latency": 0,
            "lut": 0.0, "ebr": 0, "cores": [], "weight_bits": 0, "threshold_bits": 0}
    for core, rep, lname in zip(chain.cores, chain.repeats, chain.layers):
        d = byname.get(lname) or (extra if lname == "input" else tail)
        cyc = int(core.throughput) * int(rep)
        cost = core_cost(core)
        d["cycles"] = max(d["cycles"], cyc)
        d["latency"] += int(core.latency)
        d["lut"] += cost.lut
        d["ebr"] += cost.ebr
        d["cores"].append({"core": core.name, "kind": core.kind, "cycles": cyc,
                           "latency": int(core.latency), "lut": int(round(cost.lut)),
                           "ebr": cost.ebr})
    if tail["cores"]:
        # LabelSelect belongs to the output layer in the per-layer view
        last = layers[-1]
        for c in tail["cores"]:
            last["cores"].append(c)
        last["cycles"] = max(last["cycles"], tail["cycles"])
        last["lut"] += tail["lut"]
        last["latency"] += tail["latency"]
    fifos = []
    for n, depth in enumerate(fifo_depths):
        if depth <= 0:
            continue
        a = chain.cores[n]
        fc = M.fifo_cost(width=a.o_width, depth=depth)
        fifos.append({"after": a.name, "before": chain.cores[n + 1].name, "width": a.o_width,
                      "depth": depth, "lut": int(round(fc.lut)), "ebr": fc.ebr})
    rows = [extra] + layers
    bound = max(r["cycles"] for r in rows)
    bottleneck = max(rows, key=lambda r: r["cycles"])["name"]
    for r in rows:
        r["lut"] = int(round(r["lut"]))
    total_lut = sum(r["lut"] for r in layers) + sum(f["lut"] for f in fifos)
    total_ebr = sum(r["ebr"] for r in layers) + sum(f["ebr"] for f in fifos)
    return {
        "bound_cycles_per_frame": int(bound),
        "bottleneck": bottleneck,
        "input_cycles_per_frame": in_cycles,
        "latency_cycles_estimate": latency,
        "total": {"lut": int(total_lut), "ebr": int(total_ebr),
                  "weight_bits": int(sum(r["weight_bits"] for r in layers)),
                  "threshold_bits": int(sum(r["threshold_bits"] for r in layers)),
                  "fifo_bits": int(sum(f["width"] * f["depth"] for f in fifos))},
        "layers": layers,
        "fifos": fifos,
        "model": "LUT4/DP16KD models of bnnhw.dataflow.models (ECP5); cycles from the "
                 "cores' own throughput figures",
    }


def build_design(ir: NetworkIR, plan: FoldingPlan, *, scores: bool = False,
                 fifo_depths: list[int] | None = None) -> Design:
    """Lower ``ir`` under ``plan``, size the FIFOs and stitch the top.

    ``fifo_depths``: override the computed depths (one per link between cores;
    0 = direct connection) -- for experiments, not for builds."""
    chain = lower_plan(ir, plan, scores=scores)
    sizing = size_fifos(chain)
    depths = list(sizing.depths) if fifo_depths is None else [int(d) for d in fifo_depths]
    top = _silence(DataflowTop(chain.cores, depths))
    est = _estimates(ir, plan, chain, depths, sizing.latency)
    if est["bound_cycles_per_frame"] != plan.bound_cycles:
        # the analytic plan and the cores disagree: a core's timing changed
        est["plan_bound_cycles_per_frame"] = plan.bound_cycles
    return Design(ir=ir, plan=plan, top=top, chain=chain, fifo_depths=depths, estimates=est,
                  fifo_method=sizing.report())


def write_build_dir(directory: str, ir: NetworkIR, plan: FoldingPlan, design: Design) -> dict:
    """Write the build folder: ``model.bnn`` (the IR), ``folding.json``,
    ``bnnhw_top.v``, ``estimates.json`` and ``design.json`` (ports, FIFO depths,
    hashes).  Returns the paths written."""
    os.makedirs(directory, exist_ok=True)
    paths = {
        "ir": os.path.join(directory, "model.bnn"),
        "folding": os.path.join(directory, "folding.json"),
        "verilog": os.path.join(directory, f"{TOP_NAME}.v"),
        "estimates": os.path.join(directory, "estimates.json"),
        "design": os.path.join(directory, "design.json"),
    }
    ir.save(paths["ir"])
    text = design.verilog()
    _write_text(paths["folding"], json.dumps(plan.to_json(), indent=1, sort_keys=True) + "\n")
    _write_text(paths["verilog"], text)
    _write_text(paths["estimates"], json.dumps(design.estimates, indent=1, sort_keys=True)
                + "\n")
    meta = {
        "format": "bnnhw.design", "version": 1, "top": TOP_NAME,
        "input_width": design.input_width, "output_width": design.output_width,
        "output": "class_index" if design.top.cores[-1].kind == "label_select" else "scores",
        "num_classes": ir.num_classes,
        "input_elements_per_frame": ir.input.height * ir.input.width * ir.input.channels,
        "fifo_depths": design.fifo_depths,
        "cores": [c.name for c in design.chain.cores],
        "ir_sha256": hashlib.sha256(open(paths["ir"], "rb").read()).hexdigest(),
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "bound_cycles_per_frame": design.bound_cycles,
    }
    _write_text(paths["design"], json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return paths


def _write_text(path: str, text: str) -> None:
    from ..outputs import atomic_write
    atomic_write(path, text.encode("utf-8"))


def read_build_dir(directory: str):
    """``(ir, plan, verilog_text, meta)`` of a folder written by :func:`write_build_dir`;
    every missing or inconsistent file is a BnnhwError that says which."""
    if not os.path.isdir(directory):
        raise BnnhwError(f"build folder {directory!r} does not exist",
                         "give the folder of `bnnhw build -o DIR`")
    need = {"model.bnn": "the IR", "folding.json": "the folding",
            f"{TOP_NAME}.v": "the Verilog", "design.json": "the design summary"}
    for name, what in need.items():
        if not os.path.isfile(os.path.join(directory, name)):
            raise BnnhwError(f"build folder {directory!r} has no {name} ({what})",
                             "rebuild it with `bnnhw build -o DIR`")
    ir = load_ir(os.path.join(directory, "model.bnn"))
    plan = plan_folding(ir, folding=load_folding_file(os.path.join(directory, "folding.json")))
    with open(os.path.join(directory, f"{TOP_NAME}.v"), encoding="utf-8") as f:
        text = f.read()
    try:
        with open(os.path.join(directory, "design.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise BnnhwError(f"{directory}/design.json is unreadable: {e}",
                         "rebuild the folder") from None
    if hashlib.sha256(text.encode()).hexdigest() != meta.get("verilog_sha256"):
        raise BnnhwError(f"{directory}/{TOP_NAME}.v does not match design.json (edited "
                         f"after the build?)", "rebuild the folder")
    return ir, plan, text, meta
