"""IR-to-IR passes that keep every class score bit-exact.

:func:`fold_dead_channels` (``bnnhw build --dedup``) removes constant (dead)
output channels of hidden conv/fc layers and folds their constant bit into
the next layer's thresholds, as the paper's filter-repetition section
suggests for folded layers.

A hidden channel ``c`` of a layer is *dead* when its threshold lies outside
the accumulator's range: ``t <= acc_min`` (the bit is always 1) or
``t > acc_max`` (always 0).  Its bit ``v`` passes unchanged through max-pools
(OR and AND of a constant are the constant) to the next conv/fc layer
``N``, where every column ``j`` reading channel ``c`` (``j % C == c`` in
both ``layout`` orders: im2col ``(ky, kx, c)`` and flatten ``(h, w, c)``)
adds the constant ``XNOR(v, W[r, j])`` to row ``r``'s popcount.  So the pass
drops row ``c`` (weights, threshold, direction), its max-pool entries and
``N``'s columns of ``c``, and lowers ``N``'s thresholds by the constant:
``t'_r = t_r - sum_j XNOR(v, W[r, j])``, clipped to the new range
``[0, MW' + 1]`` (a clipped row was already constant).  Removing columns can
make rows of ``N`` dead in turn, so the pass runs to a fixed point.

A dead channel is kept (and reported with the reason) when the fold would
not be exact or not expressible:

* ``N`` is the output layer: its scores have no thresholds, and a per-class
  constant would change the argmax;
* ``N`` pads (conv ``padding > 0``) with a bit other than ``v``: padded
  positions would read ``pad_value``, not ``v``;
* another layer kind (not max-pool) lies between the layer and ``N``;
* it is the layer's last channel.

Duplicate and complement filters (rows equal to, or the bitwise complement
of, another row) are counted in the result but not shared: see
``docs/dedup.md`` for why sharing them does not save area in a folded layer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .ir import Dense, MaxPool, NetworkIR

__all__ = ["DeadChannel", "DedupResult", "fold_dead_channels", "dead_channels"]


@dataclass(frozen=True)
class DeadChannel:
    """One constant channel: ``layer`` (name), ``channel`` (index in that IR),
    ``value`` (its constant bit), ``folded_into`` (the consumer's name, or None
    when kept) and ``reason`` (why it was kept; "" when folded)."""
    layer: str
    channel: int
    value: int
    folded_into: str | None
    reason: str = ""


@dataclass
class DedupResult:
    """What :func:`fold_dead_channels` did: ``ir`` (the new IR; the input IR
    when nothing changed), ``removed`` and ``kept`` (lists of
    :class:`DeadChannel`), ``passes`` (rounds to the fixed point), and
    ``channels`` (per Dense layer name: (before, after) output channels)."""
    ir: NetworkIR
    removed: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    passes: int = 0
    channels: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.removed)

    def as_dict(self) -> dict:
        return {"removed": [dataclasses.asdict(d) for d in self.removed],
                "kept": [dataclasses.asdict(d) for d in self.kept],
                "passes": self.passes,
                "channels": {k: list(v) for k, v in self.channels.items()}}

    def describe(self) -> str:
        if not self.removed and not self.kept:
            return "dedup: no constant (dead) channels"
        lines = []
        for d in self.removed:
            lines.append(f"dedup: {d.layer} channel {d.channel} is always {d.value}: removed, "
                         f"folded into {d.folded_into}'s thresholds")
        for d in self.kept:
            lines.append(f"dedup: {d.layer} channel {d.channel} is always {d.value}: kept "
                         f"({d.reason})")
        return "\n".join(lines)


def dead_channels(layer: Dense) -> list[tuple[int, int]]:
    """``(channel, constant bit)`` of a hidden layer's dead channels, in order."""
    if layer.thresholds is None:
        return []
    t = np.asarray(layer.thresholds)
    out = [(int(c), 1) for c in np.flatnonzero(t <= layer.acc_min)]
    out += [(int(c), 0) for c in np.flatnonzero(t > layer.acc_max)]
    return sorted(out)


def _consumer(layers, i):
    """(index of the next Dense after layer i, reason it cannot be used or "")."""
    for j in range(i + 1, len(layers)):
        l = layers[j]
        if isinstance(l, Dense):
            return j, ""
        if not isinstance(l, MaxPool):
            return None, f"layer {l.name} ({l.kind}) lies between it and the next conv/fc"
    return None, "no conv/fc layer after it"


def _keep_rows(layer: Dense, keep: np.ndarray) -> Dense:
    mh = int(keep.sum())
    out_shape = tuple(layer.out_shape[:-1]) + (mh,)
    return dataclasses.replace(
        layer, weights=np.asarray(layer.weights)[keep], out_shape=out_shape,
        direction=np.asarray(layer.direction)[keep],
        thresholds=np.asarray(layer.thresholds)[keep])


def _drop_channels_of_input(layer: Dense, drop: dict[int, int]) -> Dense:
    """``layer`` without the columns that read the input channels in ``drop``
    (channel -> constant bit), thresholds lowered by their constant popcount."""
    c_in = int(layer.in_shape[-1])
    cols = np.arange(layer.mw) % c_in
    gone = np.isin(cols, list(drop))
    w = np.asarray(layer.weights, dtype=np.int64)
    v = np.array([drop.get(int(c), 0) for c in cols], dtype=np.int64)
    const = ((w == v[None, :]) & gone[None, :]).sum(axis=1)          # XNOR(v, w) over gone
    mw = int((~gone).sum())
    t = np.clip(np.asarray(layer.thresholds, dtype=np.int64) - const, 0, mw + 1)
    in_shape = tuple(layer.in_shape[:-1]) + (c_in - len(drop),)
    return dataclasses.replace(
        layer, weights=np.asarray(layer.weights)[:, ~gone], in_shape=in_shape,
        acc_min=0, acc_max=mw, thresholds=t)


def _plan(layers, i) -> tuple:
    """For Dense layer ``i``: (consumer index or None, {channel: bit} to fold,
    [(channel, bit, reason)] to keep)."""
    l = layers[i]
    dead = dead_channels(l)
    if not dead:
        return None, {}, []
    j, why = _consumer(layers, i)
    n = layers[j] if j is not None else None
    drop, keep = {}, []
    for c, v in dead:
        reason = why
        if not reason and n.thresholds is None:
            reason = (f"its consumer {n.name} is the output layer: a per-class constant "
                      f"would change the argmax")
        if not reason and n.kind == "conv" and n.padding and int(n.pad_value) != v:
            reason = f"{n.name} pads with {int(n.pad_value)}, not {v}"
        if not reason and len(drop) + 1 >= l.mh:
            reason = "it is the layer's last channel"
        if reason:
            keep.append((c, v, reason))
        else:
            drop[c] = v
    return j, drop, keep


def _fold_one(ir: NetworkIR):
    """Fold the dead channels of the first layer that has foldable ones:
    ``(new ir, layer name, {channel: bit}, consumer name)``, or None."""
    layers = list(ir.layers)
    for i, l in enumerate(layers):
        if not isinstance(l, Dense):
            continue
        j, drop, _ = _plan(layers, i)
        if not drop:
            continue
        keep = np.ones(l.mh, dtype=bool)
        keep[list(drop)] = False
        layers[i] = _keep_rows(l, keep)
        for k in range(i + 1, j):                 # the max-pools in between
            p = layers[k]
            layers[k] = dataclasses.replace(
                p, pool_op=np.asarray(p.pool_op)[keep],
                in_shape=tuple(p.in_shape[:-1]) + (int(keep.sum()),),
                out_shape=tuple(p.out_shape[:-1]) + (int(keep.sum()),))
        layers[j] = _drop_channels_of_input(layers[j], drop)
        return dataclasses.replace(ir, layers=layers), l.name, drop, layers[j].name
    return None


def fold_dead_channels(ir: NetworkIR) -> DedupResult:
    """Remove the dead channels that fold exactly (module docstring), to a fixed
    point.  The class scores of the result equal the input's on every input.
    Channel numbers in the result are those of the input IR."""
    before = {l.name: l.mh for l in ir.layers if isinstance(l, Dense)}
    orig = {name: list(range(mh)) for name, mh in before.items()}   # current -> input IR
    removed, cur, passes = [], ir, 0
    while (step := _fold_one(cur)) is not None:
        cur, name, drop, into = step
        passes += 1
        removed += [DeadChannel(name, orig[name][c], v, into) for c, v in sorted(drop.items())]
        orig[name] = [o for c, o in enumerate(orig[name]) if c not in drop]
    kept = []
    for i, l in enumerate(cur.layers):
        if isinstance(l, Dense):
            kept += [DeadChannel(l.name, orig[l.name][c], v, None, why)
                     for c, v, why in _plan(cur.layers, i)[2]]
    if removed:
        cur.provenance = {**cur.provenance, "dedup": {"dead_channels_removed": [
            dataclasses.asdict(d) for d in removed]}}
        cur.validate("IR after folding dead channels")
    after = {l.name: l.mh for l in cur.layers if isinstance(l, Dense)}
    return DedupResult(ir=cur, removed=removed, kept=kept, passes=passes,
                       channels={k: (before[k], after[k]) for k in before})
