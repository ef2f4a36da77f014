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
    p.add_argument("--board", default="icebreaker", help="board to build for (default icebreaker)")


def run(args):
    from ..cli import make_parser
    from ..errors import BnnhwError

    from ..outputs import check_output_folder, claim_folder
    check_output_folder(args.output)
    with claim_folder(args.output, kind="demo"):
        return _run(args, args.output)


def _run(args, out):
    """The demo's steps in its held output folder."""
    from ..cli import make_parser
    from ..errors import BnnhwError

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
    build_dir = os.path.join(out, "build")
    b = step("build", f"build for {args.board} (fold, generate, synthesise, place, route, pack)",
             ["build", "--model", ir, "--board", args.board, "-o", build_dir])
    sm = step("sim", "simulate the built design in Verilator, bit-exact vs golden, with stalls",
              ["sim", "--from", build_dir, "--dataset", "digits", "--stall", "0.3"])
    if sm.get("mismatches") != 0:
        raise BnnhwError(f"hardware simulation mismatches the golden model on "
                         f"{sm.get('mismatches')} images", "see the waveform in the build folder")
    summary = {
        "output": out,
        "torch_accuracy": report["eval_torch"]["accuracy"],
        "golden_accuracy": g["accuracy"],
        "golden_disagreements": g["disagreements"],
        "test_images": g["count"],
        "sim_frames": sm.get("frames"),
        "sim_mismatches": sm.get("mismatches"),
        "sim_cycles_per_frame": sm.get("cycles_per_frame"),
        "bound_cycles_per_frame": sm.get("bound_cycles_per_frame"),
        "board": b.get("board"),
        "lut": b.get("lut"), "ff": b.get("ff"), "ebr": b.get("ebr"),
        "fmax_mhz": b.get("fmax_mhz"), "clock_mhz": b.get("clock_mhz"),
        "fps_compute": b.get("fps_compute"), "fps_link": b.get("fps_link"),
        "bitstream": b.get("bitstream"),
    }
    if not args.json:
        print("\nbnnhw demo report")
        for k, v in summary.items():
            print(f"  {k:22s} {v}")
    return summary
