#!/usr/bin/env python3
"""Mixed precision A/B: validation accuracy of float32 and bf16 training at equal epochs.

    python tools/bench_amp_ab.py lfc --epochs 5 --seeds 0 1        # LFC on MNIST, 2 seeds/arm
    python tools/bench_amp_ab.py cnv --epochs 3 --seeds 0 --subset 10000

Runs the real CLI (`bnnhw train ... --amp off` and `--amp bf16`, otherwise the
default recipe with ``--epochs`` shortened) for every seed, interleaving the
arms, and prints each run's best validation accuracy, the per-arm mean and the
seed spread (max - min).  Mixed precision should not cost accuracy beyond
that spread.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

DATASET = {"lfc": "mnist", "tfc": "mnist", "cnv": "cifar10"}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("arch", choices=sorted(DATASET))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for seed in a.seeds:
            for amp in ("off", "bf16"):
                out = os.path.join(d, f"{amp}-{seed}.pt")
                argv = ["train", "--arch", a.arch, "--dataset", DATASET[a.arch], "--epochs",
                        str(a.epochs), "--seed", str(seed), "--amp", amp, "--threads",
                        str(a.threads), "-o", out, "--json"]
                if a.subset:
                    argv += ["--subset", str(a.subset)]
                r = subprocess.run([sys.executable, "-m", "bnnhw", *argv], capture_output=True,
                                   text=True)
                if r.returncode:
                    sys.exit(f"bnnhw {' '.join(argv)} failed:\n{r.stdout}\n{r.stderr[-2000:]}")
                res = json.loads(r.stdout.strip().splitlines()[-1])
                rows.append((amp, seed, res["best_val_accuracy"], res["seconds"]))
                print(f"{a.arch} amp={amp} seed={seed}: best val {res['best_val_accuracy']:.4f}, "
                      f"{res['seconds']:.0f} s", file=sys.stderr)
    print(f"\n{a.arch}, {a.epochs} epochs" + (f", {a.subset} training images" if a.subset else ""))
    print("| amp | seed | best val accuracy | train s |")
    print("|---|---|---|---|")
    for amp, seed, acc, s in rows:
        print(f"| {amp} | {seed} | {100 * acc:.2f} % | {s:.0f} |")
    for amp in ("off", "bf16"):
        accs = [acc for m, _, acc, _ in rows if m == amp]
        print(f"| {amp} mean | | {100 * sum(accs) / len(accs):.2f} % (spread "
              f"{100 * (max(accs) - min(accs)):.2f}) | |")


if __name__ == "__main__":
    main()
