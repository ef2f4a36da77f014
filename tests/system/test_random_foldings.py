"""20 random legal foldings of small networks, whole design in Amaranth's simulator.

Each design runs a few images twice: with random valid/ready stalls on both
sides (outputs bit-exact against the golden model, stream rules hold) and
without stalls (the steady-state cycles per image reach the analytic bound:
efficiency >= 0.95 with the FIFO depths the builder computed).
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from bnnhw.dataflow import build_design, plan_folding, simulate_design
from bnnhw.golden import GoldenModel

from .netgen import random_images, random_ir
from .test_folding import random_folding

NETS = {
    # conv with integer padding, conv with binary padding, stride 2, max-pool, two fcs
    "conv": dict(input=(6, 6, 2, 8), layers=[("conv", 4, 3, 1, 1), ("conv", 6, 2, 1, 1),
                                             ("pool", 2), ("fc", 8), ("fc", 5)], seed=7),
    # 1-bit input, signed scores through a per-class score table
    "fc": dict(input=(4, 5, 1, 1), layers=[("fc", 12), ("fc", 8), ("fc", 4)], seed=8,
               rank_table=True),
}
CASES = [("conv", k) for k in range(14)] + [("fc", k) for k in range(6)]
MAX_BOUND = 1500          # cycles per image: keeps each run to a few seconds


@pytest.fixture(scope="module")
def nets():
    out = {}
    for name, spec in NETS.items():
        ir = random_ir(**spec)
        imgs = random_images(ir, 4, seed=3)
        out[name] = (ir, imgs, [int(c) for c in GoldenModel(ir).predict(imgs)])
    return out


@pytest.mark.parametrize("net, k", CASES, ids=[f"{n}{k}" for n, k in CASES])
def test_random_folding_bit_exact_and_at_the_bound(nets, net, k):
    ir, imgs, gold = nets[net]
    rng = random.Random(1000 * k + len(net))
    while True:
        plan = plan_folding(ir, folding={"layers": random_folding(ir, rng)})
        if plan.bound_cycles <= MAX_BOUND:
            break
    design = build_design(ir, plan)
    stalled = simulate_design(design, imgs, stall=0.3, seed=k)
    assert not stalled.timed_out
    assert stalled.violations == []
    assert stalled.outputs == gold, plan.folds
    free = simulate_design(build_design(ir, plan), imgs)
    assert free.outputs == gold
    done = np.asarray(free.out_cycles)
    measured = float(np.mean(np.diff(done)[-2:]))
    assert plan.bound_cycles / measured >= 0.95, (plan.folds, design.fifo_depths, done)
    # the latency estimate of the schedules is close to the first image's latency
    est = design.estimates["latency_cycles_estimate"]
    assert abs(est - done[0]) <= 0.1 * done[0] + 8, (est, done[0])


def test_scores_top_streams_the_class_scores(nets):
    """``build_design(..., scores=True)``: no LabelSelect, ``o`` carries the last layer's
    scores (the score-table values for a rank-table net), bit-exact."""
    from bnnhw.dataflow.debug import encode_vector_words
    for net in ("conv", "fc"):
        ir, imgs, _ = nets[net]
        imgs = imgs[:2]
        plan = plan_folding(ir, target_cycles=2000)
        design = build_design(ir, plan, scores=True)
        last = design.top.cores[-1]
        assert last.kind in ("mvau", "score_table")
        _, scores = GoldenModel(ir).run(imgs)
        if last.kind == "mvau":           # popcount scores: the accumulator itself
            _, _, per = GoldenModel(ir).run(imgs, collect=True)
            scores = per[-1]["acc"]
        want = [w for s in scores for w in encode_vector_words(s, last.pe, last.score_width)]
        run = simulate_design(design, imgs, stall=0.2, seed=5)
        assert run.outputs == want and not run.timed_out
