"""The accelerator clock: the board oscillator directly, or through the FPGA's PLL.

* :func:`plan_clock` (pure): what ``--clock-mhz`` gives on a board -- the
  oscillator when ``mhz`` is None, else a PLL setting from
  :mod:`bnnhw.boards.pll` (raises :class:`~bnnhw.errors.BnnhwError` naming the
  reachable range and nearby clocks when the PLL cannot make it within 1 %).
* :func:`make_clock_domain` (hardware): ``(generator, achieved_mhz)``. Call
  ``generator.add_to(m)`` on the top module: it adds the generator and, with a
  PLL, defines the ``sync`` domain there; the generator drives it from the PLL
  output (iCE40: SB_PLL40_PAD when the oscillator pin is the PLL's dedicated
  pad, as on the iCEBreaker, else SB_PLL40_CORE; ECP5: EHXPLLL with CLKOP
  feedback) and holds ``sync`` in reset until the PLL has locked and a further
  15 us have passed (iCE40 block RAMs read as zero for ~3 us after
  configuration). Without a PLL it is an empty module and the platform's own
  default ``sync`` domain (oscillator + power-on reset) is used.
  nextpnr derives the PLL output's clock constraint from the oscillator's
  (iCE40 and ECP5 both), so its fmax report is checked against the clock
  actually used.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import C, ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal, \
    Signal
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer

from bnnhw.errors import BnnhwError

from .pll import PLLConfig, plan_pll

__all__ = ["ClockPlan", "plan_clock", "make_clock_domain", "ClockGenerator"]

# (device, package) -> the pin that is the iCE40 PLL's dedicated input pad.
_ICE40_PLL_PADS = {("iCE40UP5K", "SG48"): "35"}
_POR_SECONDS = 15e-6


@dataclass(frozen=True)
class ClockPlan:
    source: str                 # "oscillator" | "pll"
    osc_mhz: float
    mhz: float                  # the clock the accelerator actually gets
    requested_mhz: float | None
    pll: PLLConfig | None = None

    @property
    def hz(self) -> float:
        return self.mhz * 1e6

    def to_dict(self) -> dict:
        return {"source": self.source, "osc_mhz": self.osc_mhz, "clock_mhz": self.mhz,
                "requested_mhz": self.requested_mhz,
                "pll": self.pll.to_dict() if self.pll else None}


def _family_osc(board_or_platform):
    """(family, oscillator MHz, clock resource name) of a BoardSpec or a platform."""
    from .registry import BoardSpec, _family_of
    if isinstance(board_or_platform, BoardSpec):
        b = board_or_platform
        return b.family, b.osc_mhz, b.clock_resource[0]
    plat = board_or_platform
    family = _family_of(type(plat))
    return family, float(plat.default_clk_frequency) / 1e6, plat.default_clk


def plan_clock(board_or_platform, mhz: float | None, *, tolerance: float = 0.01) -> ClockPlan:
    """The clock ``--clock-mhz mhz`` gives on a board (a BoardSpec, name or platform)."""
    from .registry import BoardSpec, get_board
    if isinstance(board_or_platform, str):
        board_or_platform = get_board(board_or_platform)
    family, osc, _ = _family_osc(board_or_platform)
    if mhz is None:
        return ClockPlan("oscillator", osc, osc, None)
    try:
        mhz = float(mhz)
    except (TypeError, ValueError):
        raise BnnhwError(f"--clock-mhz must be a number, not {mhz!r}") from None
    if abs(mhz - osc) < 1e-9:
        return ClockPlan("oscillator", osc, osc, mhz)
    cfg = plan_pll(family, osc, mhz, tolerance=tolerance)
    return ClockPlan("pll", osc, cfg.f_out, mhz, cfg)


class ClockGenerator(Elaboratable):
    """Defines ``domain`` from the board oscillator through the PLL of ``plan``
    (see the module docstring); an empty module when ``plan`` uses the oscillator."""

    def __init__(self, plan: ClockPlan, *, domain: str = "sync"):
        self.plan = plan
        self.domain = domain
        self.lock = Signal()

    @property
    def uses_pll(self) -> bool:
        return self.plan.source == "pll"

    def add_to(self, m: Module, name: str = "clocking"):
        """Add to module ``m`` (the top level, or a parent of everything clocked by the
        domain) and define the domain there when the PLL drives it."""
        m.submodules[name] = self
        if self.uses_pll:
            m.domains += ClockDomain(self.domain)

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        if plan.source == "oscillator":
            if self.domain != "sync":
                raise BnnhwError("the oscillator clock is only provided as the sync domain")
            return m
        family, _, clk_name = _family_osc(platform)
        cfg = plan.pll
        clk_out = Signal()
        lock = self.lock
        if family == "ice40":
            p = cfg.params
            params = dict(p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
                          p_DIVR=C(p["divr"], 4), p_DIVF=C(p["divf"], 7),
                          p_DIVQ=C(p["divq"], 3), p_FILTER_RANGE=C(p["filter_range"], 3),
                          i_RESETB=C(1, 1), i_BYPASS=C(0, 1), o_LOCK=lock)
            clk_port = platform.request(clk_name, 0, dir="-")
            pin = _clock_pin(platform, clk_name)
            if _ICE40_PLL_PADS.get((platform.device, platform.package)) == pin:
                m.submodules.pll = Instance("SB_PLL40_PAD", i_PACKAGEPIN=clk_port.io,
                                            o_PLLOUTGLOBAL=clk_out, **params)
            else:
                m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_port)
                m.submodules.pll = Instance("SB_PLL40_CORE", i_REFERENCECLK=clk_buf.i,
                                            o_PLLOUTGLOBAL=clk_out, **params)
        elif family == "ecp5":
            p = cfg.params
            clk_port = platform.request(clk_name, 0, dir="-")
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_port)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{cfg.f_in:g}", a_FREQUENCY_PIN_CLKOP=f"{cfg.f_out:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=p["clki_div"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["clkop_div"],
                p_CLKOP_CPHASE=p["clkop_cphase"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                p_CLKFB_DIV=p["clkfb_div"],
                i_CLKI=clk_buf.i, i_CLKFB=clk_out, i_RST=C(0, 1), i_STDBY=C(0, 1),
                i_PHASESEL0=C(0, 1), i_PHASESEL1=C(0, 1), i_PHASEDIR=C(1, 1),
                i_PHASESTEP=C(1, 1), i_PHASELOADREG=C(1, 1), i_PLLWAKESYNC=C(0, 1),
                i_ENCLKOP=C(0, 1), o_CLKOP=clk_out, o_LOCK=lock)
        else:  # pragma: no cover - _family_of already refused
            raise BnnhwError(f"no PLL support for {family}")
        # Reset: held until LOCK, then for _POR_SECONDS more. The domain itself is
        # defined by the parent (add_to); nextpnr derives the PLL output's constraint
        # from the oscillator's.
        por = f"{self.domain}_por"
        m.domains += ClockDomain(por, reset_less=True, local=True)
        m.d.comb += [ClockSignal(por).eq(clk_out), ClockSignal(self.domain).eq(clk_out)]
        lock_s = Signal()
        m.submodules.lock_sync = FFSynchronizer(lock, lock_s, o_domain=por)
        delay = max(1, int(_POR_SECONDS * cfg.f_out * 1e6))
        timer = Signal(range(delay + 1))
        ready = Signal()
        with m.If(~lock_s):
            m.d[por] += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d[por] += ready.eq(1)
        with m.Else():
            m.d[por] += timer.eq(timer + 1)
        m.d.comb += ResetSignal(self.domain).eq(~ready)
        return m


def _clock_pin(platform, name):
    res = platform.resources[(name, 0)]
    for pins in res.ios:
        names = getattr(pins, "names", None)
        if names:
            return names[0]
    return None


def make_clock_domain(platform, mhz: float | None, *, domain: str = "sync",
                      tolerance: float = 0.01):
    """``(generator, achieved_mhz)``: ``generator.add_to(top_module)`` clocks ``domain`` at
    ``mhz`` through the PLL (``mhz=None``: the oscillator, through the platform's default
    domain). Raises BnnhwError for a clock the PLL cannot make."""
    plan = plan_clock(platform, mhz, tolerance=tolerance)
    return ClockGenerator(plan, domain=domain), plan.mhz
