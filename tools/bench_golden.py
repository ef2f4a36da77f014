#!/usr/bin/env python3
"""Benchmark: golden model (numpy, bit-exact) vs torch float inference of the same BNN.

Not a test.  Random weights and BN statistics (speed does not depend on them);
torch in eval mode with one thread, golden with the default fast engine.
Prints images/s for LFC (784-1024x3-10, 1-bit and 8-bit inputs) and CNV
(3x32x32, Q1.7 input) at batch 1 and 256, side by side, with the ratio
golden/torch (> 1: golden faster).  Also checks that both agree.

"torch" is the BNN module as trained and evaluated: every forward pass
re-binarizes the latent weights (``sign`` of each weight tensor), which
dominates at batch 1.  "torch cached" runs the same module with the +-1
weights computed once (benchmark only), i.e. the float GEMM/conv cost alone.

    .venv/bin/python tools/bench_golden.py [--quick] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bnnhw.export import export_model  # noqa: E402
from bnnhw.golden import GoldenModel  # noqa: E402
from bnnhw.train.models import build_model, input_quant_for, make_spec  # noqa: E402

NETS = [
    ("LFC 1-bit in", "lfc", (1, 28, 28), input_quant_for("image", 1)),
    ("LFC 8-bit in", "lfc", (1, 28, 28), input_quant_for("image", 8)),
    ("CNV Q1.7 in", "cnv", (3, 32, 32), input_quant_for("image_signed", 8)),
]


def _model(arch, shape, quant, seed=0):
    torch.manual_seed(seed)
    spec = make_spec(arch, input_shape=shape, num_classes=10, input_quant=quant)
    m = build_model(spec)
    # realistic BN statistics: one training-mode pass with momentum 1
    m.train()
    for mod in m.modules():
        if hasattr(mod, "momentum"):
            mod.momentum = 1.0
    x = torch.randint(0, 256, (64,) + shape, dtype=torch.uint8)
    with torch.no_grad():
        m(x)
    return m.eval()


def _cached(m):
    """A copy of ``m`` whose cores return their +-1 weights computed once."""
    import copy
    c = copy.deepcopy(m).eval()
    for b in c.blocks:
        with torch.no_grad():
            w = b.core.binary_weight().detach()
        b.core.binary_weight = (lambda w=w: w)
    return c


def _rate(fn, n_images, min_time):
    """(images/s by process CPU time, images/s by wall time).  One thread each, so CPU
    time is the compute time even when other jobs share the machine."""
    fn()                                     # warm-up
    reps, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        reps += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            dc = max(time.process_time() - c0, 1e-9)
            return reps * n_images / dc, reps * n_images / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="shorter timing windows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    min_time = 0.5 if args.quick else 2.0
    rows = []
    for label, arch, shape, quant in NETS:
        m = _model(arch, shape, quant)
        ir = export_model(m, self_check=0)
        g = GoldenModel(ir)
        rng = np.random.default_rng(0)
        for batch in (1, 256):
            x = rng.integers(0, 256, size=(batch,) + shape, dtype=np.uint8)
            xt = torch.from_numpy(x)
            with torch.no_grad():
                want = m(xt).argmax(1).numpy()
            assert np.array_equal(g.predict(x), want), "golden disagrees with torch"

            def run_torch():
                with torch.no_grad():
                    m(xt)
            g_rate = _rate(lambda: g.predict(x), batch, min_time)
            t_rate = _rate(run_torch, batch, min_time)
            cached = _cached(m)

            def run_cached():
                with torch.no_grad():
                    cached(xt)
            with torch.no_grad():
                assert torch.equal(cached(xt), m(xt))
            c_rate = _rate(run_cached, batch, min_time)
            rows.append((label, batch, g_rate, t_rate, c_rate))
            print(f"  measured {label} batch {batch}", flush=True)
    print()
    print(f"torch {torch.__version__}, numpy {np.__version__}, {args.threads} thread(s), "
          f"CPU: {os.cpu_count()} cores visible")
    print("images/s by process CPU time (wall-clock in parentheses); ratios = golden/torch "
          "(> 1: golden faster)")
    print(f"{'network':14s} {'batch':>5s} {'golden':>20s} {'torch':>20s} "
          f"{'torch cached':>20s} {'g/torch':>8s} {'g/cached':>8s}")
    for label, batch, (gc, gw), (tc, tw), (cc, cw) in rows:
        print(f"{label:14s} {batch:5d} {gc:9.1f} ({gw:8.1f}) {tc:9.1f} ({tw:8.1f}) "
              f"{cc:9.1f} ({cw:8.1f}) {gc / tc:8.2f} {gc / cc:8.2f}")


if __name__ == "__main__":
    main()
