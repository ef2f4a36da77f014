"""PLL parameter calculators for Lattice iCE40 and ECP5 (pure Python, no hardware).

Ports of the two open-source calculators, so that the accelerator clock can be
set from ``--clock-mhz`` without running an external tool:

* :func:`ice40_pll` -- IceStorm's ``icepll`` (SIMPLE feedback): exhaustive
  search over DIVR (0..15), DIVF (0..127), DIVQ (1..6) with
  ``f_pfd = f_in / (DIVR+1)``, ``f_vco = f_pfd * (DIVF+1)``,
  ``f_out = f_vco / 2**DIVQ``; first closest result wins; FILTER_RANGE from
  f_pfd (<17: 1, <26: 2, <44: 3, <66: 4, <101: 5, else 6).
  Limits (MHz): input 10..133, PFD 10..133, VCO 533..1066, output 16..275.
* :func:`ecp5_pll` -- Project Trellis' ``ecppll`` (primary output CLKOP, CLKOP
  feedback): search over CLKI_DIV (1..128), CLKFB_DIV (1..80), CLKOP_DIV
  (1..128) with ``f_pfd = f_in / CLKI_DIV``,
  ``f_vco = f_pfd * CLKFB_DIV * CLKOP_DIV``, ``f_out = f_vco / CLKOP_DIV``;
  ties broken towards a VCO of 600 MHz; CLKOP_CPHASE is ecppll's 180 degree
  shift (``CLKOP_DIV/2`` computed in single precision, truncated -- e.g. 2 for
  CLKOP_DIV=6), so the arithmetic is done in float32 exactly like the C++ tool.
  Limits (MHz): input 8..400, PFD 3.125..400, VCO 400..800, output 10..400.

Both reproduce the reference tools' choices (checked against
``yowasp-icepll``/``yowasp-ecppll`` outputs in ``tests/boards/test_pll.py``).
:func:`plan_pll` adds the policy: a request outside the output range, or one
whose best result is off by more than ``tolerance`` (1 %), raises
:class:`~bnnhw.errors.BnnhwError` naming the range and the nearest achievable
frequencies.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from bnnhw.errors import BnnhwError

__all__ = ["PLLConfig", "LIMITS", "ice40_pll", "ecp5_pll", "achievable_frequencies",
           "plan_pll", "check_config"]

# Frequency limits in MHz, as used by icepll / ecppll.
LIMITS = {
    "ice40": {"in": (10.0, 133.0), "pfd": (10.0, 133.0), "vco": (533.0, 1066.0),
              "out": (16.0, 275.0)},
    "ecp5": {"in": (8.0, 400.0), "pfd": (3.125, 400.0), "vco": (400.0, 800.0),
             "out": (10.0, 400.0)},
}

_ICE40_DIVF_MAX = 127  # SIMPLE feedback (63 in the other modes)


@dataclass(frozen=True)
class PLLConfig:
    """One PLL setting. Frequencies in MHz; ``params`` holds the primitive's parameters:
    iCE40 ``divr``, ``divf``, ``divq``, ``filter_range`` (SB_PLL40_*, SIMPLE feedback);
    ECP5 ``clki_div``, ``clkfb_div``, ``clkop_div``, ``clkop_cphase`` (EHXPLLL)."""
    family: str
    f_in: float
    f_requested: float
    f_out: float
    f_pfd: float
    f_vco: float
    params: dict = field(default_factory=dict)

    @property
    def error(self) -> float:
        """Relative error of the achieved output against the request."""
        return abs(self.f_out - self.f_requested) / self.f_requested

    def to_dict(self) -> dict:
        return {"family": self.family, "f_in_mhz": self.f_in, "f_requested_mhz": self.f_requested,
                "f_out_mhz": self.f_out, "f_pfd_mhz": self.f_pfd, "f_vco_mhz": self.f_vco,
                "error": self.error, **self.params}


def _ice40_filter_range(f_pfd: float) -> int:
    return (1 if f_pfd < 17 else 2 if f_pfd < 26 else 3 if f_pfd < 44 else
            4 if f_pfd < 66 else 5 if f_pfd < 101 else 6)


def ice40_pll(f_in: float, f_out: float, *, strict: bool = False) -> PLLConfig | None:
    """icepll's search (SIMPLE feedback): the closest output to ``f_out`` (MHz), or None
    when no divider combination keeps PFD and VCO in range. No tolerance check here.
    Like icepll, the result may lie just outside the output range (15.94 MHz for 16);
    ``strict=True`` only considers outputs inside it."""
    lim = LIMITS["ice40"]
    out_lo, out_hi = lim["out"] if strict else (-math.inf, math.inf)
    best = None
    best_fout = 0.0
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if f_pfd < lim["pfd"][0] or f_pfd > lim["pfd"][1]:
            continue
        for divf in range(_ICE40_DIVF_MAX + 1):
            f_vco = f_pfd * (divf + 1)
            if f_vco < lim["vco"][0] or f_vco > lim["vco"][1]:
                continue
            for divq in range(1, 7):
                fout = f_vco * 2.0 ** -divq
                if not out_lo <= fout <= out_hi:
                    continue
                if best is None or abs(fout - f_out) < abs(best_fout - f_out):
                    best_fout = fout
                    best = (divr, divf, divq)
    if best is None:
        return None
    divr, divf, divq = best
    f_pfd = f_in / (divr + 1)
    return PLLConfig("ice40", f_in, f_out, best_fout, f_pfd, f_pfd * (divf + 1),
                     {"divr": divr, "divf": divf, "divq": divq,
                      "filter_range": _ice40_filter_range(f_pfd)})


def ecp5_pll(f_in: float, f_out: float, *, strict: bool = False) -> PLLConfig | None:
    """ecppll's search (float32 arithmetic like the C++ tool): the closest output to
    ``f_out`` (MHz) with the VCO nearest 600 MHz among ties, or None if nothing fits.
    ``strict=True`` only considers outputs inside the output range."""
    import numpy as np
    f32 = np.float32
    lim = LIMITS["ecp5"]
    pfd_min, pfd_max = f32(lim["pfd"][0]), f32(lim["pfd"][1])
    vco_min, vco_max = f32(lim["vco"][0]), f32(lim["vco"][1])
    fin, fo = f32(f_in), f32(f_out)
    error = f32(np.finfo(np.float32).max)
    best = None
    best_vco = f32(0)
    for input_div in range(1, 129):
        fpfd = f32(fin / f32(input_div))
        if fpfd < pfd_min or fpfd > pfd_max:
            continue
        for feedback_div in range(1, 81):
            base = float(fpfd) * feedback_div
            # Only output dividers near the VCO window can pass; scan a margin of one.
            lo = max(1, int(math.floor(float(vco_min) / base)) - 1)
            hi = min(128, int(math.ceil(float(vco_max) / base)) + 1)
            for output_div in range(lo, hi + 1):
                fvco = f32(f32(fpfd * f32(feedback_div)) * f32(output_div))
                if fvco < vco_min or fvco > vco_max:
                    continue
                fout = f32(fvco / f32(output_div))
                if strict and not lim["out"][0] <= fout <= lim["out"][1]:
                    continue
                err = f32(abs(f32(fout - fo)))
                if err < error or (err == error and
                                   abs(f32(fvco - f32(600))) < abs(f32(best_vco - f32(600)))):
                    error = err
                    best_vco = fvco
                    best = (input_div, feedback_div, output_div, fout, fvco)
    if best is None:
        return None
    input_div, feedback_div, output_div, fout, fvco = best
    ns_phase = f32(1.0 / (float(fout) * 1e6) * 0.5)
    cphase = int(float(ns_phase) * (float(fvco) * 1e6))
    return PLLConfig("ecp5", f_in, f_out, float(fout), f_in / input_div, float(fvco),
                     {"clki_div": input_div, "clkfb_div": feedback_div,
                      "clkop_div": output_div, "clkop_cphase": cphase})


def check_config(cfg: PLLConfig) -> list[str]:
    """Independent check of a configuration against the family's limits and divider
    ranges; returns a list of violations (empty when the configuration is legal) and
    recomputes the output frequency from the parameters alone."""
    lim = LIMITS[cfg.family]
    bad = []
    p = cfg.params
    if cfg.family == "ice40":
        if not (0 <= p["divr"] <= 15 and 0 <= p["divf"] <= 127 and 1 <= p["divq"] <= 6):
            bad.append("divider out of range")
        f_pfd = cfg.f_in / (p["divr"] + 1)
        f_vco = f_pfd * (p["divf"] + 1)
        f_out = f_vco / 2 ** p["divq"]
        if p["filter_range"] != _ice40_filter_range(f_pfd):
            bad.append("filter range does not match f_pfd")
    else:
        if not (1 <= p["clki_div"] <= 128 and 1 <= p["clkfb_div"] <= 80
                and 1 <= p["clkop_div"] <= 128):
            bad.append("divider out of range")
        f_pfd = cfg.f_in / p["clki_div"]
        f_vco = f_pfd * p["clkfb_div"] * p["clkop_div"]
        f_out = f_vco / p["clkop_div"]
    for key, f in (("in", cfg.f_in), ("pfd", f_pfd), ("vco", f_vco), ("out", f_out)):
        lo, hi = lim[key]
        if not (lo * (1 - 1e-6) <= f <= hi * (1 + 1e-6)):
            bad.append(f"{key} frequency {f:.3f} MHz outside {lo}..{hi} MHz")
    if abs(f_out - cfg.f_out) > 1e-3:
        bad.append(f"parameters give {f_out:.4f} MHz, config says {cfg.f_out:.4f} MHz")
    return bad


_ACHIEVABLE_CACHE: dict = {}


def achievable_frequencies(family: str, f_in: float) -> list[float]:
    """Every output frequency (MHz, sorted, within the output limits) the PLL can make
    from ``f_in``."""
    key = (family, float(f_in))
    if key in _ACHIEVABLE_CACHE:
        return _ACHIEVABLE_CACHE[key]
    lim = LIMITS[family]
    outs = set()
    if family == "ice40":
        for divr in range(16):
            f_pfd = f_in / (divr + 1)
            if not lim["pfd"][0] <= f_pfd <= lim["pfd"][1]:
                continue
            for divf in range(_ICE40_DIVF_MAX + 1):
                f_vco = f_pfd * (divf + 1)
                if not lim["vco"][0] <= f_vco <= lim["vco"][1]:
                    continue
                for divq in range(1, 7):
                    outs.add(round(f_vco / 2 ** divq, 6))
    elif family == "ecp5":
        for input_div in range(1, 129):
            f_pfd = f_in / input_div
            if not lim["pfd"][0] <= f_pfd <= lim["pfd"][1]:
                continue
            for feedback_div in range(1, 81):
                fout = f_pfd * feedback_div
                # some CLKOP_DIV in 1..128 must put the VCO in range
                lo = math.ceil(lim["vco"][0] / fout - 1e-9)
                hi = math.floor(lim["vco"][1] / fout + 1e-9)
                if max(lo, 1) <= min(hi, 128):
                    outs.add(round(fout, 6))
    else:
        raise ValueError(f"no PLL model for family {family!r}")
    lo, hi = lim["out"]
    result = sorted(f for f in outs if lo <= f <= hi)
    _ACHIEVABLE_CACHE[key] = result
    return result


def _nearby(freqs: list[float], target: float, n: int = 3) -> list[float]:
    i = bisect.bisect_left(freqs, target)
    return freqs[max(0, i - n):i] + freqs[i:i + n]


def plan_pll(family: str, f_in: float, f_req: float, *, tolerance: float = 0.01) -> PLLConfig:
    """The PLL setting for ``f_req`` MHz from a ``f_in`` MHz reference, or a
    :class:`BnnhwError` naming the reachable range and nearby achievable frequencies
    when the request is out of range or the best result is off by more than
    ``tolerance`` (relative)."""
    if family not in LIMITS:
        raise BnnhwError(f"no PLL support for the {family} family",
                         "run without --clock-mhz to use the board oscillator directly")
    lim = LIMITS[family]
    if not (f_req > 0 and math.isfinite(f_req)):
        raise BnnhwError(f"--clock-mhz must be a positive number, not {f_req!r}")
    if not lim["in"][0] <= f_in <= lim["in"][1]:
        raise BnnhwError(f"the board oscillator ({f_in:g} MHz) is outside the {family} PLL's "
                         f"input range {lim['in'][0]:g}..{lim['in'][1]:g} MHz",
                         "run without --clock-mhz to use the oscillator directly")
    freqs = achievable_frequencies(family, f_in)
    rng = f"{freqs[0]:g}..{freqs[-1]:g} MHz" if freqs else "nothing"
    near = ", ".join(f"{f:.6g}" for f in _nearby(freqs, f_req))

    def fail(why):
        return BnnhwError(f"the {family} PLL cannot make {f_req:g} MHz from the {f_in:g} MHz "
                          f"oscillator: {why}; reachable range {rng}",
                          f"nearby achievable clocks (MHz): {near}")

    if not lim["out"][0] <= f_req <= lim["out"][1]:
        raise fail(f"outside the PLL output range {lim['out'][0]:g}..{lim['out'][1]:g} MHz")
    cfg = (ice40_pll if family == "ice40" else ecp5_pll)(f_in, f_req, strict=True)
    if cfg is None:
        raise fail("no divider setting keeps PFD and VCO in range")
    if cfg.error > tolerance:
        raise fail(f"the closest setting gives {cfg.f_out:.4f} MHz "
                   f"({100 * cfg.error:.2f}% off, more than {100 * tolerance:g}%)")
    return cfg
