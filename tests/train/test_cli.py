"""`bnnhw train` / `eval` end to end on digits, checkpoints, and bad input."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from bnnhw.train.checkpoint import load_checkpoint, model_from_checkpoint

PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def bnnhw(*args, check=True):
    r = subprocess.run([PY, "-m", "bnnhw", *args], capture_output=True, text=True, env=ENV,
                       timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"bnnhw {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


def last_json(r):
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "tfc.pt"
    r = bnnhw("train", "--arch", "tfc", "--dataset", "digits", "--epochs", "8", "--batch-size",
              "50", "--lr", "0.02", "--dropout", "0.1", "--input-dropout", "0", "--json",
              "-o", str(out))
    return out, last_json(r)


def test_train_writes_safe_checkpoint_with_everything(digits_model):
    path, res = digits_model
    assert res["ok"] is True and res["best_val_accuracy"] > 0.7
    ck = torch.load(path, weights_only=True)  # no code runs
    assert ck["format"] == "bnnhw.checkpoint"
    assert ck["spec"]["arch"] == "tfc" and ck["spec"]["input"]["bits"] == 5
    assert ck["dataset"]["name"] == "digits" and ck["split"]["test_fraction"] == 0.1
    assert ck["meta"]["epoch"] == res["best_epoch"]
    assert len(ck["meta"]["history"]) == res["best_epoch"]
    # latent weights were clipped after every step
    for k, v in ck["state_dict"].items():
        if k.endswith("core.weight"):
            assert v.abs().max() <= 1.0


def test_checkpoint_round_trip_gives_identical_predictions(digits_model, tmp_path):
    from bnnhw.train.checkpoint import save_checkpoint
    path, _ = digits_model
    ck = load_checkpoint(str(path))
    m = model_from_checkpoint(ck)
    x = torch.randint(0, 17, (64, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    again = tmp_path / "again.pt"
    save_checkpoint(str(again), spec=ck["spec"], model=m, dataset=ck["dataset"],
                    split=ck["split"], meta=ck["meta"])
    m2 = model_from_checkpoint(load_checkpoint(str(again)))
    assert torch.equal(m(x), m2(x))


def test_eval_json_on_holdout_matches_python(digits_model):
    from bnnhw.train import data as D
    from bnnhw.train.loop import predict
    path, _ = digits_model
    r = bnnhw("eval", "--model", str(path), "--dataset", "digits", "--json")
    res = last_json(r)
    ck = load_checkpoint(str(path))
    ds = D.load_dataset("digits")
    x, y = D.select(ds, "test", ck["split"])
    acc = float((predict(model_from_checkpoint(ck), x) == y).mean())
    assert res["count"] == len(y) == 180
    assert res["accuracy"] == pytest.approx(acc, abs=0)
    assert res["accuracy"] > 0.7


def test_training_is_deterministic_for_a_seed(tmp_path):
    outs = []
    for name in ("a", "b"):
        p = tmp_path / f"{name}.pt"
        bnnhw("train", "--arch", "tfc", "--dataset", "digits", "--epochs", "2", "--width", "0.5",
              "--seed", "3", "-o", str(p), "--json")
        outs.append(torch.load(p, weights_only=True)["state_dict"])
    for k in outs[0]:
        assert torch.equal(outs[0][k], outs[1][k]), k


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('BNNHW_EVIL_MARKER', '/tmp/x')}",))


def test_malicious_pickle_checkpoint_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    os.environ["BNNHW_EVIL_MARKER"] = str(marker)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "bnnhw.checkpoint", "payload": _Evil()}, evil)
    r = bnnhw("eval", "--model", str(evil), "--dataset", "digits", "--json", check=False)
    assert r.returncode == 1
    assert not marker.exists()
    err = last_json(r)
    assert err["ok"] is False and "not a safe bnnhw checkpoint" in err["error"]
    assert "Traceback" not in r.stderr


def test_truncated_checkpoint_gives_clear_error(digits_model, tmp_path):
    path, _ = digits_model
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(path.read_bytes()[:2000])
    r = bnnhw("eval", "--model", str(bad), "--dataset", "digits", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "truncated or corrupted" in r.stderr and "hint:" in r.stderr


def test_checkpoint_whose_shapes_disagree_with_spec(digits_model, tmp_path):
    path, _ = digits_model
    ck = torch.load(path, weights_only=True)
    ck["spec"]["layers"][0]["out_features"] = 32
    bad = tmp_path / "shapes.pt"
    torch.save(ck, bad)
    r = bnnhw("eval", "--model", str(bad), "--dataset", "digits", "--json", check=False)
    assert r.returncode == 1
    assert "do not match the architecture spec" in last_json(r)["error"]


def test_missing_dataset_and_wrong_arch_are_clear_errors(tmp_path):
    r = bnnhw("train", "--arch", "tfc", "--dataset", "mnist", "--data-dir", str(tmp_path),
              "-o", str(tmp_path / "m.pt"), "--json", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    err = last_json(r)
    assert str(tmp_path) in err["error"] + err["hint"] and "bnnhw data mnist" in err["hint"]
    assert not (tmp_path / "m.pt").exists()
    r = bnnhw("train", "--arch", "cnv", "--dataset", "digits", "-o", str(tmp_path / "c.pt"),
              check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "does not fit dataset 'digits'" in r.stderr
    r = bnnhw("train", "--arch", "resnet", "--dataset", "digits", "-o", str(tmp_path / "c.pt"),
              check=False)
    assert r.returncode == 2 and "invalid choice: 'resnet'" in r.stderr


def test_export_and_golden_agree_with_torch_on_every_test_image(digits_model, tmp_path):
    path, _ = digits_model
    ir = tmp_path / "m.bnn"
    bnnhw("export", "--model", str(path), "-o", str(ir), "--json")
    res = last_json(bnnhw("eval", "--model", str(ir), "--dataset", "digits", "--engine", "golden",
                          "--reference", str(path), "--json"))
    torch_res = last_json(bnnhw("eval", "--model", str(path), "--dataset", "digits", "--json"))
    assert res["disagreements"] == 0 and res["count"] == 180
    assert res["accuracy"] == torch_res["accuracy"]
