#!/usr/bin/env python3
"""Training benchmarks (not tests): wall time and accuracy of reference runs.

    python tools/bench_train.py tfc            # TFC on digits, ~1 min
    python tools/bench_train.py tfc-mnist      # TFC on full MNIST, 60 epochs
    python tools/bench_train.py cnv [--epochs 2 --subset 5000]
    python tools/bench_train.py lfc            # LFC on full MNIST, 60 epochs (about an hour on 1 core)

Each run calls the real CLI (`bnnhw train`, then `bnnhw eval --json`) and
prints one table row: command, epochs, wall seconds, seconds/epoch (scaled
to the full training split for --subset runs), validation and test accuracy.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

# Each run is the default recipe of bnnhw.train.recipes for its architecture and
# dataset (no tuning flags): tfc/digits is the demo's recipe; lfc/mnist the paper's
# Glorot-scaled Adam at 0.003 with exponential decay over 60 epochs; cnv/cifar Adam
# with the Glorot scale, 2 warm-up epochs and cosine decay over 100 epochs (here
# shortened to a 2-epoch, 5,000-image speed check unless --epochs/--subset say otherwise).
RUNS = {
    "tfc": dict(arch="tfc", dataset="digits", args=[]),
    "tfc-mnist": dict(arch="tfc", dataset="mnist", args=[]),
    "lfc": dict(arch="lfc", dataset="mnist", args=[]),
    "cnv": dict(arch="cnv", dataset="cifar10", args=[]),
}


def bnnhw(*argv):
    r = subprocess.run([sys.executable, "-m", "bnnhw", *argv, "--json"], capture_output=True,
                       text=True)
    if r.returncode:
        sys.exit(f"bnnhw {' '.join(argv)} failed:\n{r.stdout}\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", choices=sorted(RUNS))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-o", "--output", default=None)
    a = ap.parse_args()
    spec = RUNS[a.run]
    extra = list(spec["args"])
    if a.epochs is not None:
        extra += ["--epochs", str(a.epochs)]
    elif a.run == "cnv":
        extra += ["--epochs", "2"]
    subset = a.subset if a.subset is not None else (5000 if a.run == "cnv" and a.epochs is None
                                                     else None)
    if subset is not None:
        extra += ["--subset", str(subset)]
    out = a.output or f"bench-{a.run}.pt"
    argv = ["train", "--arch", spec["arch"], "--dataset", spec["dataset"], *extra,
            "--threads", str(a.threads), "-o", out]
    t0 = time.time()
    res = bnnhw(*argv)
    wall = time.time() - t0
    ev = bnnhw("eval", "--model", out, "--dataset", spec["dataset"], "--threads", str(a.threads))
    from bnnhw.train import data as D
    from bnnhw.train.checkpoint import load_checkpoint
    ck = load_checkpoint(out)
    hist = ck["meta"]["history"]
    n_train = ck["split"]["sizes"]["train"]
    used = min(n_train, subset) if subset else n_train
    per_epoch = sum(h["seconds"] for h in hist) / len(hist)
    print(f"\n| run | command | epochs | wall s | s/epoch | s/epoch (full split of {n_train}) "
          f"| best val acc | test acc |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {a.run} | bnnhw {' '.join(argv)} | {res['epochs']} | {wall:.0f} | {per_epoch:.1f} | "
          f"{per_epoch * n_train / used:.0f} | {res['best_val_accuracy']} | {ev['accuracy']:.4f} "
          f"(n={ev['count']}) |")


if __name__ == "__main__":
    main()
