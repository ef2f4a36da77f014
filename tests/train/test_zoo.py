"""The pretrained model zoo: every shipped checkpoint re-exports to its shipped IR bit for bit,
its golden model matches torch, and zoo names work wherever --model is taken."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from bnnhw import zoo
from bnnhw.export import export_checkpoint
from bnnhw.export import disagreements
from bnnhw.golden import GoldenModel
from bnnhw.ir import load_ir
from bnnhw.train.checkpoint import load_checkpoint, model_from_checkpoint

NAMES = list(zoo.models())
PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_the_zoo_ships_the_promised_models():
    assert "tfc-digits" in NAMES
    for name in NAMES:
        f = zoo.files(name)
        assert f["pt"].is_file() and f["bnn"].is_file() and f["md"].is_file(), name
        e = zoo.get(name)
        assert e["golden_disagreements"] == 0 and 0 < e["accuracy"] <= 1
        assert f"{100 * e['accuracy']:.2f} %" in f["md"].read_text()


@pytest.mark.parametrize("name", NAMES)
def test_shipped_checkpoint_reexports_to_the_shipped_ir_and_golden_matches_torch(name):
    f = zoo.files(name)
    ck = torch.load(f["pt"], weights_only=True)
    binary = [k for k in ck["state_dict"] if k.endswith("core.weight")]
    assert binary and all(ck["state_dict"][k].dtype == torch.int8 for k in binary)  # slim
    assert "optimizer" not in ck
    ir = export_checkpoint(load_checkpoint(str(f["pt"])), self_check=0)
    shipped = load_ir(str(f["bnn"]))
    a, b = ir.header(), shipped.header()
    a.pop("provenance"), b.pop("provenance")
    assert a == b
    arr_a, arr_b = ir.arrays(), shipped.arrays()
    assert arr_a.keys() == arr_b.keys()
    for k in arr_a:
        assert np.array_equal(arr_a[k], arr_b[k]), k
    # golden == torch on a sample: 256 random raw images of the model's input shape
    q = ir.input
    lo, hi = q.raw_range
    x = np.random.default_rng(0).integers(lo, hi + 1, (256, q.channels, q.height, q.width),
                                          dtype=np.uint8)
    model = model_from_checkpoint(load_checkpoint(str(f["pt"])))
    assert disagreements(shipped, model, x) == 0
    assert len(set(GoldenModel(shipped).predict(x).tolist())) > 1


def _bnnhw(*args, cwd=None):
    return subprocess.run([PY, "-m", "bnnhw", *args], capture_output=True, text=True, env=ENV,
                          timeout=600, cwd=cwd)


def test_models_command_and_zoo_names_as_model(tmp_path):
    r = _bnnhw("models", "--json")
    assert r.returncode == 0
    listed = {m["name"]: m for m in json.loads(r.stdout.strip().splitlines()[-1])["models"]}
    assert set(listed) == set(NAMES)
    r = _bnnhw("eval", "--model", "tfc-digits", "--dataset", "digits", "--engine", "golden",
               "--reference", "tfc-digits", "--json", cwd=tmp_path)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0 and res["disagreements"] == 0
    assert res["accuracy"] == pytest.approx(zoo.get("tfc-digits")["accuracy"])
    r = _bnnhw("models", "no-such-model", "--json")
    assert r.returncode == 1 and "tfc-digits" in r.stdout


def test_a_file_path_wins_over_a_zoo_name(tmp_path):
    (tmp_path / "tfc-digits").write_bytes(b"not a model")
    r = _bnnhw("eval", "--model", "tfc-digits", "--dataset", "digits", "--json", cwd=tmp_path)
    err = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 1 and err["ok"] is False and "tfc-digits" in err["error"]
    assert zoo.resolve(str(tmp_path / "tfc-digits")) == str(tmp_path / "tfc-digits")
    assert zoo.resolve("tfc-digits") == str(zoo.files("tfc-digits")["pt"])
