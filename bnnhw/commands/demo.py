"""``bnnhw demo``: the whole chain on a small embedded default.

Trains a small TFC-style BNN on scikit-learn's digits (8x8, offline), then
runs every stage that follows on it and prints the report.  Everything goes
into ``-o DIR`` (default ``./bnnhw-demo``)."""
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
    from ..cli import main as cli_main
    from ..errors import BnnhwError

    out = args.output
    os.makedirs(out, exist_ok=True)
    ckpt = os.path.join(out, "model.pt")
    steps = []

    def step(title, argv):
        log(f"\n== {title}: bnnhw {' '.join(argv)}")
        rc = cli_main(argv)
        if rc != 0:
            raise BnnhwError(f"demo step '{title}' failed (exit {rc})", "see the message above")
        steps.append(title)

    step("train", ["train", "--arch", "tfc", "--dataset", "digits", "--epochs",
                   str(args.epochs), "--batch-size", "50", "--lr", "0.02", "--dropout", "0.1",
                   "--input-dropout", "0", "--seed", str(args.seed), "-o", ckpt])
    step("evaluate (torch)", ["eval", "--model", ckpt, "--dataset", "digits"])
    ir = os.path.join(out, "model.bnn")
    step("export (integer IR)", ["export", "--model", ckpt, "-o", ir])
    step("evaluate (bit-exact golden model vs torch)",
         ["eval", "--model", ir, "--dataset", "digits", "--engine", "golden",
          "--reference", ckpt])
    return {"output": out, "steps": steps}
