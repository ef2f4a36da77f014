"""``bnnhw analyze``: filter repetition of a binary network (the paper's section 3)."""
from __future__ import annotations

NAME = "analyze"
HELP = ("count repeated binary filters: unique KxK kernels per input channel (with and "
        "without complements), duplicate/complement filters, dead channels")


def add_arguments(p):
    p.add_argument("--model", required=True,
                   help="checkpoint (.pt), IR file (.bnn) or a pretrained model name")
    p.add_argument("--random", type=int, default=None, metavar="SEED",
                   help="also analyse the same network with uniformly random weight bits "
                        "(the contrast; seeded)")


def run(args):
    from ..analyze import analyze, format_table, randomized
    from ..export import load_model_any

    ir, _ = load_model_any(args.model)
    res = analyze(ir)
    out = {"model": args.model, **res}
    if not args.json:
        print(format_table(res, f"filter repetition of {args.model}"))
    if args.random is not None:
        rnd = analyze(randomized(ir, args.random))
        out["random"] = rnd
        if not args.json:
            print()
            print(format_table(rnd, f"the same network with random weights (seed {args.random})"))
    return out
