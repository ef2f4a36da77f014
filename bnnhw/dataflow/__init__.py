"""Dataflow builder: network IR -> folded, stitched streaming accelerator (Amaranth).

The steps, each in its own module::

    plan = plan_folding(ir, target_cycles=1000)      # folding.py: SIMD/PE per layer
    design = build_design(ir, plan)                  # design.py: cores + FIFOs + top
    text = design.verilog()                          # module bnnhw_top
    write_build_dir("build", ir, plan, design)       # IR, folding.json, Verilog, estimates

* :mod:`.folding` -- legal foldings, the cheapest folding for a target
  (cycles per frame, or frames/s at a clock) or for a LUT budget, folding
  files (``folding.json``), errors that name the layer and what would work.
* :mod:`bnnhw.hwmodel` -- the analytic cycles-per-image and resource models;
  :mod:`.fit` -- the board fit (estimate on a device, fastest folding that fits).
* :mod:`.fifo` -- FIFO depths from the cores' cycle-level schedules, and the
  latency estimate.
* :mod:`.design` -- lowering to registered cores (:mod:`bnnhw.cores`),
  :class:`DataflowTop` (one input stream of image elements, one output stream
  of class indices), estimates, Verilog, the build folder.
* :mod:`.debug` -- Amaranth-simulator runs of a design and layer-by-layer
  localisation of a mismatch against the golden model.

The command line front end is ``bnnhw sim`` (:mod:`bnnhw.commands.sim`).
"""
from .folding import (FOLDING_FORMAT, FoldingError, FoldingPlan, LayerFold, load_folding_file,
                      min_cycles, plan_folding)
from .design import (TOP_NAME, DataflowTop, Design, build_design, encode_images, lower_plan,
                     read_build_dir, write_build_dir)
from .fifo import size_fifos
from .debug import locate_mismatch, simulate_design

__all__ = ["plan_folding", "FoldingPlan", "LayerFold", "FoldingError", "load_folding_file",
           "min_cycles", "FOLDING_FORMAT", "build_design", "Design", "DataflowTop",
           "lower_plan", "write_build_dir", "encode_images", "TOP_NAME", "size_fifos",
           "simulate_design", "locate_mismatch", "read_build_dir", "estimates_summary"]


def estimates_summary(design_or_estimates) -> dict:
    """The headline figures of a design's estimates (for command results)."""
    est = getattr(design_or_estimates, "estimates", design_or_estimates) or {}
    tot = est.get("total", {})
    return {"lut_estimate": tot.get("lut"), "ebr_estimate": tot.get("ebr"),
            "weight_bits": tot.get("weight_bits"),
            "latency_cycles_estimate": est.get("latency_cycles_estimate"),
            "bottleneck": est.get("bottleneck")}

