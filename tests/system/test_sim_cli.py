"""``bnnhw sim`` end to end through the command line: Verilator, trained and CNV-shaped nets.

Every run streams the test images through the generated Verilog twice: with
random back-pressure on both sides (--stall 0.3; outputs must be bit-exact)
and without (the measured steady state must reach the analytic bound:
efficiency >= 0.95).
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from .conftest import ENV, PY, bnnhw, last_json

SIM_KEYS = {"frames", "mismatches", "cycles_per_frame", "bound_cycles_per_frame",
            "latency_cycles", "accuracy", "efficiency", "folding", "fifo_depths"}


def check_sim(res, frames):
    assert res["ok"] is True
    assert SIM_KEYS <= set(res)
    assert res["frames"] == frames
    assert res["mismatches"] == 0 and res["mismatches_no_stall"] == 0
    assert res["efficiency"] >= 0.95, res
    assert res["cycles_per_frame"] >= res["bound_cycles_per_frame"] - 1e-9
    # bit-exact hardware answers score exactly what the golden model scores
    assert res["accuracy"] == pytest.approx(res["golden_accuracy"], abs=0)
    assert res["latency_cycles"] > 0


@pytest.mark.parametrize("bits, folding", [(8, []), (1, ["--target-cycles", "200"])],
                         ids=["8bit-fastest", "1bit-target200"])
def test_trained_tfc_digits(digits_tfc, bits, folding):
    r = bnnhw("sim", "--model", digits_tfc[bits], "--dataset", "digits", "--stall", "0.3",
              *folding, "--json")
    res = last_json(r)
    check_sim(res, 180)
    assert res["golden_accuracy"] > 0.3           # it did learn something
    if folding:
        assert res["bound_cycles_per_frame"] <= 200
    else:
        assert res["bound_cycles_per_frame"] == 64  # the input stream: 8x8 elements
    assert "Traceback" not in r.stderr


CNV_FOLDINGS = {"fastest": [], "target": ["--target-cycles", "6000"],
                "budget": ["--max-luts", "1500"]}


@pytest.fixture(scope="module")
def cnv_runs(cnv_small, tmp_path_factory):
    ck, npz = cnv_small
    d = tmp_path_factory.mktemp("cnvsim")
    out = {}
    for name, opts in CNV_FOLDINGS.items():
        r = bnnhw("sim", "--model", ck, "--dataset", npz, "--count", "24", "--stall", "0.3",
                  "--save-folding", d / f"{name}.json", *opts, "--json")
        out[name] = (last_json(r), d / f"{name}.json")
    return out


@pytest.mark.parametrize("name", list(CNV_FOLDINGS))
def test_cnv_three_builder_foldings(cnv_runs, name):
    res, _ = cnv_runs[name]
    check_sim(res, 24)
    bounds = {k: v[0]["bound_cycles_per_frame"] for k, v in cnv_runs.items()}
    assert bounds["fastest"] == 2304                 # conv0/conv1 window units: 16*16*9
    assert bounds["fastest"] < bounds["target"] <= 6000
    if name == "budget":
        assert res["lut_estimate"] <= 1500 and res["folding_mode"] == "budget"
    assert len({tuple(map(json.dumps, v[0]["folding"])) for v in cnv_runs.values()}) == 3


def test_folding_file_and_build_dir_reproduce_the_design(cnv_small, cnv_runs, tmp_path):
    """--folding FILE (a saved folding) and --from DIR give the same Verilog (a cache hit)
    and the same measurements."""
    ck, npz = cnv_small
    res0, saved = cnv_runs["target"]
    r = bnnhw("sim", "--model", ck, "--dataset", npz, "--count", "24", "--stall", "0.3",
              "--folding", saved, "--json")
    res = last_json(r)
    check_sim(res, 24)
    assert res["cache_hit"] is True and res["folding_mode"] == "file"
    assert res["cycles_per_frame"] == res0["cycles_per_frame"]
    # a build folder written through the API, then simulated with --from
    build = tmp_path / "build"
    code = ("import sys; from bnnhw.export import load_model_any; "
            "from bnnhw.dataflow import *; ir, _ = load_model_any(sys.argv[1]); "
            "plan = plan_folding(ir, folding=load_folding_file(sys.argv[2])); "
            "write_build_dir(sys.argv[3], ir, plan, build_design(ir, plan))")
    subprocess.run([PY, "-c", code, str(ck), str(saved), str(build)], check=True, env=ENV,
                   capture_output=True, timeout=600)
    r = bnnhw("sim", "--from", build, "--dataset", npz, "--count", "24", "--stall", "0.3",
              "--json")
    res = last_json(r)
    check_sim(res, 24)
    assert res["cache_hit"] is True and res["cycles_per_frame"] == res0["cycles_per_frame"]
    r = bnnhw("sim", "--from", build, "--dataset", npz, "--target-cycles", "9000", "--json",
              check=False)
    assert r.returncode == 1 and "--from uses the build's folding" in last_json(r)["error"]


def test_bad_input_gives_clear_errors(digits_tfc, tmp_path, capsys):
    from bnnhw import cli
    model = str(digits_tfc[8])
    illegal = tmp_path / "illegal.json"
    illegal.write_text(json.dumps({"layers": [{"name": n, "simd": 4, "pe": 12 if n == "fc1"
                                               else 1} for n in ("fc0", "fc1", "fc2", "fc3")]}))
    # in a fresh process: exit status 1, the JSON error object, no traceback
    r = bnnhw("sim", "--model", model, "--dataset", "digits", "--folding", illegal, "--json",
              check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    err = last_json(r)
    assert err == {"ok": False, "error": "layer fc1: PE=12 does not divide MH=32; legal: "
                                         "1,2,4,8,16,32", "hint": err["hint"]} and err["hint"]
    r = bnnhw("sim", "--model", model, "--dataset", "no-such-set", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "error: unknown dataset 'no-such-set'" in r.stderr and "hint:" in r.stderr
    # the other refusals, in this process
    cases = [
        (["--target-cycles", "10"], "target 10 cycles/frame is impossible: the input stream"),
        (["--target-fps", "100"], "needs both --target-fps and --clock-mhz"),
        (["--target-fps", "1e9", "--clock-mhz", "100"], "less than one cycle per frame"),
        (["--max-luts", "5"], "even the smallest folding"),
        (["--folding", str(tmp_path / "missing.json")], "does not exist"),
        (["--stall", "1.5"], "--stall 1.5 is outside [0, 1)"),
        (["--from", str(tmp_path)], "has no model.bnn"),
    ]
    for opts, message in cases:
        assert cli.main(["sim", "--model", model, "--dataset", "digits", *opts, "--json"]) == 1
        err = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert err["ok"] is False and message in err["error"] and err["hint"], (opts, err)


def test_mismatch_names_image_layer_and_writes_waves(digits_tfc, monkeypatch, capsys,
                                                     tmp_path):
    """A hardware fault in fc1 (its thresholds shifted in the lowering only): the run fails,
    names the first differing image and layer fc1, and keeps a waveform."""
    import numpy as np

    from bnnhw import cli
    from bnnhw.cores import lowering

    real = lowering.layer_hw_from_ir

    def faulty(layer, **kw):
        hw = real(layer, **kw)
        if hw.name == "fc1":
            hw.thresholds = np.asarray(hw.thresholds) + 5
        return hw

    monkeypatch.setattr(lowering, "layer_hw_from_ir", faulty)
    with pytest.raises(SystemExit) as e:
        cli.main(["sim", "--model", str(digits_tfc[8]), "--dataset", "digits", "--count", "20",
                  "--stall", "0.2", "--target-cycles", "256", "--work-dir", str(tmp_path),
                  "--json"])
    assert e.value.code == 1
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["ok"] is False and res["mismatches"] > 0
    assert res["first_mismatch_layer"] == "fc1"
    assert isinstance(res["first_mismatch_image"], int)
    assert f"image {res['first_mismatch_image']}" in res["error"] and "fc1" in res["error"]
    assert res["waves"] and os.path.isfile(res["waves"])
    assert res["waves"].startswith(str(tmp_path))


def test_verilog_is_identical_across_processes_and_hash_seeds(cnv_small):
    ck, _ = cnv_small
    code = ("import hashlib, sys; from bnnhw.export import load_model_any; "
            "from bnnhw.dataflow import plan_folding, build_design; "
            "ir, _ = load_model_any(sys.argv[1]); "
            "d = build_design(ir, plan_folding(ir, target_cycles=5000)); "
            "print(hashlib.sha256(d.verilog().encode()).hexdigest())")
    digests = []
    for seed in ("0", "4242"):
        env = {**ENV, "PYTHONHASHSEED": seed}
        r = subprocess.run([PY, "-c", code, str(ck)], env=env, capture_output=True, text=True,
                           timeout=600, check=True)
        digests.append(r.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1] and len(digests[0]) == 64


def test_pool_before_bn_negative_scales_signed_int_padding(cnv_pool_before_bn):
    """conv -> pool -> BN -> sign with negative BN scales (max-pool of an inverted channel
    becomes AND-pooling of its bits), and a signed 8-bit first conv padded with -37: the
    generated Verilog under stalls equals the golden model (which the export's self-check
    ties to torch)."""
    from bnnhw.export import load_model_any
    ck, npz = cnv_pool_before_bn
    ir, _ = load_model_any(str(ck))
    first = ir.layers[0]
    assert first.input_signed and first.padding and first.pad_value == -37
    assert ir.spec["pool_order"] == "before_bn"
    pools = [l for l in ir.layers if l.kind == "maxpool"]
    assert pools and all((p.pool_op == "and").any() for p in pools)
    assert all((l.direction == -1).any() for l in ir.dense_layers if not l.is_output)
    r = bnnhw("sim", "--model", ck, "--dataset", npz, "--count", "16", "--stall", "0.3",
              "--target-cycles", "6000", "--json")
    res = last_json(r)
    check_sim(res, 16)
    assert "Traceback" not in r.stderr
