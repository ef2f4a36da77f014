"""Conformance suite: every registered core, every configuration of its adapter.

Per (core, configuration):

* stall-free run: output equals golden (bnnhw.golden_ops) bit for bit on
  random and edge-case frames; every input and output transfer happens on
  the cycle ``core.schedule()`` documents (so ``throughput`` and ``latency``
  are measured, not asserted); the documented formulas (where the adapter
  gives them) equal the schedule's;
* stalled run: seeded random valid/ready stalls on both sides, output equals
  golden, the monitor sees no payload/valid change while ``valid & ~ready``,
  and with ``o.ready`` held low ``o.valid`` still rises.

Per core: bad parameters raise ValueError naming the layer.
"""
from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from bnnhw.cores import registry, StreamCore
from bnnhw.cores.simulate import run_stream

ENTRIES = [e for e in registry.entries() if e.conformance is not None]
CASES = [pytest.param(e, params, id=f"{e.name}-{cid}")
         for e in ENTRIES for cid, params in e.conformance.configs()]


def _seed(entry, params) -> int:
    return zlib.crc32(f"{entry.name}:{sorted(params.items())!r}".encode())


def _workload(entry, params, n_random=3):
    conf = entry.conformance
    rng = np.random.default_rng(_seed(entry, params))
    core = conf.build(params, rng)
    frames = conf.frames(core, rng, n_random) + conf.frames(core, rng, 4, edge=True)
    beats = [b for f in frames for b in conf.encode(core, f)]
    expected = [b for f in frames for b in conf.expected(core, f)]
    return core, frames, beats, expected


def _first_mismatch(got, exp):
    for k, (a, b) in enumerate(zip(got, exp)):
        if a != b:
            return f"beat {k}: got {a:#x}, expected {b:#x}"
    return f"{len(got)} beats received, {len(exp)} expected"


def test_registry_is_populated():
    names = registry.names()
    for required in ("mvau", "first_layer_mvau", "swu", "maxpool", "fifo", "label_select",
                     "width_converter"):
        assert required in names
    for e in registry.entries():
        assert issubclass(e.cls, StreamCore), e.name
        assert e.cls.kind == e.name


@pytest.mark.parametrize("entry,params", CASES)
def test_cost_model_for_every_family(entry, params):
    """Every core estimates its LUT4 and block RAMs in every FPGA family (the estimates
    and the board fit refuse a core without a cost model)."""
    from bnnhw.boards.family import FAMILIES
    from bnnhw.hwmodel import Cost
    core = entry.conformance.build(params, np.random.default_rng(_seed(entry, params)))
    core._MustUse__silence = True
    for fam in FAMILIES.values():
        c = core.cost(fam)
        assert isinstance(c, Cost) and c.lut >= 0 and c.ebr >= 0, (entry.name, fam.name)


@pytest.mark.parametrize("entry,params", CASES)
def test_stall_free_golden_and_schedule(entry, params):
    core, frames, beats, expected = _workload(entry, params)
    assert len(beats) == core.in_beats * len(frames)
    assert len(expected) == core.out_beats * len(frames)
    run = run_stream(core, beats, len(expected))
    assert not run.timed_out, f"timed out after {run.cycles} cycles"
    assert run.outputs == expected, _first_mismatch(run.outputs, expected)
    sched = core.schedule(len(frames))
    assert run.in_cycles == [c for f in sched.reads for c in f], "input transfers off schedule"
    assert run.out_cycles == [c for f in sched.writes for c in f], "output transfers off schedule"
    assert core.latency == run.out_cycles[0] - run.in_cycles[0]
    # steady state: frame starts spaced by the documented cycles per frame
    starts = [f[0] for f in sched.writes]
    assert starts[-1] - starts[-2] == core.throughput
    formulas = getattr(entry.conformance, "formulas", None)
    if formulas:
        for key, value in formulas(core).items():
            assert getattr(core, key) == value, key


STALLS = {"balanced": (0.3, 0.45), "starved": (0.7, 0.1), "backpressure": (0.05, 0.8)}


@pytest.mark.parametrize("stalls", list(STALLS))
@pytest.mark.parametrize("entry,params", CASES)
def test_random_stalls_and_stream_rules(entry, params, stalls):
    core, frames, beats, expected = _workload(entry, params)
    in_stall, out_stall = STALLS[stalls]
    run = run_stream(core, beats, len(expected), in_stall=in_stall, out_stall=out_stall,
                     seed=_seed(entry, params) + len(stalls), hold_ready=True,
                     hold_limit=4 * core.latency + 4 * core.throughput + 50)
    assert not run.timed_out, f"timed out after {run.cycles} cycles"
    assert run.violations == []
    assert run.valid_without_ready, "o.valid did not rise while o.ready was held low"
    assert run.outputs == expected, _first_mismatch(run.outputs, expected)


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.name) for e in ENTRIES])
def test_bad_parameters_raise(entry):
    bad = entry.conformance.bad_params()
    assert bad, f"{entry.name}: the adapter lists no bad parameters"
    for params, fragment in bad:
        with pytest.raises(ValueError, match=re.escape(fragment)):
            entry.conformance.build(params, np.random.default_rng(0))


def test_a_core_without_cost_model_is_an_error_not_zero():
    from bnnhw.dataflow.design import core_cost
    from bnnhw.errors import BnnhwError

    class NoCost(StreamCore):
        def __init__(self):
            self.name = "nocost"
            super().__init__(1, 1)

    core = NoCost()
    core._MustUse__silence = True
    with pytest.raises(BnnhwError, match="nocost.*no cost model"):
        core_cost(core)


def test_an_unregistered_layer_kind_is_an_error():
    from bnnhw.errors import BnnhwError
    from bnnhw.kinds import get_kind
    with pytest.raises(BnnhwError, match="not registered; registered: conv, fc, maxpool"):
        get_kind("no_such_kind")
