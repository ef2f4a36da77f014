"""Argument helpers shared by subcommands (datasets, models, threads)."""
from __future__ import annotations

import os
import sys

from ..errors import BnnhwError


def add_dataset_args(p, *, required=True, split_default="test"):
    p.add_argument("--dataset", required=required,
                   help="digits, mnist, mnist5k, fashion-mnist, cifar10, svhn, or a path "
                        "to an image folder / .npz")
    p.add_argument("--split", choices=["train", "val", "test"], default=split_default,
                   help=f"which split to use (default {split_default}; datasets without an "
                        "official test split use the seeded holdout stored in the checkpoint)")
    p.add_argument("--data-dir", default=None,
                   help="dataset root (default $BNNHW_DATA or ~/.cache/bnnhw/data)")


def add_threads_arg(p):
    p.add_argument("--threads", type=int, default=1,
                   help="torch/numpy threads (default 1: two threads on a busy 2-core "
                        "machine can be far slower than one)")


def set_threads(n: int) -> None:
    import torch
    if n < 1:
        raise BnnhwError(f"--threads must be at least 1, not {n}", "use --threads 1")
    torch.set_num_threads(n)


def log(msg: str) -> None:
    """Human-readable progress goes to stderr; stdout is kept for results/--json."""
    print(msg, file=sys.stderr, flush=True)


def check_output_path(path: str, option: str = "-o") -> str:
    """Check an output file's path before any long work starts: not a folder, its folder
    creatable (created if missing) and writable (:func:`bnnhw.outputs.check_output_file`)."""
    from ..outputs import check_output_file
    if os.path.isdir(path):
        raise BnnhwError(f"output {path!r} is a directory",
                         f"give a file name, e.g. {option} model.pt")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise BnnhwError(f"cannot create output directory {d!r}: {e.strerror}",
                             f"choose a writable location for {option}") from None
    return check_output_file(path, option)


def check_count(count, option: str = "--count"):
    """``--count N`` of every command: None (all images) or at least 1."""
    if count is not None and count < 1:
        raise BnnhwError(f"{option} must be at least 1, not {count}", f"e.g. {option} 100, "
                         "or leave it out for every image of the split")
    return count


def dataset_split(ds_name: str, split: str, ck: dict | None, data_dir=None):
    """Load (x, y) of ``split`` of a named dataset, using the checkpoint's split info
    (the seeded holdout it was trained with) when the dataset is the one it was trained on."""
    from ..train import data as D
    ds = D.load_dataset(ds_name, root=data_dir)
    info = None
    if ck is not None and ck.get("dataset", {}).get("name") == ds.name:
        info = ck.get("split")
    if info is None:
        info = D.make_split(ds)
    x, y = D.select(ds, split, info)
    return ds, x, y


def model_images(ir, ck, dataset: str, split: str, data_dir=None, *, count=None,
                 hint: str = "use the dataset the model was trained on"):
    """``(ds, x, y)``: the images of ``split`` of ``dataset`` for the network ``ir``
    (``ck``: its checkpoint, or None for an IR file).  The seeded holdout stored in the
    checkpoint (else in the IR) is used when the dataset is the one the model was trained
    on; ``count`` keeps the first N images.  A dataset whose images do not have the
    model's input shape, or an empty split, is a BnnhwError (``hint``: what to do about
    the shape).  The one image loader of eval, sim and build."""
    split_ck = ck if ck is not None else {"dataset": ir.dataset, "split": ir.split or None}
    if split_ck.get("split") is None:
        split_ck = None
    ds, x, y = dataset_split(dataset, split, split_ck, data_dir)
    q = ir.input
    if tuple(ds.input_shape) != (q.channels, q.height, q.width):
        raise BnnhwError(f"dataset {ds.name!r} has inputs {tuple(ds.input_shape)} but the model "
                         f"expects {(q.channels, q.height, q.width)}", hint)
    if count is not None:
        x, y = x[:count], y[:count]
    if len(y) == 0:
        raise BnnhwError(f"the {split} split of {ds.name} is empty", "choose another --split")
    return ds, x, y
