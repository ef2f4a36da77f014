"""The exporter on hand-made cases (thresholds, inversion, constants, pooling, scores),
unsupported models, checkpoints, the CLI, and the golden model's API."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from bnnhw import layout
from bnnhw.cli import main
from bnnhw.errors import BnnhwError, ModelFileError
from bnnhw.export import ExportError, export_checkpoint, export_model, load_model_any
from bnnhw.export import disagreements
from bnnhw.golden import GoldenModel
from bnnhw.ir import load_ir
from bnnhw.train.checkpoint import save_checkpoint
from bnnhw.train.models import build_model, make_spec

from .nets import compare, images_for, randomize

BIT_IN = {"bits": 1, "threshold": 128}
U8 = {"bits": 8, "signed": False, "offset": 0, "scale_log2": -8}
DIGITS = {"bits": 5, "signed": False, "offset": 0, "scale_log2": -4}


def spec_of(shape, layers, ncls, quant=BIT_IN, **kw):
    return make_spec("tfc", input_shape=shape, num_classes=ncls, input_quant=quant,
                     layers=layers + [{"type": "fc", "out_features": ncls}], **kw)


def set_norm(norm, *, weight, mean, var=None, bias=None):
    with torch.no_grad():
        n = norm.weight.numel()
        norm.weight.copy_(torch.as_tensor(weight, dtype=torch.float32).expand(n))
        norm.running_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).expand(n))
        v = torch.full((n,), 1.0 - norm.eps) if var is None else torch.as_tensor(var).expand(n)
        norm.running_var.copy_(v)
        norm.bias.copy_(torch.zeros(n) if bias is None else torch.as_tensor(bias).expand(n))


def all_bit_images(n_in):
    """Every 1-bit input pattern of n_in pixels as raw uint8 (0 or 255)."""
    codes = np.arange(2 ** n_in)
    bits = (codes[:, None] >> np.arange(n_in)) & 1
    return (bits * 255).astype(np.uint8).reshape(-1, 1, 1, n_in)


# -- thresholds ---------------------------------------------------------------------------

def test_thresholds_by_hand_increasing_decreasing_constant_and_ties():
    spec = spec_of((1, 1, 4), [{"type": "fc", "out_features": 6}], 2)
    m = build_model(spec).eval()
    with torch.no_grad():
        m.blocks[0].core.weight.copy_(torch.tensor([[1., -1, 1, 1]] * 6))
    # scale 1 (var + eps = 1); dot = 2p - 4 for p = popcount(XNOR) in [0, 4]
    set_norm(m.blocks[0].norm,
             weight=[1.0, -1.0, 0.0, 0.0, 1.0, -1.0],
             mean=[0.0, 0.0, 0.0, 0.0, 2.0, 2.0],
             bias=[0.0, 0.0, 0.5, -0.5, 0.0, 0.0])
    set_norm(m.blocks[1].norm, weight=1.0, mean=0.0)
    ir = export_model(m, self_check=0)
    l0 = ir.layers[0]
    # ch0: dot >= 0 <=> p >= 2.  ch1: dot <= 0 <=> p <= 2 <=> p' = 4 - p >= 2 (row inverted).
    # ch2: always +1 (T = 0); ch3: always -1 (T = MW + 1).
    # ch4: dot - 2 >= 0 <=> p >= 3 (the tie dot = 2 is exactly 0 -> +1).
    # ch5: -(dot - 2) >= 0 <=> dot <= 2 <=> p <= 3 <=> p' >= 1.
    assert l0.thresholds.tolist() == [2, 2, 0, 5, 3, 1]
    assert l0.direction.tolist() == [1, -1, 0, 0, 1, -1]
    row = [1, 0, 1, 1]
    inv = [0, 1, 0, 0]
    assert l0.weights.tolist() == [row, inv, row, row, row, inv]
    assert ir.output_layer.score_kind == "popcount"
    compare(m, all_bit_images(4))


def test_tiny_scales_and_exact_zero_outputs():
    spec = spec_of((1, 1, 6), [{"type": "fc", "out_features": 4}], 3, norm="bn")
    m = build_model(spec).eval()
    # tiny positive/negative scales: (dot - 0.5) * 1e-30 never rounds to 0 -> sign follows
    # dot - 0.5; with mean on a reachable dot the product is exactly 0 -> +1.
    set_norm(m.blocks[0].norm, weight=[1e-30, -1e-30, 1e-30, -1e-30],
             mean=[0.5, 0.5, 2.0, 2.0])
    set_norm(m.blocks[1].norm, weight=1.0, mean=0.0)
    ir = export_model(m, self_check=0)
    assert ir.layers[0].direction.tolist() == [1, -1, 1, -1]
    assert ir.layers[0].thresholds.tolist() == [4, 6 - 3, 4, 6 - 4]
    compare(m, all_bit_images(6))


def test_shift_batchnorm_thresholds_match_torch():
    spec = spec_of((1, 3, 3), [{"type": "conv", "out_channels": 8, "kernel": 2, "stride": 1,
                                "padding": 1, "pad_value": 1}], 3, quant=DIGITS, norm="shift")
    m = build_model(spec)
    imgs = images_for(spec, np.random.default_rng(1), n=200)
    randomize(m, imgs, 1)
    compare(m, imgs)


def test_pool_before_bn_uses_and_for_decreasing_channels():
    spec = spec_of((1, 6, 6), [{"type": "conv", "out_channels": 3, "kernel": 3, "stride": 1,
                                "padding": 1, "pad_value": -1},
                               {"type": "maxpool", "kernel": 2}], 2,
                   pool_order="before_bn", quant=BIT_IN)
    m = build_model(spec).eval()
    torch.manual_seed(0)
    set_norm(m.blocks[0].norm, weight=[1.0, -1.0, 0.0], mean=[0.0, 1.0, 0.0], bias=[0, 0, 1])
    set_norm(m.blocks[1].norm, weight=1.0, mean=0.0)
    ir = export_model(m, self_check=0)
    assert ir.layers[1].pool_op.tolist() == ["or", "and", "or"]
    assert ir.layers[0].direction.tolist() == [1, -1, 0]
    imgs = (np.random.default_rng(0).random((300, 1, 6, 6)) < 0.5).astype(np.uint8) * 255
    compare(m, imgs)
    # the same net in FINN's order pools bits with OR everywhere
    spec2 = dict(spec, pool_order="after_sign")
    m2 = build_model(spec2).eval()
    m2.load_state_dict(m.state_dict())
    ir2 = export_model(m2, self_check=0)
    assert ir2.layers[1].pool_op.tolist() == ["or", "or", "or"]
    compare(m2, imgs)


def test_and_pooling_is_needed(monkeypatch):
    """With OR instead of AND on a decreasing channel the golden model is wrong."""
    spec = spec_of((1, 4, 4), [{"type": "conv", "out_channels": 1, "kernel": 1, "stride": 1,
                                "padding": 0, "pad_value": -1},
                               {"type": "maxpool", "kernel": 2}], 2, pool_order="before_bn")
    m = build_model(spec).eval()
    with torch.no_grad():
        m.blocks[0].core.weight.fill_(1.0)
    set_norm(m.blocks[0].norm, weight=-1.0, mean=0.0)   # output +1 iff pixel is -1
    set_norm(m.blocks[1].norm, weight=1.0, mean=0.0)
    ir = export_model(m, self_check=0)
    img = np.zeros((1, 1, 4, 4), np.uint8)
    img[0, 0, 0, 0] = 255                     # one +1 pixel in the first window: max -> +1
    _, _, per = GoldenModel(ir).run(img, collect=True)
    assert per[1]["bits"][0, 0, 0, 0] == 0    # sign(-max) = -1: AND of the window's bits
    assert per[1]["bits"][0, 1, 1, 0] == 1
    ir.layers[1].pool_op[:] = "or"
    _, _, per = GoldenModel(ir).run(img, collect=True)
    assert per[1]["bits"][0, 0, 0, 0] == 1


# -- output scores ------------------------------------------------------------------------

@pytest.mark.parametrize("w,kind,direction", [(2.0, "popcount", 1), (-0.5, "popcount", -1),
                                              (0.0, "rank_table", 1),
                                              (1e-37, "rank_table", 1)])
def test_scalar_norm_scores(w, kind, direction):
    spec = spec_of((1, 1, 8), [{"type": "fc", "out_features": 70}], 5)
    m = build_model(spec)
    imgs = images_for(spec, np.random.default_rng(5), n=300)
    randomize(m, imgs, 5, tie_classes=False)
    set_norm(m.blocks[1].norm, weight=w, mean=3.0, var=4.0, bias=0.25)
    ir = export_model(m, self_check=0)
    out = ir.output_layer
    assert out.score_kind == kind and set(out.direction.tolist()) == {direction}
    if w == 0.0:   # every score equal: class 0 always, like torch.argmax
        assert (GoldenModel(ir).predict(imgs) == 0).all()
        assert np.unique(out.score_table).size == 1
    compare(m, imgs)


def test_per_class_bn_rank_table_with_ties():
    spec = spec_of((1, 1, 10), [{"type": "fc", "out_features": 9}], 4, last_norm="bn")
    m = build_model(spec)
    imgs = images_for(spec, np.random.default_rng(2), n=400)
    randomize(m, imgs, 2, tie_classes=False)
    with torch.no_grad():          # classes 1 and 3 identical, class 2 never above them
        m.blocks[1].core.weight[3] = m.blocks[1].core.weight[1]
    set_norm(m.blocks[1].norm, weight=[1.0, -2.0, 0.0, -2.0], mean=[0.0, 1.0, 0.0, 1.0],
             var=[1.0, 4.0, 1.0, 4.0], bias=[0.1, 0.0, 0.0, 0.0])
    ir = export_model(m, self_check=0)
    out = ir.output_layer
    assert out.score_kind == "rank_table" and out.score_table.shape == (4, 10)
    assert np.array_equal(out.score_table[1], out.score_table[3])
    classes, scores = GoldenModel(ir).run(imgs)
    assert not (classes == 3).any()          # ties go to the lower index 1
    compare(m, imgs)


# -- a trained model, checkpoints, load_model_any ------------------------------------------

def _trained(tmp_path, spec, steps=3, seed=0):
    torch.manual_seed(seed)
    m = build_model(spec)
    rng = np.random.default_rng(seed)
    imgs = images_for(spec, rng, n=64)
    y = torch.from_numpy(rng.integers(0, spec["num_classes"], size=len(imgs)))
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    m.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(m(torch.from_numpy(imgs)), y)
        loss.backward()
        opt.step()
        m.clip_weights_()
    m.eval()
    p = tmp_path / "model.pt"
    save_checkpoint(str(p), spec=spec, model=m, dataset={"name": "toy", "kind": "digits"},
                    split={"seed": 0, "test_fraction": 0.1}, meta={"epoch": steps, "history": [1]})
    return p, m, imgs


CONV_SPEC = dict(shape=(1, 8, 8), layers=[
    {"type": "conv", "out_channels": 6, "kernel": 3, "stride": 1, "padding": 1, "pad_value": 0},
    {"type": "conv", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 0, "pad_value": -1},
    {"type": "maxpool", "kernel": 2}, {"type": "fc", "out_features": 12}], ncls=10)


def test_trained_checkpoint_exports_exactly(tmp_path):
    spec = spec_of(CONV_SPEC["shape"], CONV_SPEC["layers"], 10, quant=DIGITS,
                   pool_order="before_bn", last_norm="bn")
    p, m, imgs = _trained(tmp_path, spec)
    ir = export_checkpoint(str(p), self_check=16)
    assert ir.provenance["self_check"] == {"images": 16, "disagreements": 0}
    assert ir.provenance["source"] == str(p) and len(ir.provenance["source_sha256"]) == 64
    assert ir.provenance["checkpoint_meta"] == {"epoch": 3}
    assert ir.dataset == {"name": "toy", "kind": "digits"}
    assert ir.split == {"seed": 0, "test_fraction": 0.1}
    assert ir.spec == spec
    compare(m, imgs, ir)
    assert disagreements(ir, m, imgs) == 0
    # a wrong threshold is visible as disagreements
    t = ir.layers[3].thresholds
    ir.layers[3].thresholds = np.where(t > 0, 0, t)
    assert disagreements(ir, m, imgs) > 0


def test_load_model_any_tells_files_apart_by_content(tmp_path):
    spec = spec_of((1, 3, 3), [{"type": "fc", "out_features": 5}], 3, quant=DIGITS)
    p, m, imgs = _trained(tmp_path, spec)
    disguised_ck = tmp_path / "model.bnn"
    os.replace(p, disguised_ck)
    ir, ck = load_model_any(str(disguised_ck))
    assert ck is not None and ck["spec"] == spec
    disguised_ir = tmp_path / "exported.pt"
    ir.save(str(disguised_ir))
    ir2, ck2 = load_model_any(str(disguised_ir))
    assert ck2 is None and ir2.header() == ir.header()
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError, match="neither"):
        load_model_any(str(tmp_path / "junk.pt"))
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model_any(str(tmp_path / "missing.pt"))
    with pytest.raises(ModelFileError, match="already an exported IR"):
        export_checkpoint(str(disguised_ir))


# -- refusals -------------------------------------------------------------------------------

def test_binary_zero_padding_is_refused():
    spec = spec_of((1, 4, 4), [{"type": "conv", "out_channels": 2, "kernel": 3, "stride": 1,
                                "padding": 1, "pad_value": 0}], 2, quant=BIT_IN)
    with pytest.raises(ExportError, match=r"layer 0 \(conv\): zero padding on a binary "
                                          r"feature map.*ternary") as e:
        export_model(build_model(spec), self_check=0)
    assert "-1 or +1" in e.value.hint


def test_unrepresentable_integer_pad_value_is_refused():
    spec = spec_of((1, 4, 4), [{"type": "conv", "out_channels": 2, "kernel": 3, "stride": 1,
                                "padding": 1, "pad_value": -1}], 2, quant=U8)
    with pytest.raises(ExportError, match=r"layer 0 \(conv\): pad value -1 is not "
                                          r"representable.*unsigned"):
        export_model(build_model(spec), self_check=0)


def test_non_power_of_two_input_scale_is_refused():
    spec = spec_of((1, 2, 2), [], 2, quant=U8)
    spec["input"]["scale_log2"] = -7.5           # x * 2**-7.5: not exact in float
    with pytest.raises(ExportError, match="power of two"):
        export_model(build_model(spec), self_check=0)


def test_inexact_first_layer_is_refused():
    q = {"bits": 16, "signed": True, "offset": 0, "scale_log2": -15}
    spec = spec_of((64, 3, 3), [{"type": "conv", "out_channels": 1, "kernel": 3, "stride": 1,
                                 "padding": 1, "pad_value": 32767}], 2, quant=q)
    with pytest.raises(ExportError, match=r"layer 0 \(conv\).*2\*\*24"):
        export_model(build_model(spec), self_check=0)


def test_non_binary_activation_and_odd_norms_are_refused():
    spec = spec_of((1, 2, 3), [{"type": "fc", "out_features": 4}], 2)
    m = build_model(spec)
    m.blocks[0].act = nn.ReLU()
    with pytest.raises(ExportError, match=r"layer 0 \(fc\): hidden activation ReLU is not binary"):
        export_model(m, self_check=0)

    class PositionDependent(nn.Module):
        def forward(self, x):
            return x - torch.arange(x.shape[0], dtype=x.dtype).view(-1, 1) * 1e-3
    m = build_model(spec)
    m.blocks[0].norm = PositionDependent()
    with pytest.raises(ExportError, match="different floats .* different positions"):
        export_model(m, self_check=0)

    class NotMonotone(nn.Module):
        def forward(self, x):
            return 1.0 - x * x
    m = build_model(spec)
    m.blocks[0].norm = NotMonotone()
    with pytest.raises(ExportError, match="not monotone"):
        export_model(m, self_check=0)


def test_checkpoint_whose_weights_disagree_with_spec(tmp_path, capsys):
    spec = spec_of((1, 3, 3), [{"type": "fc", "out_features": 5}], 3, quant=DIGITS)
    p, m, _ = _trained(tmp_path, spec)
    ck = torch.load(p, weights_only=True)
    ck["state_dict"]["blocks.0.core.weight"] = torch.zeros(4, 9)
    torch.save(ck, p)
    with pytest.raises(ModelFileError, match=r"blocks.0.core.weight: shape \(4, 9\) but spec "
                                             r"needs \(5, 9\)"):
        export_checkpoint(str(p))
    out = tmp_path / "o.bnn"
    rc = main(["export", "--model", str(p), "-o", str(out), "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and res["ok"] is False and "do not match the architecture" in res["error"]
    assert not out.exists()


def test_checkpoint_with_unknown_layer_or_binary_zero_pad_in_spec(tmp_path):
    spec = spec_of((1, 3, 3), [{"type": "fc", "out_features": 5}], 3, quant=DIGITS)
    p, m, _ = _trained(tmp_path, spec)
    ck = torch.load(p, weights_only=True)
    ck["spec"]["layers"].insert(0, {"type": "avgpool", "kernel": 2})
    torch.save(ck, p)
    with pytest.raises(ModelFileError, match="layer 0: unknown type 'avgpool'"):
        export_checkpoint(str(p))


# -- CLI --------------------------------------------------------------------------------------

def test_cli_export_json(tmp_path, capsys):
    spec = spec_of(CONV_SPEC["shape"], CONV_SPEC["layers"], 10, quant=DIGITS)
    p, m, imgs = _trained(tmp_path, spec)
    out = tmp_path / "sub" / "m.bnn"
    rc = main(["export", "--model", str(p), "-o", str(out), "--self-check", "8", "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and res["ok"] is True
    assert res["output"] == str(out) and res["layers"] == 5 and res["weighted_layers"] == 4
    assert res["num_classes"] == 10 and res["self_check"] == {"images": 8, "disagreements": 0}
    ir = load_ir(str(out))
    assert disagreements(ir, m, imgs) == 0
    # default output name: the model path with .bnn
    rc = main(["export", "--model", str(p)])
    assert rc == 0 and (tmp_path / "model.bnn").exists()
    assert "wrote" in capsys.readouterr().out


def test_cli_export_errors_exit_nonzero_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    out = tmp_path / "o.bnn"
    rc = main(["export", "--model", str(bad), "-o", str(out), "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and res["ok"] is False and "bad.pt" in res["error"] and res["hint"]
    assert not out.exists()
    # end to end in a subprocess: exit status and no traceback
    spec = spec_of((1, 4, 4), [{"type": "conv", "out_channels": 2, "kernel": 3, "stride": 1,
                                "padding": 1, "pad_value": 0}], 2, quant=BIT_IN)
    p = tmp_path / "zp.pt"
    save_checkpoint(str(p), spec=spec, model=build_model(spec), dataset={}, split={}, meta={})
    r = subprocess.run([sys.executable, "-m", "bnnhw", "export", "--model", str(p), "-o",
                        str(out)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "layer 0 (conv): zero padding" in r.stderr and "hint:" in r.stderr
    assert not out.exists()


def test_cli_eval_golden_uses_the_stored_split(tmp_path, capsys):
    from bnnhw.train import data as D
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(120, 1, 3, 3)).astype(np.uint8)
    y = rng.integers(0, 3, size=120)
    npz = tmp_path / "toy.npz"
    np.savez(npz, x_train=x, y_train=y)
    ds = D.load_dataset(str(npz))
    split = D.make_split(ds)
    spec = spec_of((1, 3, 3), [{"type": "fc", "out_features": 5}], 3, quant=DIGITS)
    torch.manual_seed(0)
    m = build_model(spec)
    randomize(m, x[:30], 0)
    ck = tmp_path / "m.pt"
    save_checkpoint(str(ck), spec=spec, model=m, dataset={"name": ds.name}, split=split, meta={})
    rc = main(["eval", "--engine", "golden", "--model", str(ck), "--dataset", str(npz), "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    xt, yt = D.select(ds, "test", split)
    assert rc == 0 and res["disagreements"] == 0 and res["count"] == len(yt) == 12
    with torch.no_grad():
        want = float((m(torch.from_numpy(xt)).argmax(1).numpy() == yt).mean())
    assert res["accuracy"] == want
    irp = tmp_path / "m.bnn"
    assert main(["export", "--model", str(ck), "-o", str(irp)]) == 0
    capsys.readouterr()
    rc = main(["eval", "--engine", "golden", "--model", str(irp), "--dataset", str(npz), "--json"])
    res2 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and res2["disagreements"] is None and res2["accuracy"] == want
    assert res2["count"] == 12                       # the IR carries the holdout
    rc = main(["eval", "--engine", "golden", "--model", str(irp), "--reference", str(ck),
               "--dataset", str(npz), "--json"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["disagreements"] == 0


# -- golden API -----------------------------------------------------------------------------

def test_golden_chunking_empty_batches_and_bad_inputs():
    spec = spec_of(CONV_SPEC["shape"], CONV_SPEC["layers"], 10, quant=DIGITS)
    torch.manual_seed(1)
    m = build_model(spec)
    imgs = images_for(spec, np.random.default_rng(1), n=40)
    randomize(m, imgs, 1)
    ir = export_model(m, self_check=0)
    ref = GoldenModel(ir).run(imgs, collect=True)
    for chunk in (1, 3, 1000):
        got = GoldenModel(ir, chunk=chunk).run(imgs, collect=True)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
        for a, b in zip(got[2], ref[2]):
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # per-layer outputs are channels-last
    assert ref[2][0]["bits"].shape == (len(imgs), 8, 8, 6)
    assert ref[2][2]["bits"].shape == (len(imgs), 1, 1, 8)
    assert ref[2][-1]["scores"].shape == (len(imgs), 10)
    c, s = GoldenModel(ir).run(imgs[:0])
    assert c.shape == (0,) and s.shape == (0, 10)
    assert np.array_equal(GoldenModel(ir).predict(imgs[:, 0]), ref[0])   # (N, H, W) for C=1
    bad = imgs.copy()
    bad[0, 0, 0, 0] = 40                             # 5-bit digits input holds raw 0..31 only
    with pytest.raises(BnnhwError, match=r"raw input values span \[0, 40\]"):
        GoldenModel(ir).run(bad)
    with pytest.raises(BnnhwError, match="takes raw integer values"):
        GoldenModel(ir).run(imgs / 16.0 + 0.01)
    with pytest.raises(BnnhwError, match="shape"):
        GoldenModel(ir).run(imgs[:, :, :4])


def test_golden_layers_are_the_reference_ops():
    """The fast engine equals golden_ops applied by hand, layer by layer."""
    from bnnhw import golden_ops as G
    spec = spec_of((3, 6, 6), [{"type": "conv", "out_channels": 64, "kernel": 3, "stride": 1,
                                "padding": 1, "pad_value": 5},
                               {"type": "conv", "out_channels": 5, "kernel": 2, "stride": 2,
                                "padding": 1, "pad_value": -1}], 4,
                   quant={"bits": 8, "signed": True, "offset": 128, "scale_log2": -7})
    torch.manual_seed(2)
    m = build_model(spec)
    imgs = images_for(spec, np.random.default_rng(2), n=10)
    randomize(m, imgs, 2)
    ir = export_model(m, self_check=0)
    _, scores, per = GoldenModel(ir).run(imgs, collect=True)
    c0, c1, f2 = ir.layers
    x = imgs.astype(np.int64).transpose(0, 2, 3, 1) - 128
    win = G.sliding_window(x, 3, 1, 1, 5)
    acc0 = G.first_layer_acc(win, c0.weights, 8, True)
    assert np.array_equal(acc0, per[0]["acc"])
    # the same accumulator as a plain integer dot product
    pm = layout.from_bits(c0.weights).astype(np.int64)
    assert np.array_equal(acc0, win @ pm.T)
    b0 = G.threshold(acc0, c0.thresholds)
    assert np.array_equal(b0, per[0]["bits"])
    acc1 = G.xnor_popcount(G.sliding_window(b0, 2, 2, 1, 0), c1.weights)
    assert np.array_equal(acc1, per[1]["acc"])
    acc2 = G.xnor_popcount(G.threshold(acc1, c1.thresholds).reshape(len(imgs), -1), f2.weights)
    assert np.array_equal(acc2, per[2]["acc"])
    compare(m, imgs, ir)


@pytest.mark.parametrize("c,k,s,pad", [(5, 3, 1, 1), (30, 3, 2, 1), (64, 2, 1, 0),
                                       (70, 1, 1, 0), (70, 3, 1, 1), (130, 1, 2, 1),
                                       (130, 2, 2, 1)])
def test_golden_packings_agree(c, k, s, pad):
    """Every packing the fast engine picks for conv windows (shift codes across word
    boundaries, word-aligned pixels, flat im2col) gives the reference ops' result."""
    spec = spec_of((1, 5, 5), [{"type": "conv", "out_channels": c, "kernel": 1, "stride": 1,
                                "padding": 0, "pad_value": -1},
                               {"type": "conv", "out_channels": 7, "kernel": k, "stride": s,
                                "padding": pad, "pad_value": 1}], 3)
    torch.manual_seed(c)
    m = build_model(spec)
    imgs = images_for(spec, np.random.default_rng(c), n=12)
    randomize(m, imgs, c)
    ir = compare(m, imgs)
    g = GoldenModel(ir)
    want = {5: "shift", 30: "shift", 64: "shift", 70: "aligned" if k == 1 else "flat",
            130: "aligned" if k == 1 else "flat"}[c]
    assert g._plans[1]["pack"] == want
