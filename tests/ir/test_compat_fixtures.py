"""Files written by an earlier bnnhw still load and mean the same (tests/data/compat)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bnnhw.dataflow import load_folding_file, plan_folding
from bnnhw.export import load_model_any
from bnnhw.golden import GoldenModel
from bnnhw.ir import load_ir

DATA = Path(__file__).resolve().parent.parent / "data" / "compat"
EXPECTED = json.loads((DATA / "expected.json").read_text())


def _images(ir, n=16, seed=3):
    # as tests/system/netgen.random_images (the fixtures' images)
    rng = np.random.default_rng(seed)
    q = ir.input
    lo, hi = q.raw_range
    return rng.integers(lo, hi + 1, (n, q.channels, q.height, q.width)).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_old_ir_and_folding_files_load_and_mean_the_same(name):
    ir = load_ir(str(DATA / f"{name}.bnn"))
    exp = EXPECTED[name]
    cls, scores = GoldenModel(ir).run(_images(ir))
    assert cls.tolist() == exp["classes"] and int(scores.sum()) == exp["scores_sum"]
    plan = plan_folding(ir, folding=load_folding_file(str(DATA / f"{name}.folding.json")))
    assert [[f.name, f.simd, f.pe, f.planes] for f in plan.folds] == exp["folds"]
    assert plan.bound_cycles == exp["bound_cycles"]


def test_old_checkpoint_exports_to_the_old_ir():
    """The checkpoint re-exports to the old IR (provenance aside: it names the source)."""
    ir, ck = load_model_any(str(DATA / "tfc-digits.pt"))
    old = load_ir(str(DATA / "tfc-digits.bnn"))
    assert ck is not None
    a, b = ir.header(), old.header()
    a.pop("provenance"), b.pop("provenance")
    assert a == b
    arr_a, arr_b = ir.arrays(), old.arrays()
    assert arr_a.keys() == arr_b.keys()
    assert all(np.array_equal(arr_a[k], arr_b[k]) for k in arr_a)
