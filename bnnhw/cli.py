"""The ``bnnhw`` command line.

Each subcommand lives in its own module under :mod:`bnnhw.commands` and
exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> dict``.
``run`` returns the JSON result (printed as the last line of stdout under
``--json``, otherwise shown as ``key: value`` lines unless the command
printed its own report) and raises :class:`bnnhw.errors.BnnhwError` for user
mistakes.  Contract: ../shared/DESIGN.md section 3b.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from .errors import BnnhwError

# Order = order in --help.  Adding a command: one module + one line here.
COMMANDS = ["demo", "train", "eval", "data", "export", "sim", "build", "boards", "run", "models",
            "analyze"]


def _load(name):
    try:
        return importlib.import_module(f"bnnhw.commands.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"bnnhw.commands.{name}":
            return None
        raise


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bnnhw", description="Binarized Neural Networks to FPGA "
                                "dataflow accelerators, with open tools only.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        if mod is None:
            continue
        sp = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        sp.add_argument("--json", action="store_true",
                        help="print one JSON object on the last line of stdout")
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run)
    return p


def _emit(args, obj, ok=True):
    if getattr(args, "json", False):
        print(json.dumps(obj, sort_keys=True))
    elif not ok:
        print(f"error: {obj['error']}", file=sys.stderr)
        if obj.get("hint"):
            print(f"hint: {obj['hint']}", file=sys.stderr)


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from . import zoo
    for key in ("model", "reference"):  # a pretrained model's name works wherever a path does
        if isinstance(getattr(args, key, None), str):
            setattr(args, key, zoo.resolve(getattr(args, key)))
    try:
        result = args._run(args)
    except BnnhwError as e:
        _emit(args, {"ok": False, "error": e.message, "hint": e.hint}, ok=False)
        return 1
    except KeyboardInterrupt:
        _emit(args, {"ok": False, "error": "interrupted", "hint": ""}, ok=False)
        return 130
    if result is None:
        result = {}
    if args.json:
        _emit(args, {"ok": True, **result})
    return 0


def entry() -> None:  # console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
