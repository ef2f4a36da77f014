# amaranth: UnusedElaboratable=no
"""A new layer kind defined in this one file runs through the whole flow.

``xor_mask`` inverts chosen channels of a binary feature map (``y = x XOR mask``, one
mask bit per channel).  This file defines everything bnnhw needs to know about it --
the IR layer, its core (with cost model and conformance adapter) and its
:class:`bnnhw.kinds.LayerKind` (IR file fields and checks, golden op, folding, cycles
and cost, lowering, estimates) -- and nothing else in bnnhw is edited.  A network that
contains it is saved and loaded as an IR file and goes through golden -> folding ->
estimates -> Verilog -> Verilator, bit-exact.
``docs/extending.md`` walks through the same steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.hdl import Array, Const, Module, Signal

from bnnhw import hwmodel as M
from bnnhw.cores import registry
from bnnhw.cores._common import Schedule, StreamCore
from bnnhw.cores.lowering import Chain, LayerHW
from bnnhw.dataflow import build_design, plan_folding
from bnnhw.dataflow.fit import estimate_fit
from bnnhw.golden import GoldenModel
from bnnhw.ir import NetworkIR
from bnnhw.kinds import LayerFold, LayerGeom, LayerKind, register_kind
from bnnhw.layout import divisors

from .netgen import random_images, random_ir


# ------------------------------------------------------------------------- 1. IR layer

@dataclass
class XorMask:
    """IR layer: ``y[..., c] = x[..., c] XOR mask[c]`` on a binary map ``in_shape``."""
    name: str
    in_shape: tuple
    mask: np.ndarray
    kind: str = "xor_mask"

    @property
    def out_shape(self):
        return tuple(self.in_shape)


# ------------------------------------------------------------------------- 2. the core

class _XorConformance(registry.Conformance):
    def configs(self):
        return [("c6s1", {"channels": 6, "simd": 1}), ("c6s3", {"channels": 6, "simd": 3}),
                ("c8s8", {"channels": 8, "simd": 8})]

    def build(self, params, rng):
        mask = rng.integers(0, 2, params["channels"]).astype(np.uint8)
        return XorMaskCore(name="x", mask=mask, simd=params["simd"])

    def frames(self, core, rng, n, edge=False):
        return [rng.integers(0, 2, core.channels).astype(np.uint8) for _ in range(n)]

    def encode(self, core, frame):
        return [int(sum(int(b) << j for j, b in enumerate(frame[g * core.simd:
                                                               (g + 1) * core.simd])))
                for g in range(core.cf)]

    def expected(self, core, frame):
        return self.encode(core, np.asarray(frame) ^ core.mask)

    def formulas(self, core):
        return {"throughput": core.cf, "latency": 1}

    def synth_params(self):
        return {"channels": 6, "simd": 3}


@registry.register("xor_mask", conformance=_XorConformance)
class XorMaskCore(StreamCore):
    """XOR of each beat with the mask bits of its channels.

    Ports: ``i``, ``o`` of ``simd`` bits: one pixel is ``C/simd`` beats, channel
    ``g*simd + j`` at bit ``j`` of beat ``g`` (bnnhw.layout's stream order).
    Timing: a register stage, one beat per cycle (``throughput = C/simd`` per pixel,
    ``latency = 1``)."""

    def __init__(self, *, name, mask, simd):
        self.name = str(name)
        self.mask = np.asarray(mask, np.uint8)
        self.channels = len(self.mask)
        if self.channels % simd:
            raise ValueError(f"layer {self.name}: SIMD={simd} does not divide "
                             f"C={self.channels}; legal values: {divisors(self.channels)}")
        self.simd, self.cf = simd, self.channels // simd
        super().__init__(simd, simd)
        self.in_beats = self.out_beats = self.cf

    def schedule(self, frames=3):
        n = self.cf
        return Schedule([[f * n + j for j in range(n)] for f in range(frames)],
                        [[f * n + j + 1 for j in range(n)] for f in range(frames)])

    @property
    def throughput(self):
        return self.cf

    @property
    def latency(self):
        return 1

    def cost(self, family):
        return M.Cost(lut=10.0 + 2 * self.simd)

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        words = [sum(int(b) << j for j, b in enumerate(self.mask[g * self.simd:
                                                              (g + 1) * self.simd]))
                 for g in range(self.cf)]
        masks = Array([Const(w, self.simd) for w in words])
        cnt = Signal(range(self.cf))
        m.d.comb += i.ready.eq(~o.valid | o.ready)
        with m.If(i.valid & i.ready):
            m.d.sync += [o.payload.eq(i.payload ^ masks[cnt]), o.valid.eq(1),
                         cnt.eq(0 if self.cf == 1 else (cnt + 1) % self.cf)]
        with m.Elif(o.ready):
            m.d.sync += o.valid.eq(0)
        return m


# ------------------------------------------------------------------------- 3. the kind

@register_kind
class XorMaskKind(LayerKind):
    names = ("xor_mask",)
    fold_keys = ("simd",)

    # IR file: the mask as an array, nothing else in the header
    def ir_arrays(self, layer):
        return {"mask": np.asarray(layer.mask, np.uint8)}

    def ir_header(self, layer):
        return {}

    def ir_from_header(self, d, arrays):
        return XorMask(d["name"], tuple(d["in_shape"]), arrays["mask"].astype(np.uint8))

    def ir_check(self, layer, shape, bad):
        if np.asarray(layer.mask).shape != (shape[-1],) or int(np.max(layer.mask)) > 1:
            raise bad(f"layer {layer.name}: mask must be one bit per channel ({shape[-1]})")
        return shape

    def golden(self, layer, prep, x, outs, reference):
        y = (np.asarray(x) ^ layer.mask).astype(np.uint8)
        if outs is not None:
            outs.append({"bits": y})
        return y

    def geometry(self, layer, index):
        h, w, c = (1, 1, *layer.in_shape) if len(layer.in_shape) == 1 else layer.in_shape
        return LayerGeom(name=layer.name, kind="xor_mask", index=index, h=h, w=w, c=c,
                         oh=h, ow=w)

    def legal_values(self, g):
        return {"simd": divisors(g.c)}

    def in_width(self, g, f):
        return f.simd

    def out_width(self, g, f):
        return f.simd

    def add_figures(self, g, f, cyc, cost):
        cyc["xor_mask"] = g.h * g.w * g.c // f.simd
        cost.add(M.Cost(lut=10.0 + 2 * f.simd), "xor_mask")

    def layer_hw(self, layer, fold):
        return LayerHW(name=layer.name, kind="xor_mask", in_shape=tuple(layer.in_shape),
                       simd=fold.simd, extra={"mask": layer.mask})

    def lower(self, hw):
        core = registry.get("xor_mask")(name=hw.name, mask=hw.extra["mask"], simd=hw.simd)
        pixels = int(np.prod(hw.in_shape[:-1])) if len(hw.in_shape) > 1 else 1
        return Chain([core], [pixels], [hw.name])


# ------------------------------------------------------------------------- 4. the flow

def _net():
    """conv -> xor_mask -> maxpool -> conv -> xor_mask (on the flattened fc input) ->
    fc -> fc, random weights."""
    base = random_ir(input=(8, 8, 1, 8), layers=[("conv", 6, 3, 1, 1), ("pool", 2),
                                                 ("fc", 12), ("fc", 5)], seed=24, signed=True)
    rng = np.random.default_rng(5)
    conv, pool, fc1, fc2 = base.layers
    layers = [conv, XorMask("inv0", conv.out_shape, rng.integers(0, 2, 6).astype(np.uint8)),
              pool, fc1, XorMask("inv1", fc1.out_shape, rng.integers(0, 2, 12).astype(np.uint8)),
              fc2]
    return base, NetworkIR(input=base.input, layers=layers, num_classes=base.num_classes)


def test_ir_file_round_trip(tmp_path):
    from bnnhw.ir import load_ir
    _, ir = _net()
    ir.validate("toy IR")
    ir.save(str(tmp_path / "toy.bnn"))
    again = load_ir(str(tmp_path / "toy.bnn"))
    assert [l.kind for l in again.layers] == [l.kind for l in ir.layers]
    assert again.to_bytes() == ir.to_bytes()
    x = random_images(ir, 8, seed=2)
    assert np.array_equal(GoldenModel(again).run(x)[1], GoldenModel(ir).run(x)[1])


def test_golden_applies_the_mask():
    base, ir = _net()
    x = random_images(ir, 8, seed=2)
    _, _, per = GoldenModel(ir).run(x, collect=True)
    _, _, ref = GoldenModel(base).run(x, collect=True)
    assert np.array_equal(per[1]["bits"], ref[0]["bits"] ^ ir.layers[1].mask)
    assert not np.array_equal(per[-1]["scores"], ref[-1]["scores"])


def test_folding_estimates_and_fit_cover_the_new_kind():
    _, ir = _net()
    plan = plan_folding(ir, target_cycles=600)
    f = plan.fold("inv0")
    assert f.kind == "xor_mask" and f.simd in divisors(6)
    row = next(r for r in plan.figures if r["name"] == "inv0")
    assert row["cycles"] == 8 * 8 * 6 // f.simd <= 600
    # the folding file of the plan reads back to the same folds
    again = plan_folding(ir, folding=plan.to_json())
    assert again.folds == plan.folds
    design = build_design(ir, plan)
    est = {r["name"]: r for r in design.estimates["layers"]}
    assert est["inv0"]["cores"][0]["kind"] == "xor_mask"
    assert est["inv0"]["lut"] == 10 + 2 * f.simd
    assert design.estimates["bound_cycles_per_frame"] == plan.bound_cycles
    assert estimate_fit(design, "icebreaker").layers


def test_conformance_adapter_is_registered():
    entry = next(e for e in registry.entries() if e.name == "xor_mask")
    rng = np.random.default_rng(0)
    for _, params in entry.conformance.configs():
        core = entry.conformance.build(params, rng)
        assert core.throughput == entry.conformance.formulas(core)["throughput"]


@pytest.mark.parametrize("target", [600, 2000])
def test_verilator_bit_exact(target, tmp_path):
    from bnnhw.dataflow import TOP_NAME, encode_images
    from bnnhw.sim import simulate
    from bnnhw.sim.toolchain import SimulatorNotFound
    _, ir = _net()
    plan = plan_folding(ir, target_cycles=target)
    design = build_design(ir, plan)
    x = random_images(ir, 6, seed=4)
    gold = GoldenModel(ir).predict(x)
    assert len(set(gold.tolist())) > 2       # the images tell designs apart
    q = ir.input
    try:
        res = simulate(design.verilog(), TOP_NAME, encode_images(ir, x), gold,
                       wi=design.input_width, wo=design.output_width, stall=0.3, seed=1,
                       frame_in_beats=q.height * q.width * q.channels, frame_out_beats=1,
                       bench="hdl", work_dir=tmp_path)
    except SimulatorNotFound as e:       # pragma: no cover - no Verilator here
        pytest.skip(str(e))
    assert res.ok, (res.mismatches, res.missing_beats, res.extra_beats)
