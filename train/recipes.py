"""Default training recipes: one table, per architecture and dataset family.

``bnnhw train --arch A --dataset D -o m.pt`` with no tuning flags trains with
the recipe of ``(A, family(D))``; any flag given on the command line overrides
that one value.  The recipe used (name, values, overridden keys) is printed
at the start of training and stored in the checkpoint's ``meta["recipe"]``.

Families: ``digits`` (scikit-learn 8x8 digits), ``mnist`` (28x28 grey:
mnist, mnist5k, fashion-mnist, grey image folders / .npz), ``cifar`` (32x32
colour: cifar10, svhn, colour image folders / .npz).  Each entry names the
command in ``tools/bench_train.py`` that measured it; README's recipe table
lists the measured accuracies.
"""
from __future__ import annotations

__all__ = ["GENERIC", "RECIPES", "KEYS", "family", "recipe_for", "resolve"]

# What every recipe sets (the values when nothing more specific applies).
GENERIC = {
    "epochs": 10, "batch_size": 100, "lr": 0.005, "lr_final": None, "lr_schedule": "exp",
    "lr_step_epochs": 40, "warmup_epochs": 0, "optimizer": "adam", "weight_lr_scale": "none",
    "loss": "sqhinge", "weight_decay": 0.0, "dropout": None, "input_dropout": None,
    "augment": "auto", "val_fraction": 0.1,
}
KEYS = tuple(GENERIC)

# The paper's recipe for MLPs: Adam with BinaryNet's per-layer Glorot scale on the
# binary weights, exponential decay over the run (LFC on MNIST: 98.63 % test).
_MLP_GLOROT = {"epochs": 60, "batch_size": 100, "weight_lr_scale": "glorot", "lr": 0.003,
               "lr_final": 3e-6, "val_fraction": 0.05}
# Short-budget CNN recipe: Adam with the paper's Glorot scale on the binary weights
# (CNV probes, 2 epochs: 45.7 % val against 32.5 % for plain Adam 0.002), a short
# linear warm-up, cosine decay to zero, random crop + flip, no dropout (conv layers
# never have it).
_CNN_COSINE = {"epochs": 100, "batch_size": 100, "lr": 0.003, "lr_schedule": "cosine",
               "warmup_epochs": 2, "weight_lr_scale": "glorot", "augment": "on",
               "val_fraction": 0.1}

RECIPES: dict[tuple[str, str], dict] = {
    # digits: 1,437 training images; the demo's recipe (91.7 % on the 180-image holdout)
    ("tfc", "digits"): {"epochs": 40, "batch_size": 50, "lr": 0.02, "dropout": 0.1,
                        "input_dropout": 0.0},
    ("sfc", "digits"): {"epochs": 40, "batch_size": 50, "lr": 0.02, "dropout": 0.1,
                        "input_dropout": 0.0},
    ("lfc", "digits"): {"epochs": 40, "batch_size": 50, "lr": 0.02, "dropout": 0.1,
                        "input_dropout": 0.0},
    ("tfc", "mnist"): _MLP_GLOROT,
    ("sfc", "mnist"): _MLP_GLOROT,
    ("lfc", "mnist"): _MLP_GLOROT,
    ("mlp4096", "mnist"): _MLP_GLOROT,
    ("cnv", "cifar"): _CNN_COSINE,
    ("vgg", "cifar"): _CNN_COSINE,
}


def family(dataset_name: str, kind: str, input_shape) -> str:
    """``digits``, ``mnist`` or ``cifar`` (see the module docstring), or ``other``."""
    if kind == "digits" or dataset_name == "digits":
        return "digits"
    c = int(input_shape[0])
    if c == 1:
        return "mnist"
    if c == 3:
        return "cifar"
    return "other"


def recipe_for(arch: str, fam: str) -> tuple[str, dict]:
    """The recipe's name and its full set of values (GENERIC filled in)."""
    entry = RECIPES.get((arch, fam))
    name = f"{arch}/{fam}" if entry is not None else "generic"
    return name, {**GENERIC, **(entry or {})}


def resolve(arch: str, fam: str, given: dict) -> dict:
    """Recipe values with the explicitly ``given`` ones (not None) on top.

    Returns ``{"name", "values", "overridden"}``; ``values`` holds every key of
    :data:`KEYS`."""
    name, values = recipe_for(arch, fam)
    over = {k: v for k, v in given.items() if k in values and v is not None}
    return {"name": name, "values": {**values, **over}, "overridden": sorted(over)}
