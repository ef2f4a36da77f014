"""Stream FIFO: ``amaranth.lib.fifo.SyncFIFOBuffered`` behind stream ports."""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib.fifo import SyncFIFOBuffered

from ._common import StreamCore, Schedule, check_positive_int
from .registry import register, Conformance

__all__ = ["StreamFIFO"]


class _FIFOConformance(Conformance):
    def configs(self):
        return [(f"w{w}_d{d}", dict(width=w, depth=d, frame=f))
                for (w, d, f) in [(1, 3, 4), (8, 5, 3), (13, 16, 8), (32, 4, 2)]]

    def build(self, params, rng):
        p = dict(params)
        return StreamFIFO(name=p.pop("name", "fifo_test"), **p)

    def frames(self, core, rng, n, edge=False):
        top = (1 << core.width) - 1
        if edge:
            return [[0] * core.frame, [top] * core.frame,
                    [(top if j % 2 else 0) for j in range(core.frame)],
                    [(1 << (j % core.width)) for j in range(core.frame)]][:max(n, 1)]
        return [[int(v) for v in rng.integers(0, top + 1, core.frame, dtype="uint64")]
                for _ in range(n)]

    def encode(self, core, frame):
        return list(frame)

    def expected(self, core, frame):
        return list(frame)

    def formulas(self, core):
        return {"throughput": core.frame, "latency": 2}

    def bad_params(self):
        return [(dict(width=8, depth=2, name="fifo3"), "fifo3: depth=2"),
                (dict(width=0, depth=4, name="fifo4"), "fifo4: width")]

    def synth_params(self):
        return dict(width=16, depth=8)

    def synth_memory_params(self):
        return dict(width=32, depth=1024)


@register("fifo", conformance=_FIFOConformance)
class StreamFIFO(StreamCore):
    """First-in first-out buffer between two cores.

    Parameters (keyword-only): ``name``, ``width`` (payload bits), ``depth``
    (entries, >= 3; the last entry is the output register), ``frame``
    (beats per frame, only for the timing figures; default 1).

    Ports: ``i`` and ``o``, streams of ``width`` bits, in order.

    Timing: one beat per cycle each way; a beat written to an empty FIFO is
    valid at the output 2 cycles later (``latency = 2``); ``throughput`` =
    ``frame`` cycles per frame.  Storage: ``depth - 1`` words of Memory plus
    the output register.
    """

    def __init__(self, *, width, depth, frame=1, name="fifo"):
        self.name = str(name)
        self.width = check_positive_int(width, "width", self.name)
        depth = check_positive_int(depth, "depth", self.name)
        if depth < 3:
            raise ValueError(f"layer {self.name}: depth={depth} is too shallow for one beat per "
                             f"cycle; use depth >= 3")
        self.depth = depth
        self.frame = check_positive_int(frame, "frame", self.name)
        super().__init__(width, width)
        self.in_beats = self.out_beats = self.frame

    def schedule(self, frames: int = 3) -> Schedule:
        n = self.frame
        return Schedule([[f * n + j for j in range(n)] for f in range(frames)],
                        [[f * n + j + 2 for j in range(n)] for f in range(frames)])

    @property
    def throughput(self) -> int:
        return self.frame

    def cost(self, family):
        """:func:`bnnhw.hwmodel.fifo_cost`."""
        from .. import hwmodel as M
        return M.fifo_cost(width=self.width, depth=self.depth, family=family)

    @property
    def latency(self) -> int:
        return 2

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.width, depth=self.depth)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload),
            fifo.w_en.eq(self.i.valid),
            self.i.ready.eq(fifo.w_rdy),
            self.o.payload.eq(fifo.r_data),
            self.o.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o.ready),
        ]
        return m
