"""Every registered core through Yosys (synth_ice40, synth_ecp5): real logic, real memories.

Small configurations run in the default tier (a few seconds each, ECP5;
iCE40 for the MVAU); the other iCE40 runs and the configurations deep enough
to infer block RAM are marked slow."""
import numpy as np
import pytest

from bnnhw.cores import registry
from bnnhw.cores.synth import synth_stats

# default tier: ECP5 for every core, iCE40 for the MVAU; the other iCE40 runs are slow
SMALL = [pytest.param(e, fam, id=f"{e.name}-{fam}",
                      marks=[pytest.mark.slow] if fam == "ice40" and e.name != "mvau" else [])
         for e in registry.entries() if e.conformance and e.conformance.synth_params()
         for fam in ("ecp5", "ice40")]
DEEP = [pytest.param(e, fam, id=f"{e.name}-{fam}", marks=pytest.mark.slow)
        for e in registry.entries() if e.conformance and e.conformance.synth_memory_params()
        for fam in ("ice40", "ecp5")]


def test_every_core_has_a_synthesis_configuration():
    missing = [e.name for e in registry.entries()
               if not (e.conformance and e.conformance.synth_params())]
    assert missing == []


@pytest.mark.parametrize("entry,family", SMALL)
def test_synth_small(entry, family, tmp_path):
    core = entry.conformance.build(entry.conformance.synth_params(), np.random.default_rng(0))
    s = synth_stats(core, family, workdir=tmp_path)
    assert s["lut"] > 0 and s["ff"] > 0, s["cells"]


@pytest.mark.parametrize("entry,family", DEEP)
def test_synth_infers_block_ram(entry, family, tmp_path):
    core = entry.conformance.build(entry.conformance.synth_memory_params(),
                                   np.random.default_rng(0))
    s = synth_stats(core, family, workdir=tmp_path)
    assert s["lut"] > 0 and s["ff"] > 0, s["cells"]
    assert s["ram"] >= 1, s["cells"]


def test_mvau_weight_style_block_forces_block_ram(tmp_path):
    """A shallow weight ROM would become LUTs; weight_style='block' puts it in EBR."""
    from bnnhw.cores import MVAU
    rng = np.random.default_rng(1)
    w = rng.integers(0, 2, (8, 64)).astype(np.uint8)
    core = MVAU(name="fc", mw=64, mh=8, simd=8, pe=4, weights=w,
                thresholds=rng.integers(0, 65, 8), weight_style="block")
    s = synth_stats(core, "ecp5", workdir=tmp_path)
    assert s["ram"] >= 4, s["cells"]          # one DP16KD per PE
