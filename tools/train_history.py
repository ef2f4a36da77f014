#!/usr/bin/env python3
"""Print a training run's curve as a Markdown table, from its resumable state or checkpoint.

Usage::

    python tools/train_history.py runs/cnv-cifar10/cnv.state.pt > runs/cnv-cifar10/history.md

Columns: epoch, learning rate, mean training loss, validation accuracy, seconds
of that epoch (wall time of the machine it ran on; resumed runs may mix machines).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnhw.train.checkpoint import is_checkpoint, load_checkpoint, load_state  # noqa: E402


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit(__doc__)
    path = argv[0]
    if path.endswith(".state.pt"):
        st = load_state(path)
        hist, best, best_epoch = st["history"], st["best"], st["best_epoch"]
        epochs = st["config"]["epochs"]
    elif is_checkpoint(path):
        meta = load_checkpoint(path).get("meta") or {}
        hist = meta.get("history") or []
        best = meta.get("best_val_accuracy")
        best_epoch = meta.get("epoch")
        epochs = (meta.get("config") or {}).get("epochs", "?")
    else:
        sys.exit(f"{path}: not a bnnhw training state or checkpoint")
    print(f"Curve of {Path(path).name}: {len(hist)} of {epochs} epochs.\n")
    print("| epoch | lr | loss | val % | s |")
    print("|---|---|---|---|---|")
    for r in hist:
        va = "-" if r.get("val_accuracy") is None else f"{100 * r['val_accuracy']:.2f}"
        print(f"| {r['epoch']} | {r['lr']:.2e} | {r['loss']:.4f} | {va} | {r['seconds']:.0f} |")
    total = sum(r["seconds"] for r in hist)
    if best is not None and best >= 0:
        print(f"\nbest validation {100 * best:.2f} % at epoch {best_epoch}; "
              f"training time {total / 3600:.2f} h")


if __name__ == "__main__":
    main()
