"""``bnnhw train``: train a BNN and write a checkpoint."""
from __future__ import annotations

import sys

from ..errors import BnnhwError
from .common import add_threads_arg, check_output_path, log, set_threads

NAME = "train"
HELP = "train a binarized neural network (paper, Algorithm 1) and write a checkpoint"


def add_arguments(p):
    from ..train.models import ARCHS
    p.add_argument("--arch", required=True, choices=sorted(ARCHS),
                   help="topology: " + "; ".join(f"{k}: {v['doc']}" for k, v in sorted(ARCHS.items())))
    p.add_argument("--dataset", required=True, help="digits, mnist, mnist5k, fashion-mnist, "
                   "cifar10, svhn, or a path to an image folder / .npz")
    p.add_argument("--data-dir", default=None, help="dataset root (default $BNNHW_DATA or "
                   "~/.cache/bnnhw/data)")
    p.add_argument("-o", "--output", required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.005, help="initial learning rate")
    p.add_argument("--lr-final", type=float, default=None,
                   help="final learning rate of the exponential schedule (default lr/100)")
    p.add_argument("--lr-schedule", choices=["exp", "step", "const"], default="exp")
    p.add_argument("--lr-step-epochs", type=int, default=40,
                   help="step schedule: halve the learning rate every N epochs")
    p.add_argument("--optimizer", choices=["adam", "adamax", "shift-adamax"], default="adam")
    p.add_argument("--weight-lr-scale", choices=["none", "glorot"], default="none",
                   help="per-layer learning-rate scale of the binary weights: glorot is the "
                        "paper's 1/sqrt(1.5/(fan_in+fan_out)) (use with a small --lr, e.g. "
                        "0.003); none uses --lr for every parameter")
    p.add_argument("--loss", choices=["sqhinge", "ce"], default="sqhinge",
                   help="square hinge loss (paper) or cross-entropy")
    p.add_argument("--norm", choices=["bn", "shift"], default=None,
                   help="BatchNorm or the paper's shift-based BatchNorm")
    p.add_argument("--last-norm", choices=["scalar", "bn"], default=None,
                   help="normalisation of the class scores: one scale for all classes "
                        "(exact argmax in hardware) or per-class BatchNorm (paper)")
    p.add_argument("--pool-order", choices=["after_sign", "before_bn"], default=None,
                   help="max-pool after the sign (FINN) or before BatchNorm (paper)")
    p.add_argument("--binarize", choices=["det", "stochastic"], default=None,
                   help="activation binarization at train time")
    p.add_argument("--input-bits", type=int, choices=[1, 8], default=8,
                   help="first-layer input precision (8-bit integers or 1-bit thresholded)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier for hidden layers")
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--input-dropout", type=float, default=None)
    p.add_argument("--augment", choices=["auto", "on", "off"], default="auto",
                   help="random crop + flip (auto: on for colour images)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of the training source held out for validation")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="holdout used as the test split for datasets without one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=None,
                   help="train on only the first N images of the training split (quick runs)")
    p.add_argument("--precision", type=int, choices=[32, 64], default=32,
                   help="float precision of training (64 makes runs with different process "
                        "counts agree to rounding; inference and export are unaffected)")
    add_threads_arg(p)


def run(args):
    from ..train import data as D
    from ..train.loop import TrainConfig, train
    from ..train.models import SpecError, input_quant_for, make_spec

    set_threads(args.threads)
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        raise BnnhwError("--epochs and --batch-size must be >= 1 and --lr > 0",
                         "e.g. --epochs 10 --batch-size 100 --lr 0.005")
    if not 0 <= args.val_fraction < 1 or not 0 < args.test_fraction < 1:
        raise BnnhwError("--val-fraction must be in [0, 1) and --test-fraction in (0, 1)",
                         "e.g. --val-fraction 0.1 --test-fraction 0.1")
    check_output_path(args.output)
    ds = D.load_dataset(args.dataset, root=args.data_dir)
    try:
        spec = make_spec(args.arch, input_shape=ds.input_shape, num_classes=len(ds.classes),
                         input_quant=input_quant_for(ds.kind, args.input_bits), width=args.width,
                         norm=args.norm, last_norm=args.last_norm, pool_order=args.pool_order,
                         binarize=args.binarize, dropout=args.dropout,
                         input_dropout=args.input_dropout)
    except SpecError as e:
        raise BnnhwError(f"architecture {args.arch!r} does not fit dataset {ds.name!r} "
                         f"(input {ds.input_shape}): {e}",
                         "choose an architecture for this input size, e.g. tfc/sfc/lfc "
                         "for small images, cnv for 32x32") from None
    split = D.make_split(ds, seed=args.seed, val_fraction=args.val_fraction,
                         test_fraction=args.test_fraction)
    x_tr, y_tr = D.select(ds, "train", split)
    x_va, y_va = D.select(ds, "val", split)
    if args.subset is not None:
        if args.subset < 1:
            raise BnnhwError(f"--subset must be at least 1, not {args.subset}", "e.g. --subset 5000")
        x_tr, y_tr = x_tr[:args.subset], y_tr[:args.subset]
    augment = (ds.kind == "image_signed") if args.augment == "auto" else args.augment == "on"
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      lr_final=args.lr_final, lr_schedule=args.lr_schedule,
                      lr_step_epochs=args.lr_step_epochs, optimizer=args.optimizer,
                      weight_lr_scale=args.weight_lr_scale,
                      loss=args.loss, seed=args.seed, threads=args.threads, augment=augment,
                      progress=not args.json, precision=args.precision,
                      extra={"argv": list(sys.argv[1:]), "subset": args.subset})
    dataset_info = {"name": ds.name, "kind": ds.kind, "classes": list(ds.classes),
                    "input_shape": list(ds.input_shape)}
    log(f"training {args.arch} on {ds.name}: {len(y_tr)} train / {len(y_va)} val images, "
        f"input {ds.input_shape}, {cfg.epochs} epochs")
    res = train(spec, {"x_train": x_tr, "y_train": y_tr, "x_val": x_va, "y_val": y_va}, cfg,
                output=args.output, dataset_info=dataset_info, split_info=split, log=log)
    res.pop("model")
    res.pop("history")
    return res
