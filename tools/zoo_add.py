#!/usr/bin/env python3
"""Add (or refresh) a pretrained model in the zoo (bnnhw/zoo/): slim checkpoint, IR, card.

    python tools/zoo_add.py tfc-digits --checkpoint tfc.pt
    python tools/zoo_add.py cnv-cifar10 --checkpoint runs/cnv.pt

Slims the checkpoint (binary weights stored as their signs, int8; no optimizer
state), exports the IR from the slim checkpoint, evaluates the golden integer
model on the checkpoint's test split (the official test set, or the seeded
holdout stored in the checkpoint) against the torch model on every image,
and writes NAME.pt, NAME.bnn, NAME.md and the index entry.  Refuses a model
whose golden model disagrees with torch on a single image.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch

from bnnhw import zoo
from bnnhw.commands.common import dataset_split
from bnnhw.export import export_checkpoint
from bnnhw.golden import GoldenModel, disagreements
from bnnhw.train.checkpoint import (FORMAT, VERSION, load_checkpoint, load_state,
                                    model_from_checkpoint, state_path_for)
from bnnhw.train.layers import BinaryConv2d, BinaryLinear, sign


def slim(ck: dict) -> dict:
    """The checkpoint with every binary layer's latent weights replaced by their signs
    (int8 +-1): the same forward pass, a quarter of the size."""
    model = model_from_checkpoint(ck)
    binary = {f"{n}.weight" for n, m in model.named_modules()
              if isinstance(m, (BinaryLinear, BinaryConv2d))}
    sd = {k: (sign(v.float()).to(torch.int8) if k in binary else v.contiguous().clone())
          for k, v in ck["state_dict"].items()}
    meta = {**ck["meta"], "slim": "binary weights stored as int8 signs; no optimizer state"}
    return {"format": FORMAT, "version": VERSION, "spec": ck["spec"], "state_dict": sd,
            "dataset": ck["dataset"], "split": ck["split"], "meta": meta}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _same_ir(a, b) -> bool:
    ha, hb = a.header(), b.header()
    ha.pop("provenance"), hb.pop("provenance")
    aa, ab = a.arrays(), b.arrays()
    return ha == hb and aa.keys() == ab.keys() and all(np.array_equal(aa[k], ab[k]) for k in aa)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--dataset", default=None, help="dataset to evaluate on (default: the "
                    "checkpoint's own)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--machine", default=None, help="where it was trained (default: this CPU)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ck = load_checkpoint(a.checkpoint)
    small = slim(ck)
    f = zoo.files(a.name)
    tmp = str(f["pt"]) + ".tmp"
    torch.save(small, tmp)
    ir = export_checkpoint(tmp, self_check=0)
    if not _same_ir(ir, export_checkpoint(ck, self_check=0)):
        os.unlink(tmp)
        sys.exit("the slim checkpoint exports differently from the original: not added")
    ds_name = a.dataset or ck["dataset"]["name"]
    ds, x, y = dataset_split(ds_name, "test", small, a.data_dir)
    model = model_from_checkpoint(load_checkpoint(tmp))
    t0 = time.time()
    bad = disagreements(ir, model, x)
    acc = float((GoldenModel(ir).predict(x) == np.asarray(y)).mean())
    if bad:
        os.unlink(tmp)
        sys.exit(f"golden disagrees with torch on {bad} of {len(y)} images: not added")
    os.replace(tmp, f["pt"])
    ir.provenance["source"] = f"{a.name}.pt"
    ir.save(str(f["bnn"]))
    meta, cfg = ck["meta"], ck["meta"].get("config", {})
    hist = meta.get("history", [])
    state = state_path_for(a.checkpoint)
    if os.path.exists(state):  # the whole run's curve, not only up to the best epoch
        hist = load_state(state)["history"]
    official = ds.has_test_split
    n = len(y)
    spread = 100 * math.sqrt(acc * (1 - acc) / n)
    on = (f"{n:,}-image official test set" if official else
          f"{n:,}-image seeded holdout (seed {small['split'].get('seed')})")
    argv = cfg.get("extra", {}).get("argv") or []
    entry = {
        "arch": small["spec"]["arch"], "dataset": ds.name, "accuracy": acc, "count": n,
        "evaluated_on": on, "golden_disagreements": bad,
        "epochs": len(hist), "best_epoch": meta.get("epoch"),
        "best_val_accuracy": meta.get("best_val_accuracy"),
        "train_seconds": round(sum(h.get("seconds", 0) for h in hist)),
        "command": "bnnhw " + " ".join(argv) if argv else None,
        "commit": meta.get("bnnhw_commit"),
        "machine": a.machine or (f"{_cpu_name()}, {cfg.get('threads')} thread(s), device "
                                 f"{cfg.get('device', 'cpu')}, amp {cfg.get('amp', 'off')}"),
        "split_fingerprint": small["split"].get("fingerprint"),
        "recipe": (meta.get("recipe") or {}).get("name"),
    }
    idx = {"models": zoo.models()}
    idx["models"][a.name] = entry
    with open(zoo.INDEX, "w", encoding="utf-8") as fh:
        json.dump(idx, fh, indent=1, sort_keys=False)
        fh.write("\n")
    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}"
    curve = "\n".join(f"| {h['epoch']} | {h['lr']:.2e} | {h['loss']:.4f} | "
                      f"{pct(h.get('val_accuracy'))} | {h['seconds']:.0f} |" for h in hist)
    card = f"""# {a.name}

{small['spec']['arch'].upper()} trained with bnnhw on {ds.name}.

| | |
|---|---|
| golden integer model accuracy | **{100 * acc:.2f} %** (+-{spread:.2f} points, 1 sigma binomial) on the {on} |
| golden vs torch disagreements | {bad} of {n} |
| epochs (best) | {len(hist)} ({meta.get('epoch')}) |
| best validation accuracy | {meta.get('best_val_accuracy')} |
| training wall time | {entry['train_seconds']:,} s |
| command | `{entry['command']}` |
| bnnhw commit | {entry['commit']} |
| machine | {entry['machine']} |
| recipe | {entry['recipe']} |
| split fingerprint | {entry['split_fingerprint']} |
| files | `{a.name}.pt` (slim checkpoint: binary weights as int8 signs), `{a.name}.bnn` (IR) |

Re-create the card and files: `python tools/zoo_add.py {a.name} --checkpoint CHECKPOINT`.

## Training curve

| epoch | lr | loss | val accuracy % | seconds |
|---|---|---|---|---|
{curve}
"""
    f["md"].write_text(card, encoding="utf-8")
    print(json.dumps({a.name: entry}, indent=1))
    print(f"evaluation {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
