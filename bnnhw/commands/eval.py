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
    return _evaluate_golden(args)


def _evaluate_golden(args) -> dict:
    """``--engine golden``: accuracy of the golden model, and its disagreements with the
    torch model (the checkpoint given as --model, or --reference for an IR file; ``None``
    when there is none)."""
    import numpy as np

    from ..export import disagreements, load_model_any
    from ..golden import GoldenModel
    from ..train.checkpoint import load_checkpoint, model_from_checkpoint
    from .common import model_images

    ir, ck = load_model_any(args.model)
    ref = getattr(args, "reference", None)
    if ck is None and ref:
        ck = load_checkpoint(ref)
        check_reference(ir, ck, ref)
    ds, x, y = model_images(ir, ck, args.dataset, args.split, getattr(args, "data_dir", None),
                            count=getattr(args, "count", None),
                            hint="evaluate on the dataset the model was trained on")
    pred = GoldenModel(ir).predict(x)
    acc = float((pred == np.asarray(y)).mean())
    dis = None
    if ck is not None:
        model = model_from_checkpoint(ck, ref or args.model)
        dis = disagreements(ir, model, x)
    log(f"{ds.name} {args.split}: accuracy {acc:.4f} on {len(y)} images (golden)"
        + ("" if dis is None else f", {dis} disagreements with the torch model"))
    return {"accuracy": acc, "count": int(len(y)), "engine": "golden", "disagreements": dis}


def check_reference(ir: NetworkIR, ck: dict, path: str) -> None:
    """Raise BnnhwError unless checkpoint ``ck`` (``--reference``) describes the network
    of ``ir``: input shape, number of classes and the output width of every conv/fc."""
    spec = ck.get("spec") if isinstance(ck, dict) else None
    try:
        inp = spec["input"]
        shape = (int(inp["channels"]), int(inp["height"]), int(inp["width"]))
        widths = [int(l["out_channels"] if l["type"] == "conv" else l["out_features"])
                  for l in spec["layers"] if l.get("type") in ("conv", "fc")]
        classes = int(spec["num_classes"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BnnhwError(f"--reference {path}: the checkpoint has no valid network spec",
                         "give the checkpoint the IR was exported from") from None
    q = ir.input
    mine = [l.mh for l in ir.layers if hasattr(l, "mh")]
    if shape != (q.channels, q.height, q.width) or classes != ir.num_classes or widths != mine:
        raise BnnhwError(f"--reference {path} is a different network than --model (input "
                         f"{shape}, {classes} classes, layer widths {widths} against "
                         f"{(q.channels, q.height, q.width)}, {ir.num_classes}, {mine})",
                         "give the checkpoint the IR was exported from")



def _check_shape(ds, inp, args):
    want = (inp["channels"], inp["height"], inp["width"])
    if tuple(ds.input_shape) != want:
        raise BnnhwError(f"dataset {ds.name!r} has inputs {tuple(ds.input_shape)} but the model "
                         f"expects {want}", "evaluate on the dataset the model was trained on")
