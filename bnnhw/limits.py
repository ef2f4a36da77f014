"""Input limits, checked before anything is allocated (user docs: ``docs/reliability.md``).

A hostile or mistaken input file must not make bnnhw allocate more than a few GB or run
for minutes before it answers; every limit below is a clear :class:`BnnhwError` (or its
subclass passed in) naming the value and the limit.  The numbers are far above what the
networks and datasets bnnhw targets need (CNV: 1.5 M weights, CIFAR-10: 150 MB).
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from .errors import BnnhwError

MAX_CLASSES = 65_536                  # classes of a dataset / outputs of a network
MAX_IMAGE_SIDE = 4096                 # pixels, each of height and width
MAX_CHANNELS = 4096                   # channels of an input or a feature map
MAX_LAYER_WIDTH = 65_536              # outputs of one conv/fc layer
MAX_KERNEL = 64
MAX_LAYERS = 1024
MAX_WEIGHTS = 1 << 27                 # all binary weights of a network (~134 M)
MAX_FEATURE_MAP = 1 << 26             # elements of one layer's input or output per image
MAX_ARRAY_BYTES = 4 << 30             # one array of a dataset or IR file, decompressed
MAX_DATASET_BYTES = 8 << 30           # all images of a dataset, decoded

__all__ = ["MAX_CLASSES", "MAX_IMAGE_SIDE", "MAX_CHANNELS", "MAX_LAYER_WIDTH", "MAX_KERNEL",
           "MAX_LAYERS", "MAX_WEIGHTS", "MAX_FEATURE_MAP", "MAX_ARRAY_BYTES",
           "MAX_DATASET_BYTES", "check_image_size", "read_npz"]


def check_image_size(width: int, height: int, where: str, error=BnnhwError) -> None:
    """Images are at most MAX_IMAGE_SIDE pixels on each side (checked from the header)."""
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise error(f"{where} is {width}x{height} pixels; bnnhw takes images of at most "
                    f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}",
                    "resize the images (BNN accelerators take small images, e.g. 32x32)")


def _npy_header(z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, error):
    """(shape, dtype) from the header of one .npy member, reading only the header."""
    from numpy.lib import format as npf
    with z.open(info) as f:
        version = npf.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = npf.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, _fortran, dtype = npf.read_array_header_2_0(f)
        else:                                               # pragma: no cover
            raise error(f"{where}: unsupported .npy version {version}")
    return shape, dtype


def _length(source) -> int:
    """Bytes in a path or a seekable file object."""
    if hasattr(source, "seek"):
        pos = source.seek(0, 2)
        source.seek(0)
        return pos
    return os.path.getsize(source)


# deflate expands at most ~1032:1; a stored member holds what the archive holds
_DEFLATE_RATIO = 1032


def _max_member_bytes(info: zipfile.ZipInfo, total: int) -> int:
    """Upper bound of a member's real decompressed size, from what the archive can hold
    (the member's own size fields can lie)."""
    held = min(info.file_size, max(0, min(info.compress_size, total)) *
               (1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_RATIO))
    return held


def read_npz(source, names=None, *, where: str, error=BnnhwError,
             max_bytes: int = MAX_ARRAY_BYTES, hint: str = "") -> dict:
    """The arrays ``names`` (None: all) of an ``.npz`` (path or file object), each checked
    before it is read: its header's shape and dtype must fit the member's stored size and
    ``max_bytes`` (so a lying header allocates nothing), no Python objects (never
    unpickled).  Any damage (bad CRC, truncation, bad header) raises ``error``."""
    hint = hint or "write the file again (np.savez) or copy it again"
    try:
        total = _length(source)
        with zipfile.ZipFile(source) as z:
            # named as numpy's NpzFile names them (".npy" dropped where present)
            members = {(i.filename[:-4] if i.filename.endswith(".npy") else i.filename): i
                       for i in z.infolist()}
            wanted = list(members) if names is None else [n for n in names if n in members]
            out = {}
            for n in wanted:
                info = members[n]
                shape, dtype = _npy_header(z, info, f"{where}[{n}]", error)
                if dtype.hasobject:
                    raise error(f"{where}[{n}] holds Python objects, which bnnhw never "
                                "unpickles", "store plain numeric or string arrays")
                size = int(np.prod(shape, dtype=object)) * dtype.itemsize
                stored = _max_member_bytes(info, total)
                if size > max_bytes or size > stored:
                    raise error(f"{where}[{n}]: its header claims {shape} {dtype} "
                                f"({size:,} bytes), "
                                + (f"above bnnhw's limit of {max_bytes:,} bytes"
                                   if size > max_bytes else
                                   f"more than the {stored:,} bytes the file can hold"),
                                hint)
                with z.open(info) as f:
                    out[n] = np.lib.format.read_array(f, allow_pickle=False)
            return out
    except BnnhwError:
        raise
    except MemoryError:
        raise error(f"{where} is too large to read into memory", hint) from None
    except Exception as e:  # noqa: BLE001 - zipfile's and numpy's parsers of an untrusted
        # file raise many types (BadZipFile, EOFError, ValueError, SyntaxError,
        # tokenize.TokenError, NotImplementedError for odd compression ...): all mean damage
        raise error(f"{where} is not a readable .npz file (truncated or corrupted: "
                    f"{type(e).__name__}: {str(e)[:160]})", hint) from None
