"""Board targets: names -> amaranth-boards platforms, device capacities, clocks, UARTs, LEDs.

A board is chosen by name (``icebreaker``, ``ulx3s-85f``, ...; see
:data:`BOARDS`, ``bnnhw boards``) or by ``module:Class`` naming any
amaranth-boards (or user) platform class of the iCE40 or ECP5 families, e.g.
``amaranth_boards.icestick:ICEStickPlatform``. For a ``module:Class`` board
the device, package, oscillator, UART and LEDs are read from the platform
class itself; capacities come from :data:`DEVICES`.

Capacities are the vendor data-sheet figures: LUT4 = logic cells (iCE40) or
LUT4s (ECP5, two per slice); EBR = block RAMs (iCE40 SB_RAM40_4K: 4 kbit;
ECP5 DP16KD: 18 kbit); SPRAM = iCE40 UltraPlus 256 kbit single-port RAMs;
DSP = iCE40 SB_MAC16 / ECP5 18x18 multipliers.
"""
from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field

from bnnhw.errors import BnnhwError

from .family import get_family

__all__ = ["Capacity", "LedRef", "BoardSpec", "DEVICES", "BOARDS", "get_board", "list_boards",
           "board_names"]


@dataclass(frozen=True)
class Capacity:
    lut4: int
    ff: int
    ebr: int
    ebr_bits: int          # bits per EBR block
    spram: int = 0
    spram_bits: int = 0    # bits per SPRAM block
    dsp: int = 0
    pll: int = 0

    @property
    def ebr_total_bits(self) -> int:
        return self.ebr * self.ebr_bits

    def to_dict(self) -> dict:
        return {**asdict(self), "ebr_total_bits": self.ebr_total_bits}


# Data-sheet capacities. ECP5 LUT counts are those nextpnr-ecp5 reports as available
# (TRELLIS_COMB), except the 12F, which is a 25F die licensed for 12k LUTs.
DEVICES: dict[str, Capacity] = {
    "iCE40UP5K": Capacity(lut4=5280, ff=5280, ebr=30, ebr_bits=4096, spram=4,
                          spram_bits=262144, dsp=8, pll=1),
    "iCE40UP3K": Capacity(lut4=2800, ff=2800, ebr=20, ebr_bits=4096, spram=0, dsp=4, pll=1),
    "iCE40HX1K": Capacity(lut4=1280, ff=1280, ebr=16, ebr_bits=4096, pll=1),
    "iCE40LP1K": Capacity(lut4=1280, ff=1280, ebr=16, ebr_bits=4096, pll=1),
    "iCE40HX4K": Capacity(lut4=3520, ff=3520, ebr=20, ebr_bits=4096, pll=2),
    "iCE40HX8K": Capacity(lut4=7680, ff=7680, ebr=32, ebr_bits=4096, pll=2),
    "iCE40LP8K": Capacity(lut4=7680, ff=7680, ebr=32, ebr_bits=4096, pll=2),
    "LFE5U-12F": Capacity(lut4=12288, ff=12288, ebr=32, ebr_bits=18432, dsp=28, pll=2),
    "LFE5U-25F": Capacity(lut4=24288, ff=24288, ebr=56, ebr_bits=18432, dsp=28, pll=2),
    "LFE5U-45F": Capacity(lut4=43848, ff=43848, ebr=108, ebr_bits=18432, dsp=72, pll=4),
    "LFE5U-85F": Capacity(lut4=83640, ff=83640, ebr=208, ebr_bits=18432, dsp=156, pll=4),
}
for _size in ("25F", "45F", "85F"):
    DEVICES[f"LFE5UM-{_size}"] = DEVICES[f"LFE5U-{_size}"]
    DEVICES[f"LFE5UM5G-{_size}"] = DEVICES[f"LFE5U-{_size}"]

@dataclass(frozen=True)
class LedRef:
    """An LED: ``platform.request(resource, number)``, then subsignal ``sub`` if given
    (RGB LEDs), then ``.o``."""
    resource: str
    number: int = 0
    sub: str | None = None

    def __str__(self):
        return f"{self.resource}#{self.number}" + (f".{self.sub}" if self.sub else "")


@dataclass(frozen=True)
class BoardSpec:
    """Everything the toolchain needs to know about one board target."""
    name: str
    platform: str                 # "module:Class"
    family: str                   # "ice40" | "ecp5"
    device: str
    package: str
    capacity: Capacity
    osc_hz: float
    clock_resource: tuple         # (name, number) of the oscillator resource
    uart: tuple | None            # (name, number) of the host UART, None if the board has none
    uart_bridge: str = ""         # what sits between the UART pins and the host
    max_baud: int = 115200        # highest baud rate the bridge supports
    pass_led: LedRef | None = None
    fail_led: LedRef | None = None
    speed: str | None = None      # ECP5 speed grade
    program_hint: str = ""
    description: str = ""
    aliases: tuple = field(default=())

    @property
    def synth_command(self) -> str:
        return get_family(self.family).synth

    @property
    def pnr_tool(self) -> str:
        return get_family(self.family).pnr

    @property
    def pack_tool(self) -> str:
        return get_family(self.family).pack

    @property
    def bitstream_suffix(self) -> str:
        return get_family(self.family).bitstream_suffix

    @property
    def osc_mhz(self) -> float:
        return self.osc_hz / 1e6

    def platform_class(self):
        mod_name, _, cls_name = self.platform.partition(":")
        return getattr(importlib.import_module(mod_name), cls_name)

    def make_platform(self):
        """A fresh platform instance (platforms are single-use: one build each)."""
        return self.platform_class()()

    def to_dict(self) -> dict:
        return {
            "name": self.name, "platform": self.platform, "family": self.family,
            "device": self.device, "package": self.package, "speed": self.speed,
            "capacity": self.capacity.to_dict(), "osc_mhz": self.osc_mhz,
            "clock_resource": list(self.clock_resource),
            "uart": list(self.uart) if self.uart else None, "uart_bridge": self.uart_bridge,
            "max_baud": self.max_baud,
            "pass_led": str(self.pass_led) if self.pass_led else None,
            "fail_led": str(self.fail_led) if self.fail_led else None,
            "synth": self.synth_command, "pnr": self.pnr_tool, "pack": self.pack_tool,
            "bitstream_suffix": self.bitstream_suffix, "program_hint": self.program_hint,
            "description": self.description, "aliases": list(self.aliases),
        }


def _family_of(cls) -> str:
    from amaranth.vendor import LatticeECP5Platform, LatticeICE40Platform
    if issubclass(cls, LatticeICE40Platform):
        return "ice40"
    if issubclass(cls, LatticeECP5Platform):
        inst_family = getattr(cls, "family", None)
        if isinstance(inst_family, str) and inst_family != "ecp5":
            raise BnnhwError(f"{cls.__qualname__} is a Lattice {inst_family} platform",
                             "supported families: iCE40 and ECP5")
        return "ecp5"
    raise BnnhwError(f"{cls.__module__}.{cls.__qualname__} is not an iCE40 or ECP5 platform",
                     "bnnhw builds for Lattice iCE40 and ECP5 boards (see `bnnhw boards`)")


def _find_resource(resources, name, number=0):
    return resources.get((name, number))


def _derive(name, cls_path, cls, **overrides) -> BoardSpec:
    """Read device, package, clock, UART and LEDs from a platform class; ``overrides``
    replace any derived field."""
    family = _family_of(cls)
    plat = cls()
    device, package = plat.device, plat.package
    if device not in DEVICES:
        raise BnnhwError(f"no capacity data for device {device} (board {name})",
                         f"known devices: {', '.join(sorted(DEVICES))}")
    clk = plat.default_clk
    if clk is None or clk.startswith(("SB_", "OSC")):
        raise BnnhwError(f"board {name} has no external oscillator resource ({clk!r})",
                         "give a platform whose default_clk names a clock pin")
    osc_hz = float(plat.default_clk_frequency)
    res = plat.resources
    uart = ("uart", 0) if _find_resource(res, "uart", 0) is not None else None
    if _find_resource(res, "led_g", 0) is not None and _find_resource(res, "led_r", 0) is not None:
        pass_led, fail_led = LedRef("led_g", 0), LedRef("led_r", 0)
    elif _find_resource(res, "rgb_led", 0) is not None:
        pass_led, fail_led = LedRef("rgb_led", 0, "g"), LedRef("rgb_led", 0, "r")
    elif _find_resource(res, "led", 1) is not None:
        pass_led, fail_led = LedRef("led", 0), LedRef("led", 1)
    elif _find_resource(res, "led", 0) is not None:
        pass_led, fail_led = LedRef("led", 0), None
    else:
        pass_led = fail_led = None
    fields = dict(name=name, platform=cls_path, family=family, device=device, package=package,
                  capacity=DEVICES[device], osc_hz=osc_hz, clock_resource=(clk, 0), uart=uart,
                  pass_led=pass_led, fail_led=fail_led,
                  speed=getattr(plat, "speed", None) if family == "ecp5" else None)
    fields.update(overrides)
    return BoardSpec(**fields)


# name -> (platform "module:Class", overrides). Everything else is read from the class.
# name -> (platform, overrides); see get_board() for the derived fields.
BOARDS = {
    "icebreaker": ("amaranth_boards.icebreaker:ICEBreakerPlatform", dict(
        uart_bridge="FTDI FT2232H, channel B (second serial port of the board's USB)",
        max_baud=3_000_000, program_hint="iceprog top.bin",
        description="1BitSquared iCEBreaker: iCE40UP5K-SG48, 12 MHz",
        aliases=("icebreaker-up5k",))),
    "ulx3s-12f": ("amaranth_boards.ulx3s:ULX3S_12F_Platform", dict(
        uart_bridge="FTDI FT231X (US1 port)", max_baud=3_000_000,
        program_hint="openFPGALoader -b ulx3s top.bit",
        description="Radiona ULX3S: LFE5U-12F-6BG381, 25 MHz")),
    "ulx3s-25f": ("amaranth_boards.ulx3s:ULX3S_25F_Platform", dict(
        uart_bridge="FTDI FT231X (US1 port)", max_baud=3_000_000,
        program_hint="openFPGALoader -b ulx3s top.bit",
        description="Radiona ULX3S: LFE5U-25F-6BG381, 25 MHz")),
    "ulx3s-45f": ("amaranth_boards.ulx3s:ULX3S_45F_Platform", dict(
        uart_bridge="FTDI FT231X (US1 port)", max_baud=3_000_000,
        program_hint="openFPGALoader -b ulx3s top.bit",
        description="Radiona ULX3S: LFE5U-45F-6BG381, 25 MHz")),
    "ulx3s-85f": ("amaranth_boards.ulx3s:ULX3S_85F_Platform", dict(
        uart_bridge="FTDI FT231X (US1 port)", max_baud=3_000_000,
        program_hint="openFPGALoader -b ulx3s top.bit",
        description="Radiona ULX3S: LFE5U-85F-6BG381, 25 MHz", aliases=("ulx3s",))),
    "ecpix5-45f": ("amaranth_boards.ecpix5:ECPIX545Platform", dict(
        uart_bridge="FTDI FT2232H, channel B", max_baud=3_000_000,
        program_hint="openFPGALoader -c ft2232 top.bit",
        description="LambdaConcept ECPIX-5: LFE5UM5G-45F-8BG554, 100 MHz")),
    "ecpix5-85f": ("amaranth_boards.ecpix5:ECPIX585Platform", dict(
        uart_bridge="FTDI FT2232H, channel B", max_baud=3_000_000,
        program_hint="openFPGALoader -c ft2232 top.bit",
        description="LambdaConcept ECPIX-5: LFE5UM5G-85F-8BG554, 100 MHz",
        aliases=("ecpix5",))),
}

_CACHE: dict[str, BoardSpec] = {}


def board_names() -> list[str]:
    return list(BOARDS)


def _alias_map() -> dict[str, str]:
    out = {}
    for name, (_, ov) in BOARDS.items():
        for a in ov.get("aliases", ()):
            out[a] = name
    return out


def get_board(name_or_spec) -> BoardSpec:
    """A :class:`BoardSpec` from a board name, an alias, ``module:Class``, or a spec
    (returned as is). Unknown names raise :class:`BnnhwError` listing the known ones."""
    if isinstance(name_or_spec, BoardSpec):
        return name_or_spec
    key = str(name_or_spec).strip()
    lowered = key.lower()
    lowered = _alias_map().get(lowered, lowered)
    if lowered in _CACHE:
        return _CACHE[lowered]
    if lowered in BOARDS:
        cls_path, ov = BOARDS[lowered]
        spec = _derive(lowered, cls_path, _load_class(cls_path), **ov)
        _CACHE[lowered] = spec
        return spec
    if ":" in key:
        spec = _derive(key, key, _load_class(key))
        _CACHE[key] = spec
        return spec
    raise BnnhwError(f"unknown board {key!r}",
                     f"known boards: {', '.join(board_names())} "
                     "(or give an amaranth-boards platform as module:Class, "
                     "e.g. amaranth_boards.icestick:ICEStickPlatform)")


def _load_class(path: str):
    mod_name, _, cls_name = path.partition(":")
    if not mod_name or not cls_name:
        raise BnnhwError(f"board {path!r} is not of the form module:Class",
                         "e.g. amaranth_boards.ulx3s:ULX3S_85F_Platform")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise BnnhwError(f"cannot import {mod_name!r} for board {path!r}: {e}",
                         "check the module name (amaranth-boards modules live in "
                         "amaranth_boards.*)") from None
    try:
        cls = getattr(mod, cls_name)
    except AttributeError:
        names = [n for n in dir(mod) if n.endswith("Platform") and not n.startswith("_")]
        raise BnnhwError(f"module {mod_name} has no class {cls_name!r}",
                         f"platform classes there: {', '.join(names) or 'none'}") from None
    if not isinstance(cls, type):
        raise BnnhwError(f"{path!r} is not a class")
    return cls


def list_boards() -> list[BoardSpec]:
    return [get_board(n) for n in BOARDS]
