"""The ``--json`` error contract of every command, user errors and usage errors alike.

Under ``--json`` a failing command exits non-zero and the last line of its
stdout is one JSON object ``{"ok": false, "error": <text>, "hint": <text>}``,
without a traceback.  Every command of ``bnnhw.cli.COMMANDS`` gets a user
error (a missing file, an unknown name, an impossible value) and usage errors
(an unknown option, a missing required argument, a value of the wrong type).

Usage errors are argparse's: they exit 2 with the usage text on stderr and,
under ``--json``, the JSON error object on stdout.
"""
from __future__ import annotations

import json

import pytest

from bnnhw import cli

# one user error per command, each failing before any long work
USER_ERRORS = {
    "demo": ["demo", "--epochs", "0", "-o", "{tmp}/demo"],
    "train": ["train", "--arch", "tfc", "--dataset", "nosuch", "-o", "{tmp}/m.pt"],
    "eval": ["eval", "--model", "{tmp}/none.pt", "--dataset", "digits"],
    "data": ["data", "info", "--dataset", "nosuch"],
    "export": ["export", "--model", "{tmp}/none.pt"],
    "sim": ["sim", "--model", "{tmp}/none.bnn", "--dataset", "digits"],
    "build": ["build", "--model", "{tmp}/none.bnn", "--board", "icebreaker", "-o", "{tmp}/b"],
    "boards": ["boards", "--board", "nosuch"],
    "run": ["run", "--port", "{tmp}/no-port", "--model", "{tmp}/none.bnn",
            "--dataset", "digits"],
    "models": ["models", "nosuch"],
    "analyze": ["analyze", "--model", "{tmp}/none.bnn"],
}
# (id, argv, marks)
OTHER_ERRORS = [
    ("demo-output-is-a-file", ["demo", "-o", "{tmp}/afile"], []),
    # --arch is required unless --resume: checked by the command, not by argparse
    ("train-missing-arch", ["train", "--dataset", "digits", "-o", "{tmp}/m.pt"], []),
]
USAGE_ERRORS = [(f"{c}-unknown-option", [c, "--no-such-option"]) for c in cli.COMMANDS] + [
    ("analyze-missing-model", ["analyze"]),
    ("eval-missing-model", ["eval", "--dataset", "digits"]),
    ("export-missing-model", ["export"]),
    ("build-missing-board", ["build", "--model", "m.bnn", "-o", "b"]),
    ("run-missing-port", ["run", "--model", "m.bnn", "--dataset", "digits"]),
    ("data-missing-action", ["data"]),
    ("data-bad-choice", ["data", "nosuch"]),
    ("eval-count-not-int", ["eval", "--model", "m.pt", "--dataset", "digits", "--count", "x"]),
    ("sim-stall-not-float", ["sim", "--model", "m.bnn", "--dataset", "digits", "--stall", "x"]),
    ("demo-epochs-not-int", ["demo", "--epochs", "x"]),
    ("boards-baud-not-int", ["boards", "--baud", "x"]),
]


def _run_json(argv, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    argv.insert(1, "--json")
    try:
        rc = cli.main(argv)
    except SystemExit as e:          # argparse
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def _check_error_object(rc, out, err):
    assert rc not in (0, None), (rc, out, err)
    assert "Traceback" not in err
    lines = out.strip().splitlines()
    assert lines, f"no JSON on stdout; stderr: {err[-500:]}"
    obj = json.loads(lines[-1])
    assert obj["ok"] is False
    assert isinstance(obj["error"], str) and obj["error"]
    assert isinstance(obj.get("hint"), str)
    return obj


def test_every_command_is_covered():
    assert set(USER_ERRORS) == set(cli.COMMANDS)


@pytest.mark.parametrize("command", list(USER_ERRORS))
def test_user_error_is_one_json_object(command, tmp_path, capsys):
    rc, out, err = _run_json(USER_ERRORS[command], tmp_path, capsys)
    assert rc == 1
    _check_error_object(rc, out, err)


@pytest.mark.parametrize("argv", [pytest.param(a, id=i, marks=m) for i, a, m in OTHER_ERRORS])
def test_other_errors_are_json(argv, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    rc, out, err = _run_json(argv, tmp_path, capsys)
    _check_error_object(rc, out, err)


@pytest.mark.parametrize("argv", [pytest.param(a, id=i) for i, a in USAGE_ERRORS])
def test_usage_error_is_one_json_object(argv, tmp_path, capsys):
    rc, out, err = _run_json(argv, tmp_path, capsys)
    assert rc == 2
    _check_error_object(rc, out, err)


def test_unknown_command_under_json(capsys):
    """``bnnhw nosuch --json``: argparse rejects the command before any subparser."""
    try:
        rc = cli.main(["nosuch", "--json"])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    assert rc == 2 and "invalid choice" in err
