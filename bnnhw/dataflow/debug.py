"""Simulate a design in Amaranth's simulator and find the first layer that differs.

* :func:`simulate_design` streams raw images through a :class:`Design`'s top
  (random valid/ready stalls optional) and returns the class indices and the
  cycle of every output beat.
* :func:`layer_beats` encodes the golden model's per-layer outputs
  (``GoldenModel(ir).run(raw, collect=True)``) as the beats that leave each
  layer's last core.
* :func:`locate_mismatch` simulates each layer's cores on their own, fed with
  the golden output of the layer before, and names the first layer whose
  output differs from the golden model (for one image; used by ``bnnhw sim``
  when the Verilog and the golden model disagree).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import MaxPool, NetworkIR

__all__ = ["simulate_design", "layer_beats", "layer_segments", "locate_mismatch",
           "LayerDiff", "encode_vector_words"]


def encode_vector_words(values, per_word: int, width: int) -> list[int]:
    """Words of ``per_word`` fields of ``width`` bits (two's complement), field ``j`` of
    word ``n`` = ``values[n*per_word + j]`` (the MVAU/ScoreTable output format)."""
    v = [int(x) for x in np.asarray(values).reshape(-1).tolist()]
    mask = (1 << width) - 1
    words = []
    for n in range(0, len(v), per_word):
        w = 0
        for j, x in enumerate(v[n:n + per_word]):
            w |= (x & mask) << (j * width)
        words.append(w)
    return words


def simulate_design(design, raw, *, stall: float = 0.0, seed: int = 0,
                    max_cycles: int | None = None, vcd: str | None = None):
    """Run ``raw`` images ``(N, C, H, W)`` through ``design`` in Amaranth's simulator.

    Returns :class:`bnnhw.cores.simulate.StreamRun` (``outputs``: one class index per
    image for a class-index top; ``out_cycles``: cycles of the output beats, cycle 0 =
    first input transfer)."""
    from ..cores.simulate import run_stream
    beats = [int(b) for b in design.encode_images(raw)]
    n = len(raw)
    out_per = 1 if design.top.cores[-1].kind == "label_select" else design.top.cores[-1].out_beats
    if max_cycles is None:
        slow = 1.0 / max(1e-3, (1 - stall) ** 2)
        max_cycles = int((n + 2) * design.bound_cycles * 2 * slow) + 20000
    return run_stream(design.top, beats, n * out_per, in_stall=stall, out_stall=stall,
                      seed=seed, max_cycles=max_cycles, vcd=vcd)


def _segment_out_beats(core, layer, out: dict) -> list[int] | None:
    """Golden beats leaving ``core`` (the last core of ``layer``) for one image."""
    kind = getattr(core, "kind", "")
    if kind == "label_select":
        return None
    if isinstance(layer, MaxPool):
        bits = out["bits"]
        return encode_vector_words(bits.reshape(-1), core.simd, 1)
    if kind in ("mvau", "first_layer_mvau"):
        if core.thresholds is not None:
            return encode_vector_words(out["bits"].reshape(-1), core.pe, 1)
        vals = out["acc"]
        if core.binary and core.score == "dot":
            vals = 2 * vals - core.mw
        return encode_vector_words(vals.reshape(-1), core.pe, core.score_width)
    if kind == "score_table":
        return encode_vector_words(out["scores"].reshape(-1), core.pe, core.score_width)
    return None


def layer_segments(chain) -> list[tuple[str, int, int]]:
    """``(layer name, first core index, end index)`` of each layer's run of cores; the
    input converters belong to the first layer, LabelSelect to the last."""
    names = list(chain.layers)
    segs: list[list] = []
    for i, n in enumerate(names):
        if n == "input":
            continue
        if n == "label_select" and segs:
            segs[-1][2] = i + 1
            continue
        if segs and segs[-1][0] == n:
            segs[-1][2] = i + 1
        else:
            segs.append([n, i, i + 1])
    if segs and names and names[0] == "input":
        segs[0][1] = 0
    return [tuple(s) for s in segs]


def layer_beats(ir: NetworkIR, chain, raw_image, per_layer: list[dict]):
    """For each layer segment: (name, input beats, expected output beats) for one image;
    ``per_layer`` are the golden model's collected outputs of that image (batch of 1)."""
    from .design import encode_images
    segs = layer_segments(chain)
    byname = {l.name: (i, l) for i, l in enumerate(ir.layers)}
    prev = [int(b) for b in encode_images(ir, raw_image[None])]
    out = []
    for name, a, b in segs:
        i, layer = byname[name]
        last = chain.cores[b - 1]
        exp = _segment_out_beats(last, layer, {k: v[0] for k, v in per_layer[i].items()})
        if last.kind == "label_select":
            # compare the scores before the argmax: drop LabelSelect from the segment
            b -= 1
            last = chain.cores[b - 1]
            exp = _segment_out_beats(last, layer, {k: v[0] for k, v in per_layer[i].items()})
        out.append((name, a, b, prev, exp))
        if exp is None:
            break
        prev = exp
    return out


@dataclass
class LayerDiff:
    layer: str | None          # first layer whose output differs (None: none found)
    beat: int | None = None    # first differing output beat of that layer
    got: int | None = None
    expected: int | None = None
    detail: str = ""


def locate_mismatch(ir: NetworkIR, plan, raw_image, *, stalls=(0.0, 0.3),
                    max_cycles: int = 5_000_000, seed: int = 1,
                    vcd: str | None = None) -> LayerDiff:
    """Simulate every layer of the design alone (Amaranth), fed with the golden output of
    the layer before, and return the first layer whose output differs from golden.

    Each layer runs once per stall probability in ``stalls`` (random valid/ready stalls
    on its input and output; a fault that needs back-pressure shows up only with
    stalls), stopping at the first difference."""
    from ..cores.simulate import run_stream
    from ..golden import GoldenModel
    from .design import DataflowTop, build_design
    raw_image = np.asarray(raw_image)
    _, _, per_layer = GoldenModel(ir).run(raw_image[None], collect=True)
    for stall in stalls:
        design = build_design(ir, plan)        # fresh cores, never elaborated before
        chain = design.chain
        for name, a, b, ins, exp in layer_beats(ir, chain, raw_image, per_layer):
            if exp is None:
                return LayerDiff(None, detail=f"no golden encoding for the cores of {name}")
            top = DataflowTop(chain.cores[a:b], design.fifo_depths[a:b - 1])
            slow = 1.0 / max(1e-3, (1 - stall) ** 2)
            run = run_stream(top, ins, len(exp), in_stall=stall, out_stall=stall, seed=seed,
                             max_cycles=int(max_cycles * slow), vcd=vcd)
            got = [int(v) for v in run.outputs]
            if got != exp or run.timed_out:
                k = next((j for j, (g, e) in enumerate(zip(got, exp)) if g != e), len(got))
                detail = (f"layer {name}"
                          + (f" (with {stall} stall probability)" if stall else "")
                          + f": output beat {k} of {len(exp)} is "
                          + (f"{got[k]:#x}, golden {exp[k]:#x}" if k < len(got) else
                             f"missing ({len(got)} beats arrived"
                             + (", timed out" if run.timed_out else "") + ")"))
                return LayerDiff(name, k, got[k] if k < len(got) else None,
                                 exp[k] if k < len(exp) else None, detail)
            # unused cores of this round are never elaborated: no warning
            del top
    return LayerDiff(None, detail="every layer matches the golden model in Amaranth's "
                                  "simulator on its own (with and without stalls); the "
                                  "difference appears only in the stitched Verilog "
                                  "simulation")
