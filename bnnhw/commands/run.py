"""``bnnhw run``: classify test images on a board over its UART and check them."""
from __future__ import annotations

from ..errors import BnnhwError
from .common import add_dataset_args, log

NAME = "run"
HELP = "send test images to a board running a bnnhw bitstream and check its answers"


def add_arguments(p):
    p.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=None,
                   help="baud rate (default: the shell's default for the board's clock, "
                        "as printed by `bnnhw build`)")
    p.add_argument("--model", required=True,
                   help="the checkpoint or IR file the bitstream was built from")
    add_dataset_args(p)
    p.add_argument("--count", type=int, default=100, help="number of images (default 100)")


def run(args):
    import numpy as np

    from ..export import load_model_any
    from ..golden import GoldenModel
    from .common import dataset_split
    from ..boards.host import DEFAULT_BAUD, run_images

    from .common import check_count
    check_count(args.count)
    ir, ck = load_model_any(args.model)
    meta = {"split": ir.split, "dataset": ir.dataset} if ck is None else ck
    _, x, y = dataset_split(args.dataset, args.split, meta, args.data_dir)
    x, y = x[:args.count], y[:args.count]
    from ..dataflow import encode_images
    beats = encode_images(ir, x).reshape(len(x), -1)
    classes = np.array(run_images(args.port, args.baud or DEFAULT_BAUD, list(beats)))
    golden = GoldenModel(ir).predict(x)
    mism = int((classes != golden).sum())
    acc = float((classes == y).mean())
    log(f"{len(y)} images: accuracy {acc:.4f}, {mism} answers differ from the golden model")
    if mism:
        first = int(np.flatnonzero(classes != golden)[0])
        raise BnnhwError(f"the board disagrees with the golden model on {mism} of {len(y)} "
                         f"images (first: image {first}, board {classes[first]}, golden "
                         f"{golden[first]})", "check that the bitstream was built from this "
                         "model (`bnnhw build --model ...`)")
    return {"frames": int(len(y)), "mismatches": mism, "accuracy": acc}
