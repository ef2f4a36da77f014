"""``bnnhw train``: train a BNN and write a checkpoint."""
from __future__ import annotations

import os
import sys

from ..errors import BnnhwError
from .common import add_threads_arg, check_output_path, log, set_threads

NAME = "train"
HELP = "train a binarized neural network (paper, Algorithm 1) and write a checkpoint"


def add_arguments(p):
    from ..train.models import ARCHS
    p.add_argument("--arch", default=None, choices=sorted(ARCHS),
                   help="topology (required unless --resume): " +
                        "; ".join(f"{k}: {v['doc']}" for k, v in sorted(ARCHS.items())))
    p.add_argument("--dataset", default=None, help="digits, mnist, mnist5k, fashion-mnist, "
                   "cifar10, svhn, or a path to an image folder / .npz (required unless --resume)")
    p.add_argument("--data-dir", default=None, help="dataset root (default $BNNHW_DATA or "
                   "~/.cache/bnnhw/data)")
    p.add_argument("-o", "--output", default=None,
                   help="checkpoint file to write (.pt; required unless --resume); the resumable "
                        "state of the last epoch goes beside it (m.pt -> m.state.pt)")
    p.add_argument("--resume", default=None, metavar="STATE",
                   help="continue an interrupted run after its last completed epoch: the "
                        "m.state.pt written beside the checkpoint, the checkpoint m.pt, or a "
                        "folder holding one *.state.pt; the run's recipe, data and split are "
                        "taken from it (only --threads, --device and -o may change)")
    g = p.add_argument_group("recipe (defaults: the table in bnnhw.train.recipes for the "
                             "architecture and dataset, printed at the start; a flag given "
                             "here overrides that one value)")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--lr", type=float, default=None, help="initial (peak) learning rate")
    g.add_argument("--lr-final", type=float, default=None,
                   help="final learning rate: exp schedule (default lr/100) or cosine floor "
                        "(default 0)")
    g.add_argument("--lr-schedule", choices=["exp", "cosine", "step", "const"], default=None)
    g.add_argument("--lr-step-epochs", type=int, default=None,
                   help="step schedule: halve the learning rate every N epochs")
    g.add_argument("--warmup-epochs", type=int, default=None,
                   help="linear learning-rate warm-up over the first N epochs")
    g.add_argument("--optimizer", choices=["adam", "adamax", "shift-adamax"], default=None)
    g.add_argument("--weight-lr-scale", choices=["none", "glorot"], default=None,
                   help="per-layer learning-rate scale of the binary weights: glorot is the "
                        "paper's 1/sqrt(1.5/(fan_in+fan_out)) (use with a small --lr, e.g. "
                        "0.003); none uses --lr for every parameter")
    g.add_argument("--loss", choices=["sqhinge", "ce"], default=None,
                   help="square hinge loss (paper) or cross-entropy")
    g.add_argument("--weight-decay", type=float, default=None)
    g.add_argument("--dropout", type=float, default=None)
    g.add_argument("--input-dropout", type=float, default=None)
    g.add_argument("--augment", choices=["auto", "on", "off"], default=None,
                   help="random crop + flip (auto: on for colour images)")
    g.add_argument("--val-fraction", type=float, default=None,
                   help="fraction of the training source held out for validation")
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
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="holdout used as the test split for datasets without one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=None,
                   help="train on only the first N images of the training split (quick runs)")
    p.add_argument("--precision", type=int, choices=[32, 64], default=32,
                   help="float precision of training (64 makes runs with different process "
                        "counts agree to rounding; inference and export are unaffected)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--amp", choices=["auto", "off", "bf16", "fp16"], default="auto",
                   help="mixed precision of the forward pass: auto = bf16 on CUDA (fp16 where "
                        "bf16 is missing) and on CPUs with bf16 units, else off; BatchNorm "
                        "statistics, weights and everything export reads stay float32")
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                   help="channels-last memory format (auto: on for conv nets)")
    add_threads_arg(p)


_RESUMABLE = {"threads", "device", "output", "json", "resume", "data_dir", "amp"}
# arguments whose default is not None (every other run-defining argument defaults to None)
_NON_NONE_DEFAULTS = {"input_bits": 8, "width": 1.0, "test_fraction": 0.1, "seed": 0,
                      "precision": 32, "channels_last": "auto"}


def _given(args) -> dict:
    from ..train.recipes import KEYS
    return {k: getattr(args, k) for k in KEYS}


def run(args):
    from ..train.loop import resolve_amp, resolve_device

    set_threads(args.threads)
    if args.resume is not None:
        return _resume(args)
    missing = [f"--{k}" for k in ("arch", "dataset") if getattr(args, k) is None]
    if args.output is None:
        missing.append("-o/--output")
    if missing:
        raise BnnhwError(f"bnnhw train needs {', '.join(missing)}",
                         "e.g. bnnhw train --arch tfc --dataset digits -o model.pt, or "
                         "--resume m.state.pt to continue a run")
    device = resolve_device(args.device)
    amp = resolve_amp(args.amp, device, args.precision)
    return _fresh(args, device, amp)


def _check_recipe(v: dict) -> None:
    if v["epochs"] < 1 or v["batch_size"] < 1 or v["lr"] <= 0:
        raise BnnhwError("--epochs and --batch-size must be >= 1 and --lr > 0",
                         "e.g. --epochs 10 --batch-size 100 --lr 0.005")
    if v["warmup_epochs"] < 0 or v["warmup_epochs"] >= v["epochs"]:
        raise BnnhwError(f"--warmup-epochs {v['warmup_epochs']} must be in [0, epochs)",
                         "e.g. --warmup-epochs 2")


def _fresh(args, device, amp):
    from ..train import data as D
    from ..train.loop import TrainConfig, train
    from ..train.models import SpecError, input_quant_for, make_spec
    from ..train.recipes import family, resolve

    if not 0 < args.test_fraction < 1:
        raise BnnhwError("--test-fraction must be in (0, 1)", "e.g. --test-fraction 0.1")
    check_output_path(args.output)
    ds = D.load_dataset(args.dataset, root=args.data_dir)
    recipe = resolve(args.arch, family(ds.name, ds.kind, ds.input_shape), _given(args))
    v = recipe["values"]
    _check_recipe(v)
    if not 0 <= v["val_fraction"] < 1:
        raise BnnhwError("--val-fraction must be in [0, 1)", "e.g. --val-fraction 0.1")
    try:
        spec = make_spec(args.arch, input_shape=ds.input_shape, num_classes=len(ds.classes),
                         input_quant=input_quant_for(ds.kind, args.input_bits), width=args.width,
                         norm=args.norm, last_norm=args.last_norm, pool_order=args.pool_order,
                         binarize=args.binarize, dropout=v["dropout"],
                         input_dropout=v["input_dropout"])
    except SpecError as e:
        raise BnnhwError(f"architecture {args.arch!r} does not fit dataset {ds.name!r} "
                         f"(input {ds.input_shape}): {e}",
                         "choose an architecture for this input size, e.g. tfc/sfc/lfc "
                         "for small images, cnv for 32x32") from None
    split = D.make_split(ds, seed=args.seed, val_fraction=v["val_fraction"],
                         test_fraction=args.test_fraction)
    if args.subset is not None and args.subset < 1:
        raise BnnhwError(f"--subset must be at least 1, not {args.subset}", "e.g. --subset 5000")
    augment = (ds.kind == "image_signed") if v["augment"] == "auto" else v["augment"] == "on"
    cl = None if args.channels_last == "auto" else args.channels_last == "on"
    cfg = TrainConfig(epochs=v["epochs"], batch_size=v["batch_size"], lr=v["lr"],
                      lr_final=v["lr_final"], lr_schedule=v["lr_schedule"],
                      lr_step_epochs=v["lr_step_epochs"], warmup_epochs=v["warmup_epochs"],
                      optimizer=v["optimizer"], weight_lr_scale=v["weight_lr_scale"],
                      loss=v["loss"], weight_decay=v["weight_decay"], seed=args.seed,
                      threads=args.threads, augment=augment, progress=not args.json,
                      precision=args.precision, device=device, amp=amp, channels_last=cl,
                      extra={"argv": list(sys.argv[1:]), "subset": args.subset,
                             "dataset_arg": args.dataset, "data_dir": args.data_dir,
                             "amp_request": args.amp})
    dataset_info = {"name": ds.name, "kind": ds.kind, "classes": list(ds.classes),
                    "input_shape": list(ds.input_shape)}
    _log_recipe(recipe)
    return _run(cfg, spec, ds, split, dataset_info, args.output, recipe, None, args)


def _log_recipe(recipe):
    v = recipe["values"]
    shown = ", ".join(f"{k}={v[k]}" + ("*" if k in recipe["overridden"] else "")
                      for k in sorted(v))
    log(f"recipe {recipe['name']} (* = set on the command line): {shown}")


def _run(cfg, spec, ds, split, dataset_info, output, recipe, state, args):
    from ..train import data as D
    from ..train.loop import train

    x_tr, y_tr = D.select(ds, "train", split)
    x_va, y_va = D.select(ds, "val", split)
    subset = cfg.extra.get("subset")
    if subset is not None:
        x_tr, y_tr = x_tr[:subset], y_tr[:subset]
    log(f"training {spec['arch']} on {ds.name}: {len(y_tr)} train / {len(y_va)} val images, "
        f"input {ds.input_shape}, {cfg.epochs} epochs, device {cfg.device}, "
        f"mixed precision {cfg.amp}, {cfg.threads} thread(s)")
    from ..train.checkpoint import state_path_for
    sp = state["path"] if state is not None else state_path_for(output)
    try:
        res = train(spec, {"x_train": x_tr, "y_train": y_tr, "x_val": x_va, "y_val": y_va}, cfg,
                    output=output, dataset_info=dataset_info, split_info=split, log=log,
                    resume=state, state_path=sp,
                    meta_extra={"recipe": recipe, "bnnhw_commit": _git_commit()})
    except KeyboardInterrupt:
        if os.path.exists(sp):
            log(f"interrupted; the last completed epoch is saved: continue with "
                f"`bnnhw train --resume {sp}`")
        raise
    res.pop("model")
    res.pop("history")
    return res


def _git_commit() -> str | None:
    """The bnnhw source commit (``+dirty`` with uncommitted changes), when run from a git
    checkout; None for an installed package."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip()[:12] + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _resume(args):
    from ..train import data as D
    from ..train.checkpoint import load_state
    from ..train.loop import TrainConfig, resolve_amp, resolve_device

    state = load_state(args.resume)
    changed = [f"--{k.replace('_', '-')}" for k, v in sorted(vars(args).items())
               if not k.startswith("_") and k not in _RESUMABLE | {"command"}
               and v != _NON_NONE_DEFAULTS.get(k)]
    if changed:
        raise BnnhwError(f"--resume continues the stored run; {', '.join(changed)} cannot "
                         "change it", "drop those flags (only --threads, --device, --amp, "
                         "--data-dir and -o may be given with --resume), or start a new run")
    try:
        cfg = TrainConfig(**state["config"])
    except TypeError as e:
        raise BnnhwError(f"{state['path']}: training state from another bnnhw version ({e})",
                         "start the run again") from None
    cfg.threads = args.threads
    cfg.progress = not args.json
    device = resolve_device(args.device)
    amp = resume_amp(args.amp, cfg, device)
    if amp != cfg.amp:
        log(f"mixed precision {cfg.amp} -> {amp} on this machine")
    cfg.amp = amp
    cfg.device = device
    done = int(state["epoch"])
    if done >= cfg.epochs:
        raise BnnhwError(f"{state['path']}: the run already completed all {cfg.epochs} epochs",
                         f"its best checkpoint is {state['output']}")
    ds_arg = cfg.extra.get("dataset_arg") or state["dataset"]["name"]
    ds = D.load_dataset(ds_arg, root=args.data_dir or cfg.extra.get("data_dir"))
    output = args.output or state["output"]
    check_output_path(output)
    recipe = state["meta"].get("recipe", {"name": "?", "values": {}, "overridden": []})
    log(f"resuming {state['path']} ({done}/{cfg.epochs} epochs done) -> {output}")
    return _run(cfg, state["spec"], ds, state["split"], state["dataset"], output, recipe,
                state, args)


def resume_amp(given: str, cfg, device: str) -> str:
    """Mixed precision for a resumed run on ``device``: an explicit ``--amp`` wins; with
    ``auto`` an explicit choice of the original run is kept, and a run that itself asked
    for ``auto`` (or moves between CPU and GPU) is resolved again for this machine: bf16
    on a CPU without bf16 units would be emulated, several times slower than float32."""
    from ..train.loop import resolve_amp
    if given != "auto":
        return resolve_amp(given, device, cfg.precision)
    moved = device.split(":")[0] != cfg.device.split(":")[0]
    if moved or _original_amp_request(cfg) == "auto":
        return resolve_amp("auto", device, cfg.precision)
    return cfg.amp


def _original_amp_request(cfg) -> str:
    """The --amp the stored run was started with (runs before it was recorded: from argv)."""
    if cfg.extra.get("amp_request"):
        return cfg.extra["amp_request"]
    argv = list(cfg.extra.get("argv") or [])
    for i, a in enumerate(argv):
        if a.startswith("--amp="):
            return a.split("=", 1)[1]
        if a == "--amp" and i + 1 < len(argv):
            return argv[i + 1]
    return "auto"
