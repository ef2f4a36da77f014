"""``bnnhw models``: the pretrained models shipped with bnnhw (usable as ``--model NAME``)."""
from __future__ import annotations

NAME = "models"
HELP = "list the pretrained models shipped with bnnhw (use a name wherever --model is taken)"


def add_arguments(p):
    p.add_argument("name", nargs="?", default=None, help="show one model's card")


def run(args):
    from .. import zoo
    from ..errors import BnnhwError

    entries = zoo.models()
    if args.name is not None:
        e = entries.get(args.name)
        if e is None:
            raise BnnhwError(f"no pretrained model named {args.name!r}",
                             f"available: {', '.join(entries) or 'none'}")
        f = zoo.files(args.name)
        if not args.json:
            print(f["md"].read_text(encoding="utf-8"))
        return {"name": args.name, **e, "checkpoint": str(f["pt"]), "ir": str(f["bnn"]),
                "card": str(f["md"])}
    rows = [{"name": n, **e, "checkpoint": str(zoo.files(n)["pt"])} for n, e in entries.items()]
    if not args.json:
        head = f"{'name':<16} {'arch':<6} {'dataset':<9} {'golden accuracy':>16} {'on':<28}"
        print(head)
        print("-" * len(head))
        for r in rows:
            print(f"{r['name']:<16} {r['arch']:<6} {r['dataset']:<9} "
                  f"{100 * r['accuracy']:>15.2f}% {r['evaluated_on']:<28}")
        print("\nuse a name wherever --model is taken, e.g. "
              "`bnnhw build --model NAME --board ...`; `bnnhw models NAME` shows its card")
    return {"models": rows}
