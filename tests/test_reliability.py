"""Issue 15: every mistake gets the JSON error, bounded inputs, clean signals, safe files.

Each test states the command of the issue's list; the build-folder guarantees are in
``tests/build/test_output_folder.py`` and the fuzz tests in ``tests/test_fuzz.py``."""
from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import torch

from bnnhw.cli import main
from bnnhw.errors import BnnhwError, DatasetError, ModelFileError

PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _no_nan(text):
    def bad(c):
        raise AssertionError(f"not valid JSON: {c}")
    return json.loads(text, parse_constant=bad)


def _fail(capsys, argv, code=1):
    rc = main([*map(str, argv), "--json"])
    out, err = capsys.readouterr()
    assert rc == code, (out, err)
    res = _no_nan(out.strip().splitlines()[-1])
    assert res["ok"] is False and res["error"] and "hint" in res
    assert "Traceback" not in err
    return res


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 4x4-input checkpoint (4 classes), an IR of another network, and a matching .npz."""
    sys.path.insert(0, os.path.dirname(__file__))
    from fuzz_driver import _tiny_checkpoint
    from tests.system.netgen import random_ir
    d = tmp_path_factory.mktemp("tiny")
    _tiny_checkpoint(d / "m.pt")
    random_ir(input=(4, 4, 1, 8), layers=[("fc", 16), ("fc", 4)], seed=2).save(
        str(d / "other.bnn"))
    rng = np.random.default_rng(0)
    np.savez(d / "d.npz", x_train=rng.integers(0, 256, (40, 1, 4, 4), dtype=np.uint8),
             y_train=np.arange(40) % 4, x_test=rng.integers(0, 256, (12, 1, 4, 4),
                                                            dtype=np.uint8),
             y_test=np.arange(12) % 4)
    return d


# ---------------------------------------------------------------- argparse, --count

def test_argparse_errors_give_the_json_error_under_json(capsys):
    res = _fail(capsys, ["eval", "--model", "m.pt", "--dataset", "digits", "--count", "x"],
                code=2)
    assert "--count: invalid int value: 'x'" in res["error"] and "--help" in res["hint"]
    res = _fail(capsys, ["build", "--board", "icebreaker"], code=2)    # -o missing
    assert "required" in res["error"] and "-o/--output" in res["error"]
    res = _fail(capsys, ["nosuchcommand"], code=2)
    assert "invalid choice" in res["error"]
    # without --json: argparse's usage text, no JSON
    assert main(["eval", "--count", "x"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage: bnnhw eval" in err and "invalid int value" in err


@pytest.mark.parametrize("count", [0, -5])
def test_count_below_one_is_an_error_in_every_command(tiny, capsys, count):
    for argv in (["eval", "--model", tiny / "m.pt", "--dataset", tiny / "d.npz"],
                 ["eval", "--model", tiny / "m.pt", "--dataset", tiny / "d.npz", "--engine",
                  "golden"],
                 ["sim", "--model", tiny / "m.pt", "--dataset", tiny / "d.npz"],
                 ["run", "--model", tiny / "m.pt", "--dataset", tiny / "d.npz", "--port",
                  "/dev/null"]):
        res = _fail(capsys, [*argv, "--count", count])
        assert res["error"] == f"--count must be at least 1, not {count}"


def test_eval_count_one_is_valid_json(tiny, capsys):
    assert main(["eval", "--model", str(tiny / "m.pt"), "--dataset", str(tiny / "d.npz"),
                 "--count", "1", "--json"]) == 0
    res = _no_nan(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["ok"] is True and res["count"] == 1 and res["accuracy"] in (0.0, 1.0)


# ---------------------------------------------------------------- output paths

def test_train_output_that_cannot_be_written_fails_before_training(capsys):
    t0 = time.monotonic()
    res = _fail(capsys, ["train", "--arch", "tfc", "--dataset", "digits", "--epochs", "1",
                         "-o", "/proc/self/model.pt"])
    assert "cannot be written" in res["error"] and "writable location" in res["hint"]
    assert time.monotonic() - t0 < 20


def test_sim_save_folding_checked_first(tiny, tmp_path, capsys):
    res = _fail(capsys, ["sim", "--model", tiny / "m.pt", "--dataset", tiny / "d.npz",
                         "--save-folding", "/proc/self/f.json"])
    assert "--save-folding '/proc/self/f.json' cannot be written" in res["error"]
    # a missing folder is created (as for train -o), no traceback
    from bnnhw.commands.common import check_output_path
    p = tmp_path / "new" / "f.json"
    assert check_output_path(str(p), "--save-folding") == str(p)
    assert p.parent.is_dir() and not p.exists()


def test_sim_work_dir_of_user_files_is_refused(tiny, tmp_path, capsys):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "notes.txt").write_text("mine")
    res = _fail(capsys, ["sim", "--model", tiny / "m.pt", "--dataset", tiny / "d.npz",
                         "--work-dir", tmp_path / "w"])
    assert "already holds files that bnnhw did not write (notes.txt)" in res["error"]
    assert (tmp_path / "w" / "notes.txt").read_text() == "mine"


def test_checkpoint_and_ir_files_get_the_usual_permissions(tiny, tmp_path, capsys):
    umask = os.umask(0o022)
    try:
        assert main(["export", "--model", str(tiny / "m.pt"), "-o", str(tmp_path / "m.bnn"),
                     "--json"]) == 0
        sys.path.insert(0, os.path.dirname(__file__))
        from fuzz_driver import _tiny_checkpoint
        _tiny_checkpoint(tmp_path / "c.pt")
    finally:
        os.umask(umask)
    capsys.readouterr()
    assert (tmp_path / "m.bnn").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644
    assert sorted(os.listdir(tmp_path)) == ["c.pt", "m.bnn"]     # no temporary left


# ---------------------------------------------------------------- model files

def _spec_variant(tiny, tmp_path, change):
    ck = torch.load(tiny / "m.pt", weights_only=True)
    change(ck)
    p = tmp_path / "bad.pt"
    torch.save(ck, p)
    return p


@pytest.mark.parametrize("change, expect", [
    (lambda ck: ck["spec"].__setitem__("input", []), "spec input is list"),
    (lambda ck: ck["state_dict"].__setitem__(next(iter(ck["state_dict"])), 3),
     "not tensors"),
    (lambda ck: ck["spec"]["layers"][0].__setitem__("out_features", 10**9),
     "out_features is 1000000000; expected an integer in 1..65,536"),
    (lambda ck: ck["spec"]["layers"].insert(0, {"type": "fc", "out_features": 60000}),
     "weights"),
    (lambda ck: ck["spec"]["input"].__setitem__("height", -3),
     "input height is -3"),
])
def test_malformed_checkpoint_specs_are_model_file_errors(tiny, tmp_path, capsys, change,
                                                          expect):
    p = _spec_variant(tiny, tmp_path, change)
    res = _fail(capsys, ["export", "--model", p, "-o", tmp_path / "x.bnn"])
    assert expect in res["error"], res
    assert not (tmp_path / "x.bnn").exists()


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def test_hostile_and_random_checkpoints_are_described_correctly(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"x": _Evil()}, evil)
    res = _fail(capsys, ["export", "--model", evil])
    assert "asks to run code" in res["error"] and "posix.system" in res["error"]
    assert "weights_only" not in res["error"] + res["hint"]
    rnd = tmp_path / "random.pt"
    rnd.write_bytes(b"\x80" + np.random.default_rng(1).bytes(4000))
    res = _fail(capsys, ["export", "--model", rnd])
    assert "not a readable checkpoint" in res["error"]
    assert "run code" not in res["error"] and "weights_only" not in res["error"]


def test_golden_reference_of_another_network_is_refused(tiny, capsys):
    res = _fail(capsys, ["eval", "--model", tiny / "other.bnn", "--engine", "golden",
                         "--reference", tiny / "m.pt", "--dataset", tiny / "d.npz"])
    assert "is a different network than --model" in res["error"]
    assert "[8, 4] against" in res["error"] and "[16, 4]" in res["error"]


# ---------------------------------------------------------------- datasets

def test_huge_label_without_classes_is_refused_at_once(tmp_path):
    from bnnhw.train import data as D
    p = tmp_path / "d.npz"
    np.savez(p, x_train=np.zeros((3, 1, 4, 4), np.uint8), y_train=np.array([0, 1, 10**12]))
    t0 = time.monotonic()
    with pytest.raises(DatasetError, match=r"labels range 0\.\.1000000000000, expected "
                                           r"0\.\.65535 \(bnnhw takes at most 65,536"):
        D.load_dataset(str(p))
    assert time.monotonic() - t0 < 5


def test_gzip_bomb_expands_no_further_than_the_limit(tmp_path, monkeypatch):
    import gzip

    from bnnhw import limits
    from bnnhw.train import data as D
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(b"\0" * (4 << 20)))          # 4 MiB of zeros, ~4 KB
    monkeypatch.setattr(limits, "MAX_DATASET_BYTES", 1 << 20)
    with pytest.raises(DatasetError, match="expands to more than bnnhw's limit of 1,048,576"):
        D.read_idx(p)


def test_npz_with_a_bad_crc_is_a_dataset_error(tmp_path, capsys):
    buf = io.BytesIO()
    np.savez(buf, x_train=np.arange(64, dtype=np.uint8).reshape(4, 1, 4, 4),
             y_train=np.arange(4))
    raw = bytearray(buf.getvalue())
    i = raw.index(bytes(range(20, 36)))
    raw[i] ^= 0xFF                                   # pixel bytes: CRC now wrong
    p = tmp_path / "crc.npz"
    p.write_bytes(bytes(raw))
    res = _fail(capsys, ["data", "info", "--dataset", p])
    assert "not a readable .npz file" in res["error"] and "CRC" in res["error"]


def test_npz_header_claiming_a_huge_array_allocates_nothing(tmp_path):
    from bnnhw.limits import read_npz
    import zipfile
    member = io.BytesIO()         # a valid .npy header claiming 10 GB, then 4 bytes
    np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (9999999999,)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:             # correct CRCs
        z.writestr("x_train.npy", member.getvalue() + b"\0\0\0\0")
    raw = buf.getvalue()
    # refused from the header, before any allocation
    with pytest.raises(BnnhwError, match=r"header claims \(9999999999,\) uint8 "
                                         r"\(9,999,999,999 bytes\), above bnnhw's limit"):
        read_npz(io.BytesIO(raw), where="d.npz")


def _png_header_only(w, h):
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [5000, 30000])
def test_image_larger_than_4096_pixels_is_refused_from_its_header(tmp_path, capsys, side):
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        (tmp_path / "imgs" / c / "0.png").write_bytes(_png_header_only(side, side))
    res = _fail(capsys, ["data", "info", "--dataset", tmp_path / "imgs"])
    assert "4096x4096" in res["error"] and "resize the images" in res["hint"]
    if side == 5000:                             # below Pillow's own bomb limit
        assert f"is {side}x{side} pixels" in res["error"]


# ---------------------------------------------------------------- build, host driver

def test_os_error_in_the_design_stage_is_not_called_a_bug(tmp_path, capsys, monkeypatch):
    from bnnhw import dataflow
    from tests.system.netgen import random_ir
    p = tmp_path / "t.bnn"
    random_ir(input=(4, 4, 1, 1), layers=[("fc", 8), ("fc", 10)]).save(str(p))

    def full(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "b" / "model.bnn"))
    monkeypatch.setattr(dataflow, "write_build_dir", full)
    res = _fail(capsys, ["build", "--model", p, "--board", "icebreaker", "-o", tmp_path / "b",
                         "--dry-run"])
    assert "build stage design failed: No space left on device" in res["error"]
    assert "bug" not in res["hint"] and "disk space" in res["hint"]


class _InfoLink:
    """A board answering every INFO request with ``payload``."""

    def __init__(self, payload):
        from bnnhw.boards import protocol as P
        self.P, self.payload, self.out = P, payload, b""

    def write(self, data):
        for f in self.P.FrameDecoder().feed(data):
            self.out += self.P.encode_frame(self.P.T_INFO_REPLY, f.seq, self.payload)

    def read(self, n):
        data, self.out = self.out[:n], self.out[n:]
        return data

    def now(self):
        return time.monotonic()

    def reset_input_buffer(self):
        self.out = b""

    def close(self):
        pass


@pytest.mark.parametrize("payload", [b"\x01\x02", bytes(18)])
def test_malformed_info_reply_is_a_bnnhw_error(payload):
    from bnnhw.boards.host import Board
    board = Board(transport=_InfoLink(payload), baud=115200, timeout=0.05, retries=0)
    with pytest.raises(BnnhwError, match="INFO reply is malformed"):
        board.info()


# ---------------------------------------------------------------- signals

def test_sigterm_during_training_ends_like_ctrl_c(tmp_path):
    out = tmp_path / "m.pt"
    p = subprocess.Popen([PY, "-m", "bnnhw", "train", "--arch", "tfc", "--dataset", "digits",
                          "--epochs", "500", "--json", "-o", str(out)], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        t0 = time.monotonic()
        while "training tfc on digits" not in line and time.monotonic() - t0 < 120:
            line = p.stderr.readline()
            assert line or p.poll() is None, "train ended early"
        time.sleep(1.0)
        p.send_signal(signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, stderr[-3000:]
    res = _no_nan(stdout.strip().splitlines()[-1])
    assert res["ok"] is False and res["error"] == "interrupted by SIGTERM"
    assert "Traceback" not in stderr
    assert not [n for n in os.listdir(tmp_path) if "tmp-bnnhw-" in n]   # no temporaries


def test_run_tool_stops_the_whole_group_on_an_exception(tmp_path):
    from bnnhw.outputs import run_tool
    pidfile = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    with pytest.raises(subprocess.TimeoutExpired):
        run_tool(["sh", "-c", script], timeout=1.0)
    pid = int(pidfile.read_text())
    from tests.build.test_output_folder import _alive
    t0 = time.monotonic()
    while _alive(pid) and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    assert not _alive(pid)                # the grandchild went with its group


def test_pickled_objects_are_never_loaded_from_npz(tmp_path):
    from bnnhw.limits import read_npz
    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BnnhwError, match="Python objects"):
        read_npz(io.BytesIO(buf.getvalue()), where="f.npz")
