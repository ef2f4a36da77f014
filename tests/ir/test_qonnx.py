"""QONNX / Brevitas interop: the importer on the two fixtures (golden vs the reference
execution, layer by layer), QONNX export and round trips of bnnhw networks, qonnx's
own tools on the exported models, and the refused models.

Fixtures (tests/data/qonnx): TFC_1W1A.onnx from the QONNX model zoo (Brevitas, PyTorch
1.7, opset 9; LICENSE.txt / README.md beside it) and CNV_tiny_1W1A.onnx exported by
Brevitas 0.13 (tools/make_qonnx_conv_fixture.py): 2 convs with pools after sign and
before BN, a 16x5x5 map flattened, TensorNorm output.
"""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from bnnhw.cli import main
from bnnhw.errors import BnnhwError
from bnnhw.export import export_model, load_model_any
from bnnhw.golden import GoldenModel
from bnnhw.ir import ir_from_bytes
from bnnhw.qonnx_export import QonnxExportError, export_qonnx, ir_differences
from bnnhw.qonnx_import import QonnxImportError, import_qonnx, is_onnx_file
from bnnhw.qonnx_ref import Reference, raw_to_float, with_qonnx_opsets
from bnnhw.train.layers import ScalarNorm
from bnnhw.train.models import build_model, make_spec

from .nets import images_for, randomize

DATA = Path(__file__).resolve().parent.parent / "data" / "qonnx"
TFC = DATA / "TFC_1W1A.onnx"
CNV = DATA / "CNV_tiny_1W1A.onnx"


def digit_like(n, seed=0, shape=(1, 28, 28)):
    """Test images without a dataset: uniform noise, sparse strokes (0/255 with a few
    grey levels), every constant image and threshold-neighbour greys."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    a = rng.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)
    b = np.where(rng.random((n, c, h, w)) < 0.15, rng.integers(100, 256, (n, c, h, w)), 0)
    k = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None, None, None], (256, c, h, w))
    g = rng.integers(126, 131, size=(n, c, h, w))
    return np.concatenate([a, b.astype(np.uint8), k, g.astype(np.uint8)])


def load(path):
    return onnx.load(str(path))


def nchw_to_last(a):
    return np.moveaxis(np.asarray(a), 1, -1) if np.ndim(a) == 4 else np.asarray(a)


def assert_same_order(gold, ref):
    """The integer scores order the classes exactly as the float reference scores."""
    gi = np.sign(gold[:, :, None] - gold[:, None, :])
    ri = np.sign(ref[:, :, None] - ref[:, None, :])
    assert np.array_equal(gi, ri)


# -- the TFC fixture ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tfc_ir():
    return import_qonnx(str(TFC))


def test_tfc_imports_as_a_1bit_input_tfc(tfc_ir):
    ir = tfc_ir
    assert is_onnx_file(str(TFC))
    assert ir.input.bits == 1 and ir.input.threshold == 128   # 2*raw/255 - 1 >= 0 in float32
    assert [(l.kind, l.mw, l.mh) for l in ir.layers] == [
        ("fc", 784, 64), ("fc", 64, 64), ("fc", 64, 64), ("fc", 64, 10)]
    assert ir.output_layer.score_kind == "popcount"       # TensorNorm scale > 0
    assert ir.provenance["self_check"] == {"images": 66, "disagreements": 0}
    assert sum(int((l.direction < 0).sum()) for l in ir.layers[:-1]) > 0


def test_tfc_golden_equals_reference_layer_by_layer(tfc_ir):
    imgs = digit_like(300)
    ref = Reference(load(TFC))
    # BipolarQuant outputs of the three hidden layers and the scores (fixture's names)
    outs = ref.run_float(raw_to_float(imgs), ["37", "45", "53", "61", "74"])
    cls, scores, per = GoldenModel(tfc_ir).run(imgs, collect=True)
    assert np.array_equal(tfc_ir.input.quantize(imgs).reshape(len(imgs), -1), outs[0] > 0)
    for i in range(3):
        assert np.array_equal(per[i]["bits"].astype(bool), outs[i + 1] > 0)
    assert np.array_equal(cls, np.argmax(outs[4], axis=1))
    assert_same_order(scores, outs[4])
    # a threshold one off is visible
    bad = import_qonnx(load(TFC), self_check=0)
    bad.layers[1].thresholds = bad.layers[1].thresholds + 1
    b2 = GoldenModel(bad).run(imgs, collect=True)[2]
    assert not np.array_equal(b2[1]["bits"].astype(bool), outs[2] > 0)


def test_tfc_agrees_with_qonnx_execute_onnx(tfc_ir):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model
    m = cleanup_model(ModelWrapper(str(TFC)))
    imgs = digit_like(8, seed=3)[::9]
    iname, oname = m.graph.input[0].name, m.graph.output[0].name
    out = np.concatenate([execute_onnx(m, {iname: raw_to_float(imgs[i:i + 1])})[oname]
                          for i in range(len(imgs))])
    assert np.array_equal(GoldenModel(tfc_ir).predict(imgs), out.argmax(1))


def test_onnx_reference_batchnorm_momentum_quirk_is_replaced():
    """onnx.reference computes an opset-9 BN carrying `momentum` with batch statistics;
    bnnhw's reference gives every image the same result alone or in any batch."""
    imgs = digit_like(20, seed=5)
    ref = Reference(load(TFC))
    batch = ref.scores(imgs)
    alone = np.concatenate([ref.scores(imgs[i:i + 1]) for i in range(0, len(imgs), 37)])
    assert np.array_equal(batch[::37], alone)


def test_negative_tensornorm_scale_turns_argmax_into_argmin():
    m = load(TFC)
    for t in m.graph.initializer:
        if t.name == "features.15.weight":
            t.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(t), t.name))
    ir = import_qonnx(m)
    pos = import_qonnx(load(TFC), self_check=0)
    out = ir.output_layer
    assert out.score_kind == "popcount" and np.all(out.direction == -1)
    assert np.array_equal(out.weights, 1 - pos.output_layer.weights)
    imgs = digit_like(100, seed=1)
    ref = Reference(m).scores(imgs)
    g = GoldenModel(ir).run(imgs)
    assert np.array_equal(g[0], ref.argmax(1))
    assert_same_order(g[1], ref)


@pytest.mark.slow
def test_tfc_on_the_mnist_test_set(tfc_ir):
    """The full MNIST test set (needs `bnnhw data mnist`): accuracy near the published
    93.17 %, 0 disagreements with the reference execution."""
    from bnnhw.train import data as D
    ds = D.load_dataset("mnist")
    x, y = D.select(ds, "test", D.make_split(ds))
    assert len(x) == 10000
    g = GoldenModel(tfc_ir).predict(x)
    r = Reference(load(TFC)).predict(x)
    assert int((g != r).sum()) == 0
    assert abs(float((g == y).mean()) - 0.9317) < 0.005


# -- the Brevitas conv fixture ------------------------------------------------------

@pytest.fixture(scope="module")
def cnv_ir():
    return import_qonnx(str(CNV))


def test_conv_fixture_structure(cnv_ir):
    ir = cnv_ir
    assert [l.kind for l in ir.layers] == ["conv", "maxpool", "conv", "maxpool", "fc"]
    assert ir.layers[4].in_shape == (5, 5, 16)
    assert set(ir.layers[1].pool_op) == {"or"}                   # pool after sign
    pool2, conv2 = ir.layers[3], ir.layers[2]
    assert np.array_equal(pool2.pool_op == "and", conv2.direction < 0)   # pool before BN
    assert (conv2.direction < 0).any() and (ir.layers[0].direction < 0).any()


def test_conv_fixture_golden_equals_reference_layer_by_layer(cnv_ir):
    imgs = digit_like(12, seed=2)[::4]
    ref = Reference(load(CNV))
    names = ["_symbolic_2", "max_pool2d", "_symbolic_4", "add_1"]
    outs = ref.run_float(raw_to_float(imgs), names)
    cls, scores, per = GoldenModel(cnv_ir).run(imgs, collect=True)
    assert np.array_equal(per[0]["bits"].astype(bool), nchw_to_last(outs[0]) > 0)
    assert np.array_equal(per[1]["bits"].astype(bool), nchw_to_last(outs[1]) > 0)
    assert np.array_equal(per[3]["bits"].astype(bool), nchw_to_last(outs[2]) > 0)
    assert np.array_equal(cls, outs[3].argmax(1))
    assert_same_order(scores, outs[3])
    # flatten order matters: the fc on a (c, h, w) instead of (h, w, c) order disagrees
    wrong = import_qonnx(load(CNV), self_check=0)
    fc = wrong.layers[4]
    fc.weights = np.ascontiguousarray(fc.weights.reshape(10, 16, 5, 5).transpose(0, 2, 3, 1)
                                      .reshape(10, 400))
    assert not np.array_equal(GoldenModel(wrong).run(imgs)[1], scores)


# -- export and round trips ------------------------------------------------------------

def _fix_last_norm(model, scale):
    for b in model.blocks:
        if isinstance(b.norm, ScalarNorm):
            with torch.no_grad():
                b.norm.weight.fill_(scale)
                b.norm.running_var.fill_(1.0)
                b.norm.running_mean.fill_(0.25)


@pytest.mark.parametrize("arch,quant,last_scale,pool_order", [
    ("tfc", {"bits": 1, "threshold": 128}, 0.75, "after_sign"),
    ("tfc", {"bits": 8, "signed": False, "offset": 0, "scale_log2": -8}, -0.5, "after_sign"),
    ("cnv", {"bits": 8, "signed": True, "offset": 128, "scale_log2": -7}, 0.5, "after_sign"),
    ("cnv", {"bits": 1, "threshold": 100}, -1.0, "before_bn"),
])
def test_bnnhw_networks_round_trip_through_qonnx(tmp_path, arch, quant, last_scale, pool_order):
    # an integer-input fc evaluates MW * 255 * 2 + 1 accumulator values per channel: keep MW small
    shape = ((1, 28, 28) if quant["bits"] == 1 else (1, 10, 10)) if arch == "tfc" else (3, 32, 32)
    spec = make_spec(arch, input_shape=shape, num_classes=10, input_quant=quant,
                     width=0.25 if arch == "tfc" else 0.0625, pool_order=pool_order)
    torch.manual_seed(0)
    model = build_model(spec)
    imgs = images_for(spec, np.random.default_rng(0), n=24)
    randomize(model, imgs, seed=1)
    _fix_last_norm(model, last_scale)
    ir = export_model(model, dataset={"name": "toy"}, split={"seed": 3}, self_check=8)
    m = export_qonnx(ir, str(tmp_path / "m.onnx"), self_check=8)
    back = import_qonnx(str(tmp_path / "m.onnx"))
    assert ir_differences(ir, back) == []
    assert back.dataset == {"name": "toy"} and back.split == {"seed": 3}
    assert ir_from_bytes(back.to_bytes()).layers[0].name == ir.layers[0].name
    # torch == golden == reference on images, including every constant image
    c, h, w = shape
    k = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None, None, None], (256, c, h, w))
    test = np.concatenate([imgs, k[::5]])
    with torch.no_grad():
        t = model(torch.from_numpy(np.ascontiguousarray(test))).argmax(1).numpy()
    g = GoldenModel(ir).run(test)
    r = Reference(m).scores(test)
    assert np.array_equal(g[0], t) and np.array_equal(g[0], r.argmax(1))
    assert_same_order(g[1], r)
    ops = {n.op_type for n in m.graph.node}
    assert {"BipolarQuant", "BatchNormalization"} <= ops
    assert ("Conv" in ops) == (arch == "cnv") and ("MaxPool" in ops) == (arch == "cnv")
    assert ("Quant" in ops) == (quant["bits"] > 1)


def test_exported_model_loads_and_cleans_up_with_qonnx(tmp_path, cnv_ir, tfc_ir):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model
    imgs = digit_like(4, seed=4)[::40]
    for ir in (tfc_ir, cnv_ir):
        p = str(tmp_path / "x.onnx")
        export_qonnx(ir, p, self_check=0)
        mw = cleanup_model(ModelWrapper(p))
        assert "Transpose" not in {n.op_type for n in mw.graph.node}   # folded by cleanup
        iname, oname = mw.graph.input[0].name, mw.graph.output[0].name
        out = np.concatenate([execute_onnx(mw, {iname: raw_to_float(imgs[i:i + 1])})[oname]
                              for i in range(len(imgs))])
        assert np.array_equal(GoldenModel(ir).predict(imgs), out.argmax(1))
        assert ir_differences(ir, import_qonnx(mw.model, self_check=0)) == []


def test_fixture_round_trips(tfc_ir, cnv_ir):
    for ir in (tfc_ir, cnv_ir):
        m = export_qonnx(ir, None, self_check=0)
        assert ir_differences(ir, import_qonnx(m)) == []


def test_ir_differences_sees_a_changed_bit(tfc_ir):
    other = import_qonnx(load(TFC), self_check=0)
    assert ir_differences(tfc_ir, other) == []
    other.layers[2].weights[3, 5] ^= 1
    assert ir_differences(tfc_ir, other) == ["fc2.weights"]


def test_rank_table_and_binary_padding_are_refused():
    spec = make_spec("tfc", input_shape=(1, 4, 4), num_classes=3,
                     input_quant={"bits": 1, "threshold": 128}, width=0.1, last_norm="bn")
    torch.manual_seed(0)
    model = build_model(spec)
    randomize(model, images_for(spec, np.random.default_rng(0), n=8), seed=2)
    ir = export_model(model, self_check=0)
    assert ir.output_layer.score_kind == "rank_table"
    with pytest.raises(QonnxExportError, match="rank table"):
        export_qonnx(ir, None)
    spec = make_spec("vgg", input_shape=(1, 8, 8), num_classes=3,
                     input_quant={"bits": 8, "signed": False, "offset": 0, "scale_log2": -8},
                     width=0.02, last_norm="scalar")
    model = build_model(spec)
    with pytest.raises(QonnxExportError, match="binary padding"):
        export_qonnx(export_model(model, self_check=0), None)


# -- the CLI -------------------------------------------------------------------------

def test_cli_export_import_and_eval(tmp_path, capsys):
    bnn = tmp_path / "tfc.bnn"
    assert main(["export", "--json", "--model", str(TFC), "-o", str(bnn)]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["ok"] and r["self_check"] == {"images": 66, "disagreements": 0}
    out = tmp_path / "back.onnx"
    assert main(["export", "--json", "--model", str(bnn), "--format", "qonnx",
                 "-o", str(out)]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["ok"] and r["format"] == "qonnx" and r["ops"]["BipolarQuant"] == 8
    a, _ = load_model_any(str(bnn))
    b, ck = load_model_any(str(out))          # ONNX told apart by content, not suffix
    assert ck is None and ir_differences(a, b) == []
    renamed = tmp_path / "model.dat"
    renamed.write_bytes(out.read_bytes())
    assert ir_differences(a, load_model_any(str(renamed))[0]) == []


# -- refused models ------------------------------------------------------------------

def _edit(fn):
    m = load(TFC)
    fn(m)
    return m


def _node(m, out):
    return next(n for n in m.graph.node if n.output[0] == out)


def _set_init(m, name, arr):
    for t in m.graph.initializer:
        if t.name == name:
            t.CopyFrom(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))


def _w1a2(m):
    n = _node(m, "45")              # hidden BipolarQuant -> 2-bit Quant
    n.op_type = "Quant"
    del n.input[:]
    n.input.extend(["43", "q_s", "q_z", "q_b"])
    n.attribute.extend([helper.make_attribute("signed", 1), helper.make_attribute("narrow", 0),
                        helper.make_attribute("rounding_mode", "ROUND")])
    for nm, v in (("q_s", 1.0), ("q_z", 0.0), ("q_b", 2.0)):
        m.graph.initializer.append(numpy_helper.from_array(np.float32(v), nm))


def _plain_1bit_quant(m):
    _w1a2(m)
    _set_init(m, "q_b", np.float32(1.0))


def _relu(m):
    n = _node(m, "45")
    n.op_type, n.domain = "Relu", ""
    del n.input[1:]


def _float_graph(m):
    n = _node(m, "45")               # the BipolarQuant of a hidden layer becomes Identity
    n.op_type, n.domain = "Identity", ""
    del n.input[1:]


def _two_bit_weights(m):
    """Layer 0's weights ternary {-1, 0, +1} (its BipolarQuant replaced by Identity)."""
    w = np.where(np.arange(784) % 3 == 0, 0.0, 1.0)[None].repeat(64, 0)
    _set_init(m, "38", w * np.where(np.arange(64) % 2 == 0, 1.0, -1.0)[:, None])
    n = _node(m, "40")
    n.op_type, n.domain = "Identity", ""
    del n.input[1:]


def _weight_scale(m):
    _set_init(m, "39", np.float32(0.1))


def _input_cnv_style(m):
    """Brevitas CNV's 8-bit input: 2x - 1, then Quant(scale 2^-7, 8 bits signed)."""
    n = _node(m, "37")
    n.op_type = "Quant"
    del n.input[:]
    n.input.extend(["35", "q_s", "q_z", "q_b"])
    n.attribute.extend([helper.make_attribute("signed", 1), helper.make_attribute("narrow", 0),
                        helper.make_attribute("rounding_mode", "ROUND")])
    for nm, v in (("q_s", 2.0 ** -7), ("q_z", 0.0), ("q_b", 8.0)):
        m.graph.initializer.append(numpy_helper.from_array(np.float32(v), nm))


def _branch(m):
    n = _node(m, "50")               # layer 1's MatMul reads layer 0's activation AND ...
    add = helper.make_node("Add", ["50", "45"], ["50b"], name="skip")
    bn = _node(m, "51")
    bn.input[0] = "50b"
    idx = list(m.graph.node).index(n)
    m.graph.node.insert(idx + 1, add)


REFUSED = [
    (_w1a2, "Quant.*2 bits.*W1A1"),
    (_plain_1bit_quant, r"not bipolar.*\{-1, 0\}"),
    (_relu, "op Relu is not supported"),
    (_float_graph, "no quantiser between .*MatMul.*float activation"),
    (_two_bit_weights, "weights are not binary"),
    (_weight_scale, "not powers of two"),
    (_input_cnv_style, "input quantiser .*Quant.*neither two values"),
    (_branch, "skip|branches"),
]


@pytest.mark.parametrize("edit,msg", REFUSED, ids=[f.__name__ for f, _ in REFUSED])
def test_unsupported_models_are_clear_errors(edit, msg):
    m = _edit(edit)
    with pytest.raises(QonnxImportError, match=msg) as e:
        import_qonnx(m)
    assert e.value.hint


def test_cli_refusal_is_json_not_a_traceback(tmp_path, capsys):
    p = tmp_path / "w1a2.onnx"
    onnx.save(_edit(_w1a2), str(p))
    assert main(["eval", "--json", "--model", str(p), "--dataset", "digits",
                 "--engine", "golden"]) == 1
    cap = capsys.readouterr()
    r = json.loads(cap.out.strip().splitlines()[-1])
    assert r["ok"] is False and "W1A1" in r["error"] and "Traceback" not in cap.err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07\x12garbage")
    with pytest.raises(BnnhwError, match="not a readable ONNX model"):
        load_model_any(str(junk))


def test_opset_of_legacy_brevitas_domain_is_added():
    m = load(TFC)
    assert [o.domain for o in m.opset_import] == [""]
    assert "onnx.brevitas" in [o.domain for o in with_qonnx_opsets(m).opset_import]


def test_a_1bit_quant_made_bipolar_by_affine_ops_is_imported():
    """Quant(1 bit, unsigned) gives {0, 1}; followed by Mul 2, Sub 1 it is exactly +-1."""
    def edit(m):
        _w1a2(m)
        _set_init(m, "q_b", np.float32(1.0))
        n = _node(m, "45")
        n.output[0] = "45q"
        for a in n.attribute:
            if a.name == "signed":
                a.i = 0
        m.graph.initializer.extend([numpy_helper.from_array(np.float32(2.0), "two"),
                                    numpy_helper.from_array(np.float32(1.0), "one")])
        i = list(m.graph.node).index(n)
        m.graph.node.insert(i + 1, helper.make_node("Mul", ["45q", "two"], ["45m"]))
        m.graph.node.insert(i + 2, helper.make_node("Sub", ["45m", "one"], ["45"]))
    m = _edit(edit)
    ir = import_qonnx(m)
    imgs = digit_like(200, seed=7)
    ref = Reference(m).run_float(raw_to_float(imgs), ["45", "74"])
    cls, _, per = GoldenModel(ir).run(imgs, collect=True)
    assert set(np.unique(ref[0]).tolist()) == {-1.0, 1.0}
    assert np.array_equal(per[0]["bits"].astype(bool), ref[0] > 0)
    assert np.array_equal(cls, ref[1].argmax(1))
    # round(x) >= 1 is x > 0.5 (half to even), not BipolarQuant's x >= 0: other thresholds
    plain = import_qonnx(load(TFC), self_check=0)
    assert not np.array_equal(ir.layers[0].thresholds, plain.layers[0].thresholds)
