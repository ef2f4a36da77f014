"""FPGA family facts: the one table the cost models, the fit check and the tools read.

A :class:`Family` is passed down to whatever needs it (the resource models of
:mod:`bnnhw.hwmodel`, the board fit of :mod:`bnnhw.dataflow.fit`);
nothing patches module globals.  Adding a family = one entry in :data:`FAMILIES`
(and its tools in :mod:`bnnhw.boards.build`).

Figures and where they come from:

* ``ebr_configs``: block RAM shapes (depth, width), cheapest first: ECP5 DP16KD,
  iCE40 SB_RAM40_4K.
* ``ebr_cost``: Yosys's cost of one block (lattice/brams_16kd.txt, ice40/brams.txt);
  decides whether a ROM goes to logic or to blocks.
* ``ram_block_bits``: a RAM of at least this many bits goes to block RAM however
  shallow (iCE40, measured: an MVAU input buffer of 40 x 16 bits became 3 blocks);
  ``None``: only depth decides (:data:`bnnhw.hwmodel.EBR_MIN_DEPTH`).
* ``lut_factor``: synthesised / modelled LUT4, measured: iCE40 on a digits TFC
  (2,131 LUT4 for ~1,336 modelled: 1.6); ECP5 on CNV at 32,768 cycles per frame
  (19,783 LUT4 placed for ~12,900 modelled: 1.5).
* ``shell_lut``: LUT4 of the board shells' own logic, per shell (measured: the
  UART shell on iCE40 ~590 LUT4 with its clock domain).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bnnhw.errors import BnnhwError

__all__ = ["Family", "FAMILIES", "ECP5", "ICE40", "get_family"]


@dataclass(frozen=True)
class Family:
    """What bnnhw knows about one FPGA family (see the module docstring)."""
    name: str
    ebr_configs: tuple
    ebr_cost: int
    lut_factor: float
    shell_lut: dict = field(default_factory=dict)
    ram_block_bits: int | None = None
    synth: str = ""
    pnr: str = ""
    pack: str = ""
    bitstream_suffix: str = ""


ECP5 = Family(
    name="ecp5",
    ebr_configs=((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
    ebr_cost=128, lut_factor=1.5, shell_lut={"uart": 520, "selftest": 140},
    synth="synth_ecp5", pnr="nextpnr-ecp5", pack="ecppack", bitstream_suffix=".bit")

ICE40 = Family(
    name="ice40",
    ebr_configs=((2048, 2), (1024, 4), (512, 8), (256, 16)),
    ebr_cost=64, lut_factor=1.6, shell_lut={"uart": 620, "selftest": 160},
    ram_block_bits=512,
    synth="synth_ice40", pnr="nextpnr-ice40", pack="icepack", bitstream_suffix=".bin")

FAMILIES: dict[str, Family] = {f.name: f for f in (ECP5, ICE40)}


def get_family(family) -> Family:
    """The :class:`Family` named ``family`` (a Family is returned as it is)."""
    if isinstance(family, Family):
        return family
    try:
        return FAMILIES[family]
    except KeyError:
        raise BnnhwError(f"unknown FPGA family {family!r}; known: {', '.join(FAMILIES)}",
                         "add it to bnnhw.boards.family.FAMILIES") from None
