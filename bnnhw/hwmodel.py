"""Analytic models of the dataflow pipeline: cycles per image and resources.

Everything here is a closed form over layer geometry and folding, cheap
enough for the folding search to evaluate thousands of candidates.  The
design built from a plan reports the same figures computed from the real
cores (``core.throughput``, their parameters); the tests check that the two
agree, so a core whose timing changes shows up here at once.

Cycles per image (steady state, input always valid, output always ready)
-----------------------------------------------------------------------
A layer's figure is the maximum over the cores it lowers to
(:mod:`bnnhw.cores.lowering`) and the width converters in front of it:

* MVAU: ``V * NF * G * SF`` with ``V`` vectors per image (``OH*OW`` for a
  conv, 1 for fc), ``NF = MH/PE``, ``SF = MW/SIMD``, ``G = B/planes``
  bit-plane groups (1 for binary layers);
* sliding-window unit (conv): ``max(H*W, OH*OW*K*K) * C/gs`` with
  ``gs = gcd(SIMD, C)`` channels per beat (the unit emits one beat per cycle
  and at most C channels per beat, so a conv layer needs at least
  ``OH*OW*K*K`` cycles however far it is unrolled);
* max-pool: ``H*W*C/simd``;  LabelSelect: ``classes/PE``;  score table: ``NF``;
* width converter: one narrow word per cycle, i.e. ``bits per image /
  narrow width`` (through the gcd when neither width divides the other);
* the input stream carries one image element per beat: ``H*W*C`` cycles.

The pipeline's bound is the slowest layer (FINN's rule: throughput =
f_clk / max over layers of cycles per image).

Resources (LUT4 and block RAMs of a family; a model, not a synthesis result)
----------------------------------------------------------------------------
Every cost function takes the FPGA family (:class:`bnnhw.boards.family.Family`,
default ECP5) whose block RAM shapes and Yosys block cost it uses.

* MVAU: ``LUT = 2.2*PE*SIMD*P + 2*PE*acc_bits + 30`` plus its memories
  (below; + shared bit-plane counts ``2.2*SIMD*P`` for an integer first
  layer with ``P`` planes per cycle), fitted to ``tools/bench_cores.py``
  (binary 256x256 MVAU at PE x SIMD = 4x32 and 16x32: 527 and 1,588 LUT4,
  4 and 16 DP16KD measured; 560 and 1,620 LUT4, 4 and 16 DP16KD modelled).
* Memories (weights ``PE x (NF*SF deep, SIMD wide)``, thresholds
  ``PE x (NF deep, acc_bits wide)``, line buffers, FIFOs, score tables):
  depth 1 is a constant (free).  Block RAMs: DP16KD (512x36, 1024x18,
  2048x9, 4096x4, 8192x2, 16384x1; iCE40: the SB_RAM40_4K shapes), the cheapest
  configuration (32x512 -> 1 block and 64x1024 -> 4 blocks as measured).  In logic a memory costs
  ``width * ceil(depth/16)`` LUT4 (TOOLCHAIN.md: a 32x64 ROM became 128 LUT4).
  ROMs (weights, thresholds, score tables) follow Yosys's ``memory_libmap``
  choice: logic costs 1/16 per bit, a block ``family.ebr_cost`` (128 for the DP16KD),
  so a ROM goes to blocks when ``width*depth > 16*ebr_cost*blocks`` (CNV's
  conv3 at PE=8, SIMD=96: 96 words of 96 bits per PE -> 3 blocks each, as
  synthesised).  RAMs (buffers, FIFOs): depth >= 128 goes to blocks; on iCE40 an
  MVAU's input buffer also goes to blocks from ``family.ram_block_bits`` bits on.
* sliding-window unit ``120 + 2*width``; max-pool ``40 + 3*simd``; width
  converter ``10 + max(widths)``; LabelSelect ``30 + 2*PE*score_width``;
  FIFO ``30`` + its storage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd

from .boards.family import ECP5, Family
from .layout import divisors

__all__ = ["LUT_SYNAPSE", "LUT_ACC_BIT", "LUT_MVAU_BASE", "EBR_MIN_DEPTH", "Cost",
           "memory_cost", "mvau_cost", "swu_cost", "maxpool_cost", "converter_cost",
           "label_select_cost", "fifo_cost", "score_table_cost", "link_cycles",
           "swu_cycles", "swu_default_rows", "divisors"]

LUT_SYNAPSE = 2.2       # LUT4 per XNOR/AND + popcount input bit
LUT_ACC_BIT = 2.0       # LUT4 per accumulator bit per PE (add + compare)
LUT_MVAU_BASE = 30      # control and output buffer (small: the fit leaves little)
EBR_MIN_DEPTH = 128     # RAMs at least this deep go to block RAM


@dataclass
class Cost:
    """Estimated resources: LUT4 (logic + memories mapped to logic), block RAMs."""
    lut: float = 0.0
    ebr: int = 0
    parts: dict = field(default_factory=dict)

    def add(self, other: "Cost", name: str | None = None) -> "Cost":
        self.lut += other.lut
        self.ebr += other.ebr
        if name:
            self.parts[name] = {"lut": round(other.lut), "ebr": other.ebr}
        return self

    def as_dict(self) -> dict:
        return {"lut": int(round(self.lut)), "ebr": int(self.ebr)}


def memory_cost(width: int, depth: int, count: int = 1, *, rom: bool = False,
                family: Family = ECP5, block_bits: int | None = None) -> Cost:
    """``count`` memories of ``depth`` words of ``width`` bits in ``family``; ``rom``:
    constant contents, placed as Yosys places ROMs (see module doc); ``block_bits``: a
    RAM of at least that many bits goes to block RAM whatever its depth."""
    if width <= 0 or depth <= 1:
        return Cost()
    blocks = min((-(-width // w)) * (-(-depth // d)) for d, w in family.ebr_configs)
    if rom:
        in_logic = width * depth <= 16 * family.ebr_cost * blocks
    else:
        in_logic = depth < EBR_MIN_DEPTH and not (block_bits and width * depth >= block_bits)
    if in_logic:
        return Cost(lut=float(count * width * (-(-depth // 16))))
    return Cost(ebr=count * blocks)


def mvau_widths(mw: int, bits: int = 1, signed: bool = False) -> tuple[int, int]:
    """Accumulator and threshold widths of an MVAU (as :mod:`bnnhw.cores.mvau` sizes them):
    binary ``bits_for(MW)`` and ``bits_for(MW+1)``; integer inputs one signed width for
    both, holding ``+-MW*max|x|`` and ``acc_max + 1``."""
    if bits == 1:
        return mw.bit_length() or 1, (mw + 1).bit_length()
    xmax = (1 << (bits - 1)) if signed else (1 << bits) - 1
    w = (mw * xmax + 1).bit_length() + 1
    return w, w


def mvau_cost(*, mw: int, mh: int, simd: int, pe: int, bits: int = 1, planes: int = 1,
              signed: bool = False, thresholds: bool = True, family: Family = ECP5) -> Cost:
    nf, sf = mh // pe, mw // simd
    acc_bits, t_bits = mvau_widths(mw, bits, signed)
    c = Cost(lut=LUT_SYNAPSE * pe * simd * planes + LUT_ACC_BIT * pe * acc_bits + LUT_MVAU_BASE)
    if bits > 1:
        c.lut += LUT_SYNAPSE * simd * planes            # shared popcount of each plane
    c.add(memory_cost(simd, nf * sf, pe, rom=True, family=family))     # weights
    if thresholds:
        c.add(memory_cost(t_bits, nf, pe, rom=True, family=family))    # thresholds
    c.add(memory_cost(simd * bits, 2 * sf, family=family,              # input double buffer
                      block_bits=family.ram_block_bits))
    return c


def swu_cost(*, width: int, row_words: int, rows: int, family: Family = ECP5) -> Cost:
    return Cost(lut=120.0 + 2 * width).add(memory_cost(width, rows * row_words,
                                                       family=family))


def swu_default_rows(height: int, k: int, stride: int, pad: int, out_height: int) -> int:
    """Line buffers of a :class:`bnnhw.cores.SlidingWindow` built without ``rows``."""
    trailing = height - min(height, (out_height - 1) * stride - pad + k)
    return max(k + stride, 2 * k - pad + trailing)


def swu_cycles(h: int, w: int, c: int, k: int, oh: int, ow: int, gs: int) -> int:
    return max(h * w, oh * ow * k * k) * (c // gs)


def maxpool_cost(*, simd: int, out_width: int, cf: int, family: Family = ECP5) -> Cost:
    return Cost(lut=40.0 + 3 * simd).add(memory_cost(simd, out_width * cf, family=family))


def converter_cost(a: int, b: int) -> Cost:
    """Width converters from ``a``-bit to ``b``-bit words (none when equal)."""
    if a == b:
        return Cost()
    if a % b == 0 or b % a == 0:
        return Cost(lut=10.0 + max(a, b))
    g = gcd(a, b)
    return Cost(lut=converter_cost(a, g).lut + converter_cost(g, b).lut)


def link_cycles(a: int, b: int, bits_per_image: int) -> int:
    """Cycles per image of the converters from ``a``- to ``b``-bit words."""
    if a == b:
        return 0
    if a % b == 0 or b % a == 0:
        return bits_per_image // min(a, b)
    return bits_per_image // gcd(a, b)


def label_select_cost(*, pe: int, score_width: int) -> Cost:
    return Cost(lut=30.0 + 2 * pe * score_width)


def score_table_cost(*, mh: int, pe: int, span: int, score_width: int,
                     family: Family = ECP5) -> Cost:
    return Cost(lut=20.0).add(memory_cost(score_width, (mh // pe) * span, pe, rom=True,
                                          family=family))


def fifo_cost(*, width: int, depth: int, family: Family = ECP5) -> Cost:
    if depth <= 0:
        return Cost()
    return Cost(lut=30.0 + width).add(memory_cost(width, depth - 1, family=family))
