"""``bnnhw eval``: accuracy of a model on a dataset split (torch or golden engine)."""
from __future__ import annotations

from ..errors import BnnhwError
from .common import add_dataset_args, add_threads_arg, log, set_threads

NAME = "eval"
HELP = "evaluate a checkpoint or IR file on a dataset split"


def add_arguments(p):
    p.add_argument("--model", required=True, help="training checkpoint (.pt) or IR file")
    add_dataset_args(p)
    p.add_argument("--engine", choices=["torch", "golden"], default="torch",
                   help="torch: the float model of a checkpoint; golden: the bit-exact "
                        "integer model (also counts disagreements with the torch model)")
    p.add_argument("--reference", default=None,
                   help="checkpoint to compare the golden engine against, for an IR --model")
    p.add_argument("--count", type=int, default=None, help="use only the first N images")
    add_threads_arg(p)


def run(args):
    import numpy as np

    from ..train.checkpoint import is_checkpoint, load_checkpoint, model_from_checkpoint
    from ..train.loop import predict

    from .common import check_count
    set_threads(args.threads)
    check_count(args.count)
    if args.engine == "torch":
        if not is_checkpoint(args.model):
            raise BnnhwError(f"{args.model!r} is not a training checkpoint",
                             "the torch engine needs a .pt from `bnnhw train`; "
                             "use --engine golden for IR files")
        ck = load_checkpoint(args.model)
        model = model_from_checkpoint(ck, args.model)
        from .common import dataset_split
        ds, x, y = dataset_split(args.dataset, args.split, ck, args.data_dir)
        if args.count is not None:
            x, y = x[:args.count], y[:args.count]
        _check_shape(ds, ck["spec"]["input"], args)
        if len(y) == 0:
            raise BnnhwError(f"the {args.split} split of {ds.name} is empty",
                             "choose another --split")
        pred = predict(model, x)
        acc = float((pred == y).mean())
        log(f"{ds.name} {args.split}: accuracy {acc:.4f} on {len(y)} images (torch)")
        return {"accuracy": acc, "count": int(len(y)), "engine": "torch"}
    from ..golden import evaluate_golden
    return evaluate_golden(args)


def _check_shape(ds, inp, args):
    want = (inp["channels"], inp["height"], inp["width"])
    if tuple(ds.input_shape) != want:
        raise BnnhwError(f"dataset {ds.name!r} has inputs {tuple(ds.input_shape)} but the model "
                         f"expects {want}", "evaluate on the dataset the model was trained on")
