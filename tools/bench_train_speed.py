#!/usr/bin/env python3
"""Training speed: seconds per epoch of CNV and LFC, float32 vs mixed precision, 1 and 2 threads.

    python tools/bench_train_speed.py                 # CNV and LFC, off/bf16, 1 and 2 threads
    python tools/bench_train_speed.py --archs cnv --threads 1 --rounds 3

Each configuration runs `bnnhw.train.loop.train` itself (the real code path:
device placement, channels-last, autocast, augmentation, optimizer, weight
clipping, per-epoch state saving) on random data shaped like the real
dataset, in a fresh process, for 2 epochs of ``--steps`` batches of 100; the
second epoch's time per step is kept.  Configurations are interleaved over
``--rounds`` rounds and the median taken, so a busy machine slows every arm
alike.  s/epoch = steps of a full epoch (CNV: 405 on the 40,500-image CIFAR-10
training split; LFC: 570 on MNIST's 57,000) x s/step + validation (4,500 or
3,000 images, measured the same way).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

FULL = {"cnv": (405, 4500), "lfc": (570, 3000)}

CHILD = r"""
import json, sys, tempfile, time
import numpy as np, torch
from bnnhw.train.loop import TrainConfig, train, predict
from bnnhw.train.models import make_spec, input_quant_for
arch, amp, threads, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
shape, kind = ((3, 32, 32), "image_signed") if arch == "cnv" else ((1, 28, 28), "image")
spec = make_spec(arch, input_shape=shape, num_classes=10, input_quant=input_quant_for(kind))
rng = np.random.default_rng(0)
n = 100 * steps
data = {"x_train": rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n), "x_val": np.zeros((0, *shape), np.uint8),
        "y_val": np.zeros(0, np.int64)}
cfg = TrainConfig(epochs=2, batch_size=100, lr=0.002, threads=threads, amp=amp,
                  augment=arch == "cnv", progress=False)
with tempfile.TemporaryDirectory() as d:
    res = train(spec, data, cfg, output=d + "/m.pt", dataset_info={}, split_info={},
                log=lambda m: None)
step = res["history"][1]["seconds"] / steps
xv = rng.integers(0, 256, (1000, *shape), dtype=np.uint8)
predict(res["model"], xv[:100])
t = time.perf_counter(); predict(res["model"], xv); val = (time.perf_counter() - t) / 1000
print(json.dumps({"step": step, "val_per_image": val}))
"""


def run_one(arch, amp, threads, steps):
    r = subprocess.run([sys.executable, "-c", CHILD, arch, amp, str(threads), str(steps)],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{arch} {amp} {threads}: failed\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["cnv", "lfc"], choices=sorted(FULL))
    ap.add_argument("--amps", nargs="+", default=["off", "bf16"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    confs = [(ar, am, th) for ar in a.archs for th in a.threads for am in a.amps]
    got = {c: [] for c in confs}
    for _ in range(a.rounds):
        for c in confs:
            got[c].append(run_one(*c, a.steps))
    print("| arch | threads | amp | ms/step | val ms/image | s/epoch (full split) | "
          "speed-up vs float32 |")
    print("|---|---|---|---|---|---|---|")
    base = {}
    for ar, am, th in confs:
        step = statistics.median(g["step"] for g in got[(ar, am, th)])
        val = statistics.median(g["val_per_image"] for g in got[(ar, am, th)])
        steps, nval = FULL[ar]
        epoch = steps * step + nval * val
        if am == "off":
            base[(ar, th)] = epoch
        ratio = base.get((ar, th), epoch) / epoch
        print(f"| {ar} | {th} | {am} | {1000 * step:.0f} | {1000 * val:.2f} | {epoch:.0f} | "
              f"{ratio:.2f}x |")


if __name__ == "__main__":
    main()
