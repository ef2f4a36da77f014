"""The ``bnnhw`` command line.

Each subcommand lives in its own module under :mod:`bnnhw.commands` and
exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> dict``.
``run`` returns the JSON result (printed as the last line of stdout under
``--json``, otherwise shown as ``key: value`` lines unless the command
printed its own report) and raises :class:`bnnhw.errors.BnnhwError` for user
mistakes.  Contract: docs/design.md, section 3b.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import traceback

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


class UsageError(Exception):
    """A command-line mistake found by argparse (unknown option, bad value ...)."""

    def __init__(self, message: str, usage: str, prog: str):
        super().__init__(message)
        self.message, self.usage, self.prog = message, usage, prog


class _Parser(argparse.ArgumentParser):
    """argparse raising :class:`UsageError` instead of printing and exiting, so that
    ``main`` can answer in JSON under ``--json`` (subparsers inherit the class)."""

    def error(self, message):
        raise UsageError(message, self.format_usage(), self.prog)


def make_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bnnhw", description="Binarized Neural Networks to FPGA "
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


def _usage_error(e: UsageError, want_json: bool) -> int:
    """argparse's complaint: usage text on stderr, and under ``--json`` the JSON error on
    stdout; exit code 2 (the usual code of a command-line mistake)."""
    print(e.usage.rstrip(), file=sys.stderr)
    print(f"{e.prog}: error: {e.message}", file=sys.stderr)
    if want_json:
        print(json.dumps({"ok": False, "error": f"{e.prog}: {e.message}",
                          "hint": f"see `{e.prog} --help`"}, sort_keys=True))
    return 2


def main(argv=None) -> int:
    from .outputs import exit_code, install_signal_handlers
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        return _usage_error(e, "--json" in argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from . import zoo
    for key in ("model", "reference"):  # a pretrained model's name works wherever a path does
        if isinstance(getattr(args, key, None), str):
            setattr(args, key, zoo.resolve(getattr(args, key)))
    old_term = signal.getsignal(signal.SIGTERM)
    install_signal_handlers()
    try:
        result = args._run(args)
    except BnnhwError as e:
        _emit(args, {"ok": False, "error": e.message, "hint": e.hint}, ok=False)
        return 1
    except KeyboardInterrupt as e:
        code = exit_code(e)
        what = "SIGINT (Ctrl-C)" if code == 130 else signal.Signals(code - 128).name
        _emit(args, {"ok": False, "error": f"interrupted by {what}",
                     "hint": "temporary files were removed and no half-written output was "
                             "kept; run the command again"}, ok=False)
        return code
    except MemoryError:
        _emit(args, {"ok": False, "error": "out of memory",
                     "hint": "use smaller inputs (see docs/reliability.md for bnnhw's "
                             "limits) or a machine with more memory"}, ok=False)
        return 1
    except Exception as e:  # noqa: BLE001 - a bug: traceback on stderr, JSON on stdout
        traceback.print_exc(file=sys.stderr)
        _emit(args, {"ok": False, "error": f"internal error: {type(e).__name__}: {e}",
                     "hint": "this is a bnnhw bug: please report it with the command line "
                             "and the traceback above"}, ok=False)
        return 1
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, old_term)
    if result is None:
        result = {}
    if args.json:
        _emit(args, {"ok": True, **result})
    return 0


def entry() -> None:  # console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
