"""20 random legal foldings of small networks, whole design in Amaranth's simulator.

Each design runs twice:

* six images with random valid/ready stalls on both sides, built with ``scores=True``:
  the last layer's scores (every class's score, not only the winning class)
  bit-exact against the golden model, stream rules hold, no beat beyond the
  expected ones;
* without stalls, four images through the class-index top: classes bit-exact, and the
  steady-state cycles per image reach the analytic bound (efficiency >= 0.95
  with the FIFO depths the builder computed).

The nets' seeds are chosen so that the six images' golden classes and score
vectors differ (asserted): hardware stuck on one class or one score vector
cannot pass.  ``sconv`` is a signed 8-bit first layer padded with a non-zero
integer.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from bnnhw.dataflow import build_design, plan_folding, simulate_design
from bnnhw.dataflow.debug import encode_vector_words
from bnnhw.golden import GoldenModel

from .netgen import random_images, random_ir
from .test_folding import random_folding

NETS = {
    # conv with integer padding, conv with binary padding, stride 2, max-pool, two fcs
    "conv": dict(input=(6, 6, 2, 8), layers=[("conv", 4, 3, 1, 1), ("conv", 6, 2, 1, 1),
                                             ("pool", 2), ("fc", 8), ("fc", 5)], seed=33),
    # the same shape, signed 8-bit inputs, the first conv padded with the integer -77
    "sconv": dict(input=(6, 6, 2, 8), signed=True, int_pad_value=-77,
                  layers=[("conv", 4, 3, 1, 1), ("conv", 6, 2, 1, 1), ("pool", 2), ("fc", 8),
                          ("fc", 5)], seed=46),
    # 1-bit input, signed scores through a per-class score table
    "fc": dict(input=(4, 5, 1, 1), layers=[("fc", 12), ("fc", 8), ("fc", 4)], seed=56,
               rank_table=True),
}
CASES = [pytest.param(n, k, id=f"{n}{k}")
         for n, k in [("conv", k) for k in range(10)] + [("sconv", k) for k in range(5)]
         + [("fc", k) for k in range(5)]]
N_IMAGES = 6
MAX_BOUND = 1500          # cycles per image: keeps each run to a few seconds


def score_words(ir, design, imgs) -> list[int]:
    """The beats a ``scores=True`` top must emit for ``imgs``: the last layer's scores
    (the accumulator of a popcount MVAU, the table values of a score table)."""
    last = design.top.cores[-1]
    assert last.kind in ("mvau", "score_table")
    if last.kind == "mvau":           # popcount scores: the accumulator itself
        _, _, per = GoldenModel(ir).run(imgs, collect=True)
        scores = per[-1]["acc"]
    else:
        _, scores = GoldenModel(ir).run(imgs)
    return [w for s in scores for w in encode_vector_words(s, last.pe, last.score_width)]


@pytest.fixture(scope="module")
def nets():
    out = {}
    for name, spec in NETS.items():
        ir = random_ir(**spec)
        imgs = random_images(ir, N_IMAGES, seed=3)
        gold, scores = GoldenModel(ir).run(imgs)
        gold = [int(c) for c in gold]
        # the images tell designs apart: several classes, all score vectors different
        assert len(set(gold)) >= 3, (name, gold)
        assert len({tuple(r) for r in np.asarray(scores).tolist()}) == N_IMAGES, name
        out[name] = (ir, imgs, gold)
    return out


@pytest.mark.parametrize("net, k", CASES)
def test_random_folding_bit_exact_and_at_the_bound(nets, net, k):
    ir, imgs, gold = nets[net]
    rng = random.Random(1000 * k + len(net))
    while True:
        plan = plan_folding(ir, folding={"layers": random_folding(ir, rng)})
        if plan.bound_cycles <= MAX_BOUND:
            break
    design = build_design(ir, plan, scores=True)
    stalled = simulate_design(design, imgs, stall=0.3, seed=k)
    assert not stalled.timed_out
    assert stalled.violations == []
    assert stalled.outputs == score_words(ir, design, imgs), plan.folds
    classes = build_design(ir, plan)
    free = simulate_design(classes, imgs[:4])
    assert free.outputs == gold[:4] and free.violations == []
    done = np.asarray(free.out_cycles)
    measured = float(np.mean(np.diff(done)[-2:]))
    assert plan.bound_cycles / measured >= 0.95, (plan.folds, classes.fifo_depths, done)
    # the latency estimate of the schedules is close to the first image's latency
    est = classes.estimates["latency_cycles_estimate"]
    assert abs(est - done[0]) <= 0.1 * done[0] + 8, (est, done[0])


def test_scores_top_streams_the_class_scores(nets):
    """``build_design(..., scores=True)``: no LabelSelect, ``o`` carries the last layer's
    scores (the score-table values for a rank-table net), bit-exact."""
    for net in ("conv", "fc"):
        ir, imgs, _ = nets[net]
        imgs = imgs[:2]
        plan = plan_folding(ir, target_cycles=2000)
        design = build_design(ir, plan, scores=True)
        run = simulate_design(design, imgs, stall=0.2, seed=5)
        assert run.outputs == score_words(ir, design, imgs) and not run.timed_out
