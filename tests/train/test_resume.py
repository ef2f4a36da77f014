"""Fast training: resumable runs, vectorised augmentation, schedules, mixed precision, recipes."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from bnnhw.errors import BnnhwError
from bnnhw.train import loop
from bnnhw.train.checkpoint import load_checkpoint, load_state, state_path_for
from bnnhw.train.loop import TrainConfig, _augment, lr_at, resolve_amp, train
from bnnhw.train.models import input_quant_for, make_spec

PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _tiny_cnv_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 4, n)
    return {"x_train": x[:96], "y_train": y[:96], "x_val": x[96:], "y_val": y[96:]}


def _tiny_cnv_spec():
    # CNV's topology at 1/16 width (4..16 channels), 4 classes: conv, pool, channels-last
    return make_spec("cnv", input_shape=(3, 32, 32), num_classes=4, width=1 / 16,
                     input_quant=input_quant_for("image_signed"), dropout=0.1)


class _Stop(KeyboardInterrupt):
    pass


def _stop_after(k):
    def hook(epoch):
        if epoch == k:
            raise _Stop()
    return hook


@pytest.mark.parametrize("stop_at", [1, 3])
def test_resume_reaches_the_weights_of_an_uninterrupted_run(tmp_path, stop_at):
    """float64, one thread: stop after ``stop_at`` epochs, resume from the saved state,
    and end with exactly the weights, optimizer moments, best checkpoint and history of a
    run that was never stopped (dropout, augmentation and the schedule all draw RNG)."""
    spec, data = _tiny_cnv_spec(), _tiny_cnv_data()
    cfg = TrainConfig(epochs=5, batch_size=32, lr=0.01, lr_schedule="cosine", warmup_epochs=1,
                      weight_lr_scale="glorot", augment=True, precision=64, threads=1,
                      progress=False, seed=3)
    kw = dict(dataset_info={"name": "t"}, split_info={}, log=lambda m: None)
    full = train(spec, data, cfg, output=str(tmp_path / "full.pt"), **kw)
    out = str(tmp_path / "cut.pt")
    with pytest.raises(_Stop):
        train(spec, data, cfg, output=out, on_epoch_end=_stop_after(stop_at), **kw)
    state = load_state(out)  # finds cut.state.pt beside the checkpoint
    assert state["epoch"] == stop_at and state["path"] == state_path_for(out)
    resumed = train(spec, data, cfg, output=out, resume=state, **kw)
    a, b = full["model"].state_dict(), resumed["model"].state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa, sb = load_state(str(tmp_path / "full.pt")), load_state(out)
    assert [h["loss"] for h in sa["history"]] == [h["loss"] for h in sb["history"]]
    assert [h["val_accuracy"] for h in sa["history"]] == [h["val_accuracy"] for h in sb["history"]]
    for k, v in sa["optimizer"]["state"].items():
        for name, t in v.items():
            assert torch.equal(t, sb["optimizer"]["state"][k][name]), (k, name)
    ca, cb = load_checkpoint(str(tmp_path / "full.pt")), load_checkpoint(out)
    assert ca["meta"]["epoch"] == cb["meta"]["epoch"]
    for k in ca["state_dict"]:
        assert torch.equal(ca["state_dict"][k], cb["state_dict"][k]), k


def test_state_and_checkpoint_hold_only_safe_plain_contiguous_cpu_data(tmp_path):
    spec, data = _tiny_cnv_spec(), _tiny_cnv_data()
    cfg = TrainConfig(epochs=1, batch_size=48, lr=0.01, augment=True, progress=False,
                      amp="bf16")
    out = str(tmp_path / "m.pt")
    res = train(spec, data, cfg, output=out, dataset_info={"name": "t"}, split_info={},
                log=lambda m: None)
    assert res["channels_last"] is True
    ck = torch.load(out, weights_only=True)
    st = torch.load(state_path_for(out), weights_only=True)
    assert st["format"] == "bnnhw.train-state" and st["config"]["amp"] == "bf16"
    for sd in (ck["state_dict"], st["model"]):
        for k, t in sd.items():
            assert t.is_contiguous() and t.device.type == "cpu", k
            if t.is_floating_point():
                assert t.dtype == torch.float32, k  # BN statistics stay float32 under bf16


def _augment_reference(xb, gen):
    """The former per-image loop: the oracle for the vectorised version."""
    n, _, h, w = xb.shape
    padded = torch.nn.functional.pad(xb.float(), (4, 4, 4, 4), mode="replicate").to(xb.dtype)
    dy = torch.randint(0, 9, (n,), generator=gen)
    dx = torch.randint(0, 9, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(xb)
    for i in range(n):
        img = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = img.flip(-1) if flip[i] else img
    return out


def test_vectorised_augmentation_equals_the_per_image_loop():
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (64, 3, 7, 5), dtype=np.uint8))
    got = _augment(x, torch.Generator().manual_seed(9))
    want = _augment_reference(x, torch.Generator().manual_seed(9))
    assert got.dtype == torch.uint8 and torch.equal(got, want)
    assert not torch.equal(got, x)  # it did move pixels


def test_lr_schedules_with_warmup():
    cos = TrainConfig(epochs=12, lr=0.002, lr_schedule="cosine", warmup_epochs=2)
    lrs = [lr_at(cos, e) for e in range(12)]
    assert lrs[0] == pytest.approx(0.001) and lrs[1] == pytest.approx(0.002)
    assert lrs[2] == pytest.approx(0.002)  # the cosine starts at the peak
    assert lrs[7] == pytest.approx(0.001)  # half-way through the 10 cosine epochs
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:])) and 0 < lrs[-1] < 1e-4
    exp = TrainConfig(epochs=5, lr=0.01, lr_final=1e-4)
    assert [lr_at(exp, e) for e in (0, 4)] == pytest.approx([0.01, 1e-4])
    with pytest.raises(BnnhwError, match="unknown learning-rate schedule") as e:
        lr_at(TrainConfig(lr_schedule="linear"), 0)
    assert "cosine" in e.value.hint


def test_amp_resolution(monkeypatch):
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: True)
    assert resolve_amp("auto", "cpu") == "bf16"
    assert resolve_amp("auto", "cpu", precision=64) == "off"
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: False)
    assert resolve_amp("auto", "cpu") == "off"  # bf16 autocast is slower without bf16 units
    assert resolve_amp("bf16", "cpu") == "bf16"
    with pytest.raises(BnnhwError, match="fp16 needs a CUDA"):
        resolve_amp("fp16", "cpu")
    with pytest.raises(BnnhwError, match="precision 64"):
        resolve_amp("bf16", "cpu", precision=64)


def test_cuda_device_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error case needs a machine without it")
    r = subprocess.run([PY, "-m", "bnnhw", "train", "--arch", "tfc", "--dataset", "digits",
                        "--device", "cuda", "-o", "/tmp/never.pt", "--json"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 1
    err = json.loads(r.stdout.strip().splitlines()[-1])
    assert err["ok"] is False and "CUDA" in err["error"] and "--device cpu" in err["hint"]
    assert not os.path.exists("/tmp/never.pt")


def test_bf16_trained_conv_net_exports_exactly(tmp_path):
    """Mixed precision changes training arithmetic only: the exported integer model agrees
    with the float32 torch model on every image."""
    from bnnhw.export import export_checkpoint
    from bnnhw.export import disagreements
    from bnnhw.golden import GoldenModel
    from bnnhw.train.checkpoint import model_from_checkpoint
    spec, data = _tiny_cnv_spec(), _tiny_cnv_data(n=200)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.01, augment=True, amp="bf16",
                      progress=False)
    out = str(tmp_path / "m.pt")
    train(spec, data, cfg, output=out, dataset_info={"name": "t"}, split_info={},
          log=lambda m: None)
    ck = load_checkpoint(out)
    ir = export_checkpoint(ck, self_check=0)
    x = np.random.default_rng(5).integers(0, 256, (300, 3, 32, 32), dtype=np.uint8)
    assert len(set(GoldenModel(ir).predict(x).tolist())) > 1
    assert disagreements(ir, model_from_checkpoint(ck), x) == 0


def _bnnhw(*args, **kw):
    return subprocess.run([PY, "-m", "bnnhw", *args], capture_output=True, text=True, env=ENV,
                          timeout=600, **kw)


def test_default_recipe_applies_and_a_flag_overrides_one_value(tmp_path):
    out = tmp_path / "m.pt"
    r = _bnnhw("train", "--arch", "tfc", "--dataset", "digits", "--epochs", "3", "-o", str(out),
               "--json")
    assert r.returncode == 0, r.stderr
    assert "recipe tfc/digits" in r.stderr and "epochs=3*" in r.stderr
    meta = load_checkpoint(str(out))["meta"]
    rec = meta["recipe"]
    assert rec["name"] == "tfc/digits" and rec["overridden"] == ["epochs"]
    assert rec["values"]["lr"] == 0.02 and rec["values"]["batch_size"] == 50
    assert meta["config"]["lr"] == 0.02 and meta["config"]["epochs"] == 3


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_training_leaves_a_state_that_resume_finishes_identically(tmp_path, sig):
    common = ["--arch", "tfc", "--dataset", "digits", "--epochs", "40", "--subset", "300",
              "--precision", "64", "--threads", "1"]
    ref = tmp_path / "ref.pt"
    assert _bnnhw("train", *common, "-o", str(ref), "--json").returncode == 0
    out = tmp_path / "cut.pt"
    state = tmp_path / "cut.state.pt"
    # a shell that starts a job in the background (as CI runners may) leaves SIGINT ignored
    # in its children, and Python keeps it ignored: restore the default for this run
    p = subprocess.Popen([PY, "-m", "bnnhw", "train", *common, "-o", str(out), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(sig)
    p.communicate(timeout=120)
    done = load_state(str(state))["epoch"]
    if p.returncode == 0:
        pytest.fail("the run finished before the signal arrived; make it longer")
    assert 1 <= done < 40
    r = _bnnhw("train", "--resume", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert f"resuming after epoch {done}" in r.stderr
    a, b = load_state(str(tmp_path / "ref.state.pt")), load_state(str(state))
    assert b["epoch"] == 40
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_resume_refuses_changes_to_the_run_and_finished_runs(tmp_path):
    out = tmp_path / "m.pt"
    assert _bnnhw("train", "--arch", "tfc", "--dataset", "digits", "--epochs", "2",
                  "-o", str(out)).returncode == 0
    r = _bnnhw("train", "--resume", str(out), "--lr", "0.1", "--json")
    err = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 1 and "--lr" in err["error"]
    r = _bnnhw("train", "--resume", str(out), "--json")
    err = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 1 and "already completed all 2 epochs" in err["error"]
    r = _bnnhw("train", "--resume", str(tmp_path / "none.state.pt"), "--json")
    assert r.returncode == 1 and "no training state" in r.stdout
    assert math.isfinite(load_state(str(out))["best"])


def test_resumed_run_resolves_amp_auto_again_for_the_machine(monkeypatch):
    """A run started with --amp auto (bf16 on a CPU with bf16 units) and resumed on a CPU
    without them trains in float32, not in emulated bf16; explicit choices are kept."""
    from bnnhw.commands.train import resume_amp
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: False)
    auto_run = TrainConfig(amp="bf16", extra={"argv": ["train", "--arch", "cnv"]})
    assert resume_amp("auto", auto_run, "cpu") == "off"
    assert resume_amp("bf16", auto_run, "cpu") == "bf16"
    explicit = TrainConfig(amp="bf16", extra={"argv": ["train", "--amp", "bf16"]})
    assert resume_amp("auto", explicit, "cpu") == "bf16"
    recorded = TrainConfig(amp="bf16", extra={"amp_request": "bf16"})
    assert resume_amp("auto", recorded, "cpu") == "bf16"
    assert resume_amp("off", recorded, "cpu") == "off"
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: True)
    off_run = TrainConfig(amp="off", extra={"amp_request": "auto"})
    assert resume_amp("auto", off_run, "cpu") == "bf16"
