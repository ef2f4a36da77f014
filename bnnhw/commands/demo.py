"""``bnnhw demo``: the whole chain on a small embedded default.

Trains a small TFC-style BNN on scikit-learn's digits (8x8, offline), then
runs every stage that follows on it and prints the report.  Everything goes
into ``-o DIR`` (default ``./bnnhw-demo``).  Fails (exit 1) if any stage
fails or the bit-exact checks find a single disagreement."""
from __future__ import annotations

import os

from .common import log

NAME = "demo"
HELP = "run the whole chain end to end on a small embedded default (digits, TFC-sized)"


def add_arguments(p):
    p.add_argument("-o", "--output", default="bnnhw-demo", help="output directory")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)


def run(args):
    from ..cli import make_parser
    from ..errors import BnnhwError

    out = args.output
    os.makedirs(out, exist_ok=True)
    ckpt = os.path.join(out, "model.pt")
    ir = os.path.join(out, "model.bnn")
    parser = make_parser()
    report = {}

    def step(key, title, argv):
        log(f"\n== {title}: bnnhw {' '.join(argv)}")
        sub = parser.parse_args(argv)
        sub.json = args.json
        res = sub._run(sub) or {}
        report[key] = res
        return res

    step("train", "train", ["train", "--arch", "tfc", "--dataset", "digits", "--epochs",
                            str(args.epochs), "--batch-size", "50", "--lr", "0.02",
                            "--dropout", "0.1", "--input-dropout", "0", "--seed", str(args.seed),
                            "-o", ckpt])
    step("eval_torch", "evaluate (torch)", ["eval", "--model", ckpt, "--dataset", "digits"])
    step("export", "export (integer IR)", ["export", "--model", ckpt, "-o", ir])
    g = step("eval_golden", "evaluate (bit-exact golden model vs torch)",
             ["eval", "--model", ir, "--dataset", "digits", "--engine", "golden",
              "--reference", ckpt])
    if g.get("disagreements") != 0:
        raise BnnhwError(f"golden model disagrees with torch on {g.get('disagreements')} images",
                         "this is a bnnhw bug: please report it with the model file")
    summary = {
        "output": out,
        "torch_accuracy": report["eval_torch"]["accuracy"],
        "golden_accuracy": g["accuracy"],
        "golden_disagreements": g["disagreements"],
        "test_images": g["count"],
    }
    if not args.json:
        print("\nbnnhw demo report")
        for k, v in summary.items():
            print(f"  {k:22s} {v}")
    return summary
