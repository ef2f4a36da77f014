"""The score representation of an output layer, shared by the front ends (the torch
exporter :mod:`bnnhw.export` and the QONNX importer :mod:`bnnhw.qonnx_import`)."""
from __future__ import annotations

import numpy as np

from .errors import ExportError

__all__ = ["scores_from_values"]


def scores_from_values(g, where):
    """Score representation from the output norm's float32 values ``g[p - lo, c]``
    on every reachable accumulator value: ``("popcount", None, dirs)`` when all
    classes share one strictly monotone function, else ``("rank_table", table,
    dirs)`` (dense ranks of all values; argmax with ties to the lowest index
    equals numpy/torch argmax on the floats)."""
    n, mh = g.shape
    if np.isnan(g).any():
        raise ExportError(f"{where}: the output norm gives NaN scores",
                          "check its running_var/weight for NaN or negative variance")
    one_fn = bool(np.all(g == g[:, :1]))
    if one_fn and n > 1 and np.all(g[1:, 0] > g[:-1, 0]):
        return "popcount", None, np.ones(mh, np.int8)
    if one_fn and n > 1 and np.all(g[1:, 0] < g[:-1, 0]):
        return "popcount", None, -np.ones(mh, np.int8)
    _, inv = np.unique(g.ravel(), return_inverse=True)       # dense ranks; -0.0 == 0.0
    table = inv.reshape(n, mh).T.astype(np.int32)
    return "rank_table", np.ascontiguousarray(table), np.ones(mh, np.int8)
