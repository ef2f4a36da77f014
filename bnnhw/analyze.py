"""Filter repetition in a binary network (the paper's section 3), measured on the IR.

Binary KxK kernels take at most ``2**(K*K)`` values (512 for 3x3), and a
kernel and its bitwise complement share one popcount:
``popcount(XNOR(x, ~k)) = K*K - popcount(XNOR(x, k))``.  For every conv
layer this module counts, per input channel ``c``, how many distinct 2D
kernels the ``C_out`` output channels use (the denominator is ``C_out`` per
input channel, so a layer's unique fraction is ``sum_c unique_c / (C_in *
C_out)``), with and without merging complements.  For every layer (conv and
fc) it counts whole filters (weight rows) that duplicate or complement an
earlier row, how many of those also have an equal (duplicate) or mirrored
(complement) threshold, i.e. compute a bit-identical or inverted channel, and
constant (dead) channels whose threshold lies outside the accumulator's range.

Random kernels are the contrast: ``n`` independent uniform draws from ``m``
values give ``m * (1 - (1 - 1/m)**n)`` distinct values in expectation
(:func:`expected_unique`).

Kernel bits are read from the IR's weight matrix in ``layout``'s im2col order
(``(ky, kx, c)``, c fastest): kernel (o, c) = ``W[o, (ky*K + kx)*C + c]``.
"""
from __future__ import annotations

import numpy as np

from . import layout
from .ir import Dense, NetworkIR

__all__ = ["kernel_codes", "expected_unique", "analyze_layer", "analyze", "randomized",
           "PAPER_UNIQUE_FRACTION"]

PAPER_UNIQUE_FRACTION = 0.42  # Courbariaux, Hubara et al. 2016, section 3 (CIFAR-10 ConvNet)


def kernel_codes(layer: Dense) -> np.ndarray:
    """``(C_out, C_in)`` integer codes of the 2D kernels: bit ``ky*K + kx`` of code
    ``(o, c)`` is weight bit ``W[o, layout.im2col_index(ky, kx, c, K, C)]``."""
    k = layer.kernel
    c_in = layer.in_shape[-1]
    cols = np.array([[layout.im2col_index(ky, kx, c, k, c_in) for c in range(c_in)]
                     for ky in range(k) for kx in range(k)])                  # (pos, c)
    w = np.asarray(layer.weights, dtype=np.int64)[:, cols]                    # (o, pos, c)
    weights = (1 << np.arange(k * k, dtype=np.int64))[None, :, None]
    return (w * weights).sum(axis=1)


def expected_unique(n: int, m: int) -> float:
    """Expected number of distinct values among ``n`` uniform draws from ``m`` values."""
    return m * (1.0 - (1.0 - 1.0 / m) ** n)


def _unique_per_column(codes: np.ndarray) -> np.ndarray:
    return np.array([len(np.unique(codes[:, c])) for c in range(codes.shape[1])])


def _row_groups(w: np.ndarray):
    """Indices of rows equal to an earlier row, and of rows complementing an earlier row
    (not counting rows that already duplicate one), with the earlier row's index."""
    first: dict[bytes, int] = {}
    dup, comp = [], []
    for i, row in enumerate(w):
        key = np.packbits(row).tobytes()
        if key in first:
            dup.append((i, first[key]))
            continue
        ckey = np.packbits(1 - row).tobytes()
        if ckey in first:
            comp.append((i, first[ckey]))
        first.setdefault(key, i)
    return dup, comp


def analyze_layer(layer: Dense) -> dict:
    """Repetition figures of one conv or fc layer (see the module docstring)."""
    w = np.asarray(layer.weights, dtype=np.uint8)
    out = {"name": layer.name, "kind": layer.kind, "c_out": layer.mh, "mw": layer.mw,
           "input": "bits" if layer.input_bits == 1 else f"int{layer.input_bits}"}
    if layer.kind == "conv":
        k = layer.kernel
        codes = kernel_codes(layer)
        m = 1 << (k * k)
        canon = np.minimum(codes, (m - 1) ^ codes)
        c_in = codes.shape[1]
        n = codes.size
        uniq = int(_unique_per_column(codes).sum())
        uniq_c = int(_unique_per_column(canon).sum())
        out.update(kernel=k, c_in=c_in, kernels=n, unique=uniq, unique_fraction=uniq / n,
                   unique_with_complements=uniq_c, unique_fraction_with_complements=uniq_c / n,
                   random_expected_fraction=expected_unique(layer.mh, m) / layer.mh,
                   random_expected_fraction_with_complements=(
                       expected_unique(layer.mh, m // 2) / layer.mh))
    dup, comp = _row_groups(w)
    t = layer.thresholds
    lo, hi = layer.acc_min, layer.acc_max
    if t is not None:
        # identical channel: same row, same threshold; inverted channel: complement row
        # and acc' = (lo + hi) - acc, so  acc' >= t'  <=>  acc <= lo + hi - t'  <=> not
        # (acc >= lo + hi - t' + 1): the inverse of a channel with threshold lo+hi+1-t'
        same_dup = sum(1 for i, j in dup if t[i] == t[j])
        inv_comp = sum(1 for i, j in comp if t[i] == lo + hi + 1 - t[j])
        always = int((t <= lo).sum())
        never = int((t > hi).sum())
    else:
        same_dup = inv_comp = always = never = None
    out.update(duplicate_filters=len(dup), complement_filters=len(comp),
               identical_channels=same_dup, inverted_channels=inv_comp,
               constant_one_channels=always, constant_zero_channels=never,
               dead_channels=None if t is None else always + never)
    return out


def analyze(ir: NetworkIR) -> dict:
    """Per-layer figures and the conv layers' mean unique fraction beside the paper's 42 %."""
    layers = [analyze_layer(l) for l in ir.layers if isinstance(l, Dense)]
    convs = [l for l in layers if l["kind"] == "conv"]
    summary = {"paper_unique_fraction": PAPER_UNIQUE_FRACTION}
    if convs:
        summary["mean_unique_fraction"] = float(np.mean([l["unique_fraction"] for l in convs]))
        summary["mean_unique_fraction_with_complements"] = float(
            np.mean([l["unique_fraction_with_complements"] for l in convs]))
        summary["mean_random_expected_fraction"] = float(
            np.mean([l["random_expected_fraction"] for l in convs]))
    summary["duplicate_filters"] = sum(l["duplicate_filters"] for l in layers)
    summary["complement_filters"] = sum(l["complement_filters"] for l in layers)
    summary["dead_channels"] = sum(l["dead_channels"] or 0 for l in layers)
    return {"layers": layers, "summary": summary}


def randomized(ir: NetworkIR, seed: int = 0) -> NetworkIR:
    """A copy of ``ir`` with uniformly random weight bits (same shapes and thresholds):
    the contrast for the trained network's figures."""
    import copy
    rng = np.random.default_rng(seed)
    out = copy.deepcopy(ir)
    for l in out.layers:
        if isinstance(l, Dense):
            l.weights = rng.integers(0, 2, l.weights.shape, dtype=np.uint8)
    return out


def format_table(result: dict, title: str = "") -> str:
    """Human-readable table of :func:`analyze`'s result."""
    lines = [title] if title else []
    head = (f"{'layer':<8} {'kind':<5} {'C_in x C_out':>13} {'unique':>8} {'+compl':>8} "
            f"{'random':>8} {'dup rows':>8} {'compl rows':>10} {'identical':>9} "
            f"{'inverted':>8} {'dead':>5}")
    lines += [head, "-" * len(head)]

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    def num(v):
        return "-" if v is None else str(v)
    for l in result["layers"]:
        shape = f"{l.get('c_in', l['mw'])} x {l['c_out']}"
        lines.append(f"{l['name']:<8} {l['kind']:<5} {shape:>13} {pct(l.get('unique_fraction')):>8} "
                     f"{pct(l.get('unique_fraction_with_complements')):>8} "
                     f"{pct(l.get('random_expected_fraction')):>8} {l['duplicate_filters']:>8} "
                     f"{l['complement_filters']:>10} {num(l['identical_channels']):>9} "
                     f"{num(l['inverted_channels']):>8} {num(l['dead_channels']):>5}")
    s = result["summary"]
    if "mean_unique_fraction" in s:
        lines.append(f"conv layers: {100 * s['mean_unique_fraction']:.1f}% of 2D kernels unique "
                     f"per input channel ({100 * s['mean_unique_fraction_with_complements']:.1f}% "
                     f"with complements merged; random weights: "
                     f"{100 * s['mean_random_expected_fraction']:.1f}%; the paper: "
                     f"{100 * s['paper_unique_fraction']:.0f}%)")
    lines.append("unique: distinct KxK kernels per input channel / C_out; +compl: a kernel and "
                 "its complement count once; random: expectation for uniform random kernels")
    return "\n".join(lines)
