"""Board fit: does a design fit a board, and the fastest folding that does.

:func:`estimate_fit` estimates the LUT4s and block RAMs of a design (its cores,
FIFOs and the board shell around it) with the cost models of
:mod:`bnnhw.hwmodel` evaluated for the board's FPGA family
(:class:`bnnhw.boards.family.Family`: block RAM shapes, Yosys's block cost, the
measured synthesised/modelled LUT ratio, the shells' own logic).  A design fits
when its LUT4s stay within :data:`LUT_USABLE` of the device's and its block RAMs
within the device's.

:func:`plan_for_board` checks a folding the user asked for against the board, or
with none searches the fastest folding that fits: the same bisection over the
achievable per-layer cycle counts as :mod:`.folding`'s LUT budget
(:func:`.folding.fastest_passing`), with "fits this board" as the predicate.
Errors name the layers to fold further, or (when even PE=SIMD=1 does not fit)
what the network needs and which registered boards hold it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..boards.family import get_family
from ..boards.registry import get_board, list_boards
from ..errors import BnnhwError
from .. import hwmodel as M
from .design import build_design, core_cost
from ..kinds import get_kind
from .folding import (FoldingError, achievable_targets, fastest_passing, network_geometry,
                      plan_folding)

__all__ = ["LUT_USABLE", "FitEstimate", "estimate_fit", "plan_for_board", "fold_further_hint"]

# the share of the device's LUT4s the fit check lets a design use
LUT_USABLE = 0.92


@dataclass
class FitEstimate:
    """Estimated resources of an accelerator plus its shell on a board."""
    board: str
    family: str
    lut: int
    ebr: int
    lut_capacity: int
    ebr_capacity: int
    lut_usable: int
    accelerator_lut: int
    accelerator_ebr: int
    shell_lut: int
    shell_ebr: int
    layers: list = field(default_factory=list)      # [{name, lut, ebr}]
    fifos: dict = field(default_factory=dict)       # {lut, ebr}

    @property
    def fits(self) -> bool:
        return self.lut <= self.lut_usable and self.ebr <= self.ebr_capacity

    def over(self) -> str:
        parts = []
        if self.lut > self.lut_usable:
            parts.append(f"~{self.lut} LUT4 of {self.lut_capacity} ({self.lut_usable} usable)")
        if self.ebr > self.ebr_capacity:
            parts.append(f"~{self.ebr} block RAMs of {self.ebr_capacity}")
        return " and ".join(parts)

    def to_dict(self) -> dict:
        return {"board": self.board, "family": self.family, "lut": self.lut, "ebr": self.ebr,
                "lut_capacity": self.lut_capacity, "lut_usable": self.lut_usable,
                "ebr_capacity": self.ebr_capacity, "accelerator_lut": self.accelerator_lut,
                "accelerator_ebr": self.accelerator_ebr, "shell_lut": self.shell_lut,
                "shell_ebr": self.shell_ebr, "fits": self.fits, "layers": self.layers,
                "fifos": self.fifos, "lut_factor": get_family(self.family).lut_factor,
                "model": "bnnhw.dataflow.models with the family's block RAM shapes; LUT4s "
                         "scaled by lut_factor; a share LUT_USABLE of the LUTs usable"}


def _shell_cost(family, design, shell: str, selftest_count: int = 0):
    ir = design.ir
    n = ir.input.height * ir.input.width * ir.input.channels
    lut = float(family.shell_lut[shell])
    if shell == "uart":
        c = M.memory_cost(design.input_width, 2 * n, family=family)   # ping-pong buffers
    else:
        c = M.memory_cost(design.input_width, selftest_count * n, family=family).add(
            M.memory_cost(design.output_width, selftest_count, family=family))
    return lut + c.lut, c.ebr


def estimate_fit(design, board, *, shell: str = "uart", selftest_count: int = 0) -> FitEstimate:
    """Estimated LUT4 and block RAM use of ``design`` (a :class:`bnnhw.dataflow.Design`)
    inside ``shell`` ("uart" or "selftest") on ``board`` (a name or a BoardSpec), before
    any synthesis."""
    board = get_board(board)
    fam = get_family(board.family)
    layers: dict[str, dict] = {}
    order = []
    for core, lname in zip(design.chain.cores, design.chain.layers):
        if lname == "label_select":
            lname = design.ir.layers[-1].name
        c = core_cost(core, fam)
        if lname not in layers:
            layers[lname] = {"name": lname, "lut": 0.0, "ebr": 0}
            order.append(lname)
        layers[lname]["lut"] += c.lut
        layers[lname]["ebr"] += c.ebr
    fifo = M.Cost()
    for core, depth in zip(design.chain.cores, design.fifo_depths):
        if depth > 0:
            fifo.add(M.fifo_cost(width=core.o_width, depth=depth, family=fam))
    shell_lut, shell_ebr = _shell_cost(fam, design, shell, selftest_count)
    k = fam.lut_factor
    rows = [{"name": n, "lut": int(round(layers[n]["lut"] * k)), "ebr": int(layers[n]["ebr"])}
            for n in order]
    acc_lut = sum(r["lut"] for r in rows) + int(round(fifo.lut * k))
    acc_ebr = sum(r["ebr"] for r in rows) + fifo.ebr
    cap = board.capacity
    shell_lut = int(round(shell_lut))
    return FitEstimate(board=board.name, family=fam.name, lut=acc_lut + shell_lut,
                       ebr=acc_ebr + shell_ebr, lut_capacity=cap.lut4, ebr_capacity=cap.ebr,
                       lut_usable=int(cap.lut4 * LUT_USABLE), accelerator_lut=acc_lut,
                       accelerator_ebr=acc_ebr, shell_lut=shell_lut, shell_ebr=shell_ebr,
                       layers=rows, fifos={"lut": int(round(fifo.lut * k)), "ebr": fifo.ebr})


def fold_further_hint(design, fit: FitEstimate) -> tuple[str, str]:
    """``(what, hint)``: which layers to fold further (largest estimated LUT or block RAM
    users first) and what to do."""
    geo = {g.name: g for g in network_geometry(design.ir)}
    key = "lut" if fit.lut > fit.lut_usable else "ebr"
    ranked = sorted((r for r in fit.layers if r["name"] in geo), key=lambda r: -r[key])
    tips = []
    for r in ranked[:3]:
        if r[key] <= 0:
            continue
        f = design.plan.fold(r["name"])
        g = geo[r["name"]]
        now, tip = get_kind(g.kind).fold_further(g, f, key)
        tips.append(f"{r['name']} ({now}: ~{r[key]} {'LUT4' if key == 'lut' else 'EBR'}; "
                    f"try {tip})")
    what = ("fold further: " + "; ".join(tips)) if tips else "fold the layers further"
    return what, ("edit folding.json (or lower --target-fps / raise --target-cycles), or drop "
                  "the folding options to let bnnhw choose the fastest folding that fits")


def _weight_memory_bits(ir) -> int:
    return sum(getattr(l, "mw", 0) * getattr(l, "mh", 0) for l in ir.layers) + sum(
        l.mh * l.acc_bits for l in ir.layers
        if getattr(l, "thresholds", None) is not None)


def _bigger_boards(ir, board) -> str:
    """Names of registered boards whose block RAM holds the weights (a hint)."""
    need = _weight_memory_bits(ir)
    names = [b.name for b in list_boards()
             if b.capacity.ebr_total_bits >= need * 1.15 and b.name != board.name]
    return ", ".join(names[:3])


def cannot_fit(ir, board, cycles, fit) -> BnnhwError:
    """The error for a network that does not fit ``board`` even at ``cycles`` (fully
    folded): what it needs, and bigger boards."""
    bits = _weight_memory_bits(ir)
    cap = board.capacity
    other = _bigger_boards(ir, board)
    spram = (f"; its {cap.spram} SPRAMs cannot hold weights (they cannot be initialised "
             "from the bitstream)") if cap.spram else ""
    return BnnhwError(
        f"the network does not fit {board.name} ({board.device}) even fully folded "
        f"(PE=SIMD=1, {cycles} cycles/frame): estimated {fit.over()}; its weights "
        f"and thresholds are {bits / 1024:.0f} kbit, the device has "
        f"{cap.ebr_total_bits / 1024:.0f} kbit of block RAM{spram}",
        (f"use a bigger board ({other}) or " if other else "use ") +
        "a narrower network (bnnhw train --width)")


def plan_for_board(ir, board, *, folding=None, folding_source=None, target_cycles=None,
                   target_fps=None, clock_mhz=None, max_luts=None, shell="uart",
                   selftest_count=0, progress=None):
    """``(plan, design, fit)``: the user's folding (any of ``folding``, ``target_cycles``,
    ``target_fps`` at ``clock_mhz``, ``max_luts``) checked against ``board``, or with no
    folding option the fastest folding whose estimate fits (module docstring).
    ``progress``: called with one line per step (None: quiet)."""
    progress = progress or (lambda msg: None)
    explicit = any(v is not None for v in (folding, target_cycles, target_fps, max_luts))
    kw = dict(shell=shell, selftest_count=selftest_count)

    def evaluate(plan):
        d = build_design(ir, plan)
        return d, estimate_fit(d, board, **kw)

    if explicit:
        plan = plan_folding(ir, folding=folding, source=folding_source,
                            target_cycles=target_cycles, target_fps=target_fps,
                            clock_mhz=clock_mhz if target_fps is not None else None,
                            max_luts=max_luts)
        design, fit = evaluate(plan)
        if not fit.fits:
            values = achievable_targets(ir)
            slow_fit = evaluate(plan_folding(ir, target_cycles=values[-1]))[1]
            if not slow_fit.fits:
                raise cannot_fit(ir, board, values[-1], slow_fit)
            what, hint = fold_further_hint(design, fit)
            raise FoldingError(f"the {plan.mode} folding does not fit {board.name} "
                               f"({board.device}): estimated {fit.over()}; {what}", hint)
        return plan, design, fit

    values = achievable_targets(ir)
    progress(f"plan: searching the fastest folding that fits {board.name} "
             f"({len(values)} candidate bounds, {values[0]}..{values[-1]} cycles/frame)")
    cache = {}

    def at(target):
        if target not in cache:
            plan = plan_folding(ir, target_cycles=target)
            cache[target] = (plan, *evaluate(plan))
        return cache[target]

    best = fastest_passing(values, lambda t: at(t)[2].fits)
    if best is None:
        raise cannot_fit(ir, board, values[-1], at(values[-1])[2])
    plan, design, fit = at(best)
    plan.mode = "fit"
    plan.max_luts = None
    progress(f"plan: fastest fitting folding bounds {plan.bound_cycles} cycles/frame "
             f"(estimated {fit.lut} LUT4 of {fit.lut_capacity}, {fit.ebr} EBR of "
             f"{fit.ebr_capacity}; tried {len(cache)} foldings)")
    return plan, design, fit
