"""A folding plan -> the chain of registered cores (:mod:`bnnhw.cores.lowering`).

:func:`lower_plan` is what the design (:mod:`.design`) stitches and what the LUT
budget search of :mod:`.folding` sizes FIFOs on; it sits below both.
"""
from __future__ import annotations

from ..cores.lowering import KINDS, LOWERINGS, lower_network, register_lowering
from ..errors import BnnhwError
from ..ir import NetworkIR
from ..kinds import kind_of

__all__ = ["lower_plan"]


def _silence(elaboratable):
    """Mark an elaboratable that may legitimately never be elaborated (estimates only)."""
    elaboratable._MustUse__silence = True
    return elaboratable


def lower_plan(ir: NetworkIR, plan, *, scores: bool = False):
    """The :class:`bnnhw.cores.lowering.Chain` of ``ir`` under ``plan`` (a
    :class:`.folding.FoldingPlan`)."""
    layers = []
    for l in ir.layers:          # a registered kind beyond the cores' own lowers itself
        kind = kind_of(l)
        for name in kind.names:
            if name not in KINDS and LOWERINGS.get(name) != kind.lower:
                register_lowering(name, kind.lower)
    for l, f in zip(ir.layers, plan.folds):
        if f.name != l.name:
            raise BnnhwError(f"folding plan is for layer {f.name}, the network has {l.name}",
                             "plan the folding for this network")
        try:
            layers.append(kind_of(l).layer_hw(l, f))
        except ValueError as e:
            raise BnnhwError(str(e), "this layer has no hardware core yet") from None
    try:
        chain = lower_network(layers, label_select=not scores, input_width=ir.input.bits)
    except ValueError as e:
        raise BnnhwError(f"cannot lower the network: {e}", "choose another folding") from None
    for c in chain.cores:
        _silence(c)
    return chain
