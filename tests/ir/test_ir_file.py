"""The IR file: save/load round trips, and clear errors for damaged or foreign files."""
import io
import json
import os
import zipfile

import numpy as np
import pytest
import torch

from bnnhw.errors import ModelFileError
from bnnhw.export import export_model
from bnnhw.golden import GoldenModel
from bnnhw.ir import VERSION, Dense, MaxPool, NetworkIR, is_ir_file, load_ir
from bnnhw.train.models import build_model, make_spec

from .nets import images_for, randomize


@pytest.fixture(scope="module")
def small_ir():
    spec = make_spec("tfc", input_shape=(3, 7, 6), num_classes=4,
                     input_quant={"bits": 8, "signed": True, "offset": 128, "scale_log2": -7},
                     layers=[{"type": "conv", "out_channels": 5, "kernel": 3, "stride": 1,
                              "padding": 1, "pad_value": 0},
                             {"type": "maxpool", "kernel": 2},
                             {"type": "conv", "out_channels": 70, "kernel": 2, "stride": 1,
                              "padding": 1, "pad_value": 1},
                             {"type": "fc", "out_features": 9},
                             {"type": "fc", "out_features": 4}],
                     pool_order="before_bn", last_norm="bn")
    torch.manual_seed(3)
    model = build_model(spec)
    imgs = images_for(spec, np.random.default_rng(3))
    randomize(model, imgs, 3)
    return export_model(model, dataset={"name": "toy", "classes": ["a", "b", "c", "d"]},
                        split={"seed": 0, "fingerprint": "x"}, meta={"epoch": 2},
                        source="toy.pt"), imgs


def test_save_load_round_trip_is_identical(small_ir, tmp_path):
    ir, imgs = small_ir
    p = tmp_path / "m.bnn"
    ir.save(str(p))
    assert is_ir_file(str(p))
    ir2 = load_ir(str(p))
    assert ir2.header() == ir.header()
    a1, a2 = ir.arrays(), ir2.arrays()
    assert sorted(a1) == sorted(a2)
    for k in a1:
        assert a1[k].dtype == a2[k].dtype and np.array_equal(a1[k], a2[k])
    for l1, l2 in zip(ir.layers, ir2.layers):
        assert type(l1) is type(l2) and l1.name == l2.name
        if isinstance(l1, Dense):
            assert np.array_equal(l1.weights, l2.weights)
            assert l1.thresholds is None or np.array_equal(l1.thresholds, l2.thresholds)
        else:
            assert list(l1.pool_op) == list(l2.pool_op)
    assert ir2.dataset["name"] == "toy" and ir2.split == {"seed": 0, "fingerprint": "x"}
    assert ir2.spec["layers"][2]["out_channels"] == 70
    assert ir2.provenance["source"] == "toy.pt"
    assert ir2.provenance["checkpoint_meta"] == {"epoch": 2}
    c1, s1 = GoldenModel(ir).run(imgs)
    c2, s2 = GoldenModel(ir2).run(imgs)
    assert np.array_equal(c1, c2) and np.array_equal(s1, s2)
    # saving again gives the same bytes apart from nothing: deterministic serialisation
    assert ir2.to_bytes() == ir.to_bytes()


def test_header_describes_layers_and_arrays(small_ir):
    ir, _ = small_ir
    h = ir.header()
    assert h["format"] == "bnnhw.ir" and h["version"] == VERSION
    assert h["input"] == {"channels": 3, "height": 7, "width": 6, "bits": 8, "signed": True,
                          "offset": 128, "scale_log2": -7, "raw_min": 0, "raw_max": 255,
                          "raw_dtype": "uint8", "raw_layout": "NCHW"}
    kinds = [l["kind"] for l in h["layers"]]
    assert kinds == ["conv", "maxpool", "conv", "fc", "fc"]
    c0 = h["layers"][0]
    assert c0["input"] == {"kind": "int", "bits": 8, "signed": True}
    assert c0["acc"]["domain"] == "int" and c0["pad_value"] == 0
    assert c0["mw"] == 27 and c0["out_shape"] == [7, 6, 5]
    c2 = h["layers"][2]
    assert c2["input"] == {"kind": "bits"} and c2["pad_value"] == 1
    assert c2["acc"] == {"domain": "popcount", "min": 0, "max": 20}
    assert h["layers"][-1]["activation"] == "scores"
    assert h["layers"][-1]["scores"]["kind"] in ("popcount", "rank_table")
    for name, meta in h["arrays"].items():
        assert set(meta) == {"dtype", "shape", "sha256"}
    assert h["arrays"]["conv2.weights"]["shape"] == [70, 1]
    assert h["arrays"]["conv2.weights"]["dtype"] == "<u8"
    assert h["arrays"]["maxpool1.pool_op"]["dtype"] == "|u1"


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _rezip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    return buf.getvalue()


def _with_header(data, edit):
    """Rewrite the header member (valid zip, valid npy) after ``edit(header_dict)``."""
    m = _members(data)
    head = json.loads(np.load(io.BytesIO(m["header.npy"])).tobytes())
    edit(head)
    b = io.BytesIO()
    np.save(b, np.frombuffer(json.dumps(head).encode(), dtype=np.uint8))
    m["header.npy"] = b.getvalue()
    return _rezip(m)


def _with_array(data, name, arr):
    m = _members(data)
    b = io.BytesIO()
    np.save(b, arr)
    m[name + ".npy"] = b.getvalue()
    return _rezip(m)


def _load_bytes(tmp_path, data, name="m.bnn"):
    p = tmp_path / name
    p.write_bytes(data)
    return load_ir(str(p))


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_a_clear_error(small_ir, tmp_path, cut):
    data = small_ir[0].to_bytes()
    with pytest.raises(ModelFileError, match="truncated or corrupted|corrupted"):
        _load_bytes(tmp_path, data[:int(len(data) * cut)])


def test_flipped_byte_in_header_or_weights_is_detected(small_ir, tmp_path):
    data = small_ir[0].to_bytes()
    i = data.index(b'"format"')
    flipped = bytearray(data)
    flipped[i + 2] ^= 0x01
    with pytest.raises(ModelFileError, match="corrupted"):
        _load_bytes(tmp_path, bytes(flipped))
    # a flipped bit inside an array member: zip CRC or the header checksum catches it
    ir = small_ir[0]
    w = ir.arrays()["conv2.weights"].copy()
    w[3, 0] ^= np.uint64(1)
    with pytest.raises(ModelFileError, match="checksum"):
        _load_bytes(tmp_path, _with_array(ir.to_bytes(), "conv2.weights", w))
    raw = bytearray(ir.to_bytes())
    j = raw.index(ir.arrays()["conv2.weights"].tobytes()[:16])
    raw[j] ^= 0x10
    with pytest.raises(ModelFileError, match="corrupted"):
        _load_bytes(tmp_path, bytes(raw))


def test_version_mismatch_is_reported(small_ir, tmp_path):
    data = _with_header(small_ir[0].to_bytes(), lambda h: h.__setitem__("version", VERSION + 1))
    with pytest.raises(ModelFileError, match=f"IR version {VERSION + 1}.*reads version {VERSION}"):
        _load_bytes(tmp_path, data)


def test_inconsistent_shapes_are_reported(small_ir, tmp_path):
    data = small_ir[0].to_bytes()

    def wrong_mw(h):
        h["layers"][3]["mw"] += 1
    with pytest.raises(ModelFileError, match="fc3"):
        _load_bytes(tmp_path, _with_header(data, wrong_mw))

    def wrong_chain(h):
        h["layers"][2]["in_shape"] = [4, 3, 5]
    with pytest.raises(ModelFileError, match="conv2: input shape"):
        _load_bytes(tmp_path, _with_header(data, wrong_chain))

    ir = small_ir[0]
    t = ir.arrays()["fc3.thresholds"].copy()
    t[0] = 10_000
    d2 = _with_array(data, "fc3.thresholds", t)

    def fix_hash(h):
        import hashlib
        h["arrays"]["fc3.thresholds"]["sha256"] = hashlib.sha256(t.tobytes()).hexdigest()
    with pytest.raises(ModelFileError, match="fc3: thresholds outside"):
        _load_bytes(tmp_path, _with_header(d2, fix_hash))

    def missing_array(h):
        del h["arrays"]["conv0.direction"]
    with pytest.raises(ModelFileError, match="do not match the header"):
        _load_bytes(tmp_path, _with_header(data, missing_array))

    def unknown_kind(h):
        h["layers"][1]["kind"] = "avgpool"
    with pytest.raises(ModelFileError, match="unknown kind 'avgpool'"):
        _load_bytes(tmp_path, _with_header(data, unknown_kind))


def test_foreign_files_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_ir(str(tmp_path / "nope.bnn"))
    with pytest.raises(ModelFileError, match="not a readable IR"):
        _load_bytes(tmp_path, b"hello world, not a model")
    b = io.BytesIO()
    np.savez(b, x=np.arange(3))
    with pytest.raises(ModelFileError, match="no header"):
        _load_bytes(tmp_path, b.getvalue())
    b = io.BytesIO()
    np.savez(b, header=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(ModelFileError, match="not a bnnhw IR"):
        _load_bytes(tmp_path, b.getvalue())
    b = io.BytesIO()
    np.savez(b, header=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="corrupted"):
        _load_bytes(tmp_path, b.getvalue())


def test_save_is_atomic(small_ir, tmp_path, monkeypatch):
    ir = small_ir[0]
    p = tmp_path / "m.bnn"
    p.write_bytes(b"previous content")

    def boom(self, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", lambda fd: boom(None))
    from bnnhw.errors import BnnhwError
    with pytest.raises(BnnhwError, match="cannot write .*No space left on device"):
        ir.save(str(p))
    assert p.read_bytes() == b"previous content"
    assert sorted(os.listdir(tmp_path)) == ["m.bnn"]


def test_invalid_ir_is_not_saved(small_ir, tmp_path):
    ir = small_ir[0]
    bad = NetworkIR(input=ir.input, layers=list(ir.layers[:-1]), num_classes=ir.num_classes)
    with pytest.raises(ModelFileError):
        bad.save(str(tmp_path / "bad.bnn"))
    assert not (tmp_path / "bad.bnn").exists()


def test_layers_expose_hardware_facts(small_ir):
    ir, _ = small_ir
    c0, pool, c2, f3, f4 = ir.layers
    assert isinstance(pool, MaxPool) and pool.kernel == 2 and pool.pool_op.shape == (5,)
    assert c0.domain == "int" and c0.acc_min == -27 * 128 and c0.acc_max == 27 * 128
    assert c0.acc_bits == 13  # [-3456, 3457] fits [-4096, 4095]
    assert c2.domain == "popcount" and c2.mw == 2 * 2 * 5 and c2.mh == 70
    assert f3.in_shape == (4, 4, 70) and f3.mw == 4 * 4 * 70
    assert f4.is_output and f4.thresholds is None
    lo, hi = f4.score_range
    assert lo <= hi
