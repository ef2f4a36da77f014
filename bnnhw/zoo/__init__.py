"""Pretrained models shipped with bnnhw (the model zoo).

Each model is three files in this folder, installed with the package:

- ``NAME.pt``: a slim training checkpoint (no optimizer state; binary weights
  stored as their signs, int8 +-1, which gives the identical forward pass and
  export).  It re-exports to ``NAME.bnn`` bit for bit (tested).
- ``NAME.bnn``: the exported integer IR.
- ``NAME.md``: the model card (command, commit, epochs, wall time, machine,
  holdout accuracy of the golden integer model, golden disagreements, split
  fingerprint), written by ``tools/zoo_add.py``.

``index.json`` lists them.  Every command that takes ``--model`` accepts a zoo
name: :func:`resolve` maps it to the checkpoint.  **A file path wins**: if a
file or folder of that name exists, it is used and the zoo is not consulted
(so ``--model ./cnv-cifar10`` always means the local file).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["ZOO_DIR", "models", "get", "resolve", "files"]

ZOO_DIR = Path(__file__).resolve().parent
INDEX = ZOO_DIR / "index.json"


def models() -> dict[str, dict]:
    """Name -> index entry (arch, dataset, accuracy, card fields), in index order."""
    if not INDEX.exists():
        return {}
    with open(INDEX, encoding="utf-8") as f:
        return json.load(f)["models"]


def files(name: str) -> dict[str, Path]:
    """Paths of a zoo model's checkpoint (``pt``), IR (``bnn``) and card (``md``)."""
    return {ext: ZOO_DIR / f"{name}.{ext}" for ext in ("pt", "bnn", "md")}


def get(name: str) -> dict | None:
    return models().get(name)


def resolve(model: str | None) -> str | None:
    """``model`` unchanged when it is an existing path (or None); the zoo checkpoint's path
    when it is a zoo name; otherwise unchanged (the command then reports the missing file,
    and its hint can list the zoo)."""
    if model is None or os.path.exists(model):
        return model
    if get(model) is not None:
        return str(files(model)["pt"])
    return model
