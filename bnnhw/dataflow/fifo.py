"""FIFO depths and the latency estimate, from the cores' cycle-level schedules.

Every core documents its exact transfer cycles in a stall-free run,
``core.schedule(frames)`` (input always valid, output always ready; the
conformance suite checks it against the hardware cycle by cycle).  From
those schedules this module sizes a FIFO for every link between two cores of
the chain -- FINN's characteristic-function idea (compare the producer's
output curve with the consumer's input curve over a period), with two
changes that matter for a chain with back-pressure and buffering cores.

Method (:func:`size_fifos`)
---------------------------
1. The period ``P`` is the pipeline's bound: the largest ``throughput *
   repeats`` over the cores (cycles per image).
2. Each core's *pattern* is its schedule over one image (``repeats`` frames
   from idle): the cycles of its input and output transfers, relative to its
   first input transfer.
3. **Need, not eagerness.**  A consumer's input curve is the cycle by which
   it *needs* each beat (:func:`demand_pattern`), not the cycle a stall-free
   run happens to read it: an MVAU reads the next vector into its spare bank
   a whole vector early, a sliding-window unit fills its spare line buffers;
   those reads are buffering.  An MVAU needs word ``sf`` of a vector when its
   first pass reaches it (``compute start + sf``, the compute start recovered
   from its first output: ``G*SF + D + 1`` cycles earlier); a sliding-window
   unit needs pixel ``q`` two cycles before the first window whose last pixel
   is ``q`` starts.  Other kinds need a beat when they read it (conservative).
   What the consumer can hold ahead (the MVAU's spare bank: SF words; the
   window unit's spare line buffers: ``(rows - K) * W * C/SIMD`` words) is
   credited against the backlog.
4. **Only the bottleneck is inelastic** (upstream of it; see 7 for the
   cores after it).  A core faster than the period
   cannot run flat out for long: back-pressure and starvation slow it down
   at no cost.  Its pattern is *stretched* to the period (each cycle
   multiplied by ``P / (throughput * repeats)``, a uniform slow-down it can
   always follow); the bottleneck keeps its exact pattern.  Patterns repeat
   every ``P``.
5. **Relays are transparent** (upstream of the bottleneck).  A width
   converter paces nothing: it passes
   each beat on at the lags of its pattern as soon as the core after it
   takes it.  So a converter's need is not its own (stretched) read pattern
   but the need of the core after it, mapped back through the converter's
   lags (:func:`relay_demand`; through a run of converters, from the first
   core that is not one), and it holds ahead what that core holds (converted
   to its input beats).  The backlog of a producer's bursts is sized once, on
   the link into the run of converters; the links a converter feeds get no
   FIFO of their own.
6. On each link upstream of the bottleneck the consumer's image starts as
   early as the data allows,
   ``s = max_k (w_k - n_k)`` after the producer's (``w_k`` the producer's
   k-th output, ``n_k`` the consumer's need for it); the backlog is the
   largest count of beats written and not yet needed over three periods.
   Backlog minus the consumer's credit: up to two beats (the producer's
   output register and the wire) need no FIFO; more get a
   :class:`bnnhw.cores.StreamFIFO` of that depth (at least 3).
7. **Downstream of the bottleneck consumers wait for data.**  There the
   producers are starved, not back-pressured, and a faster consumer takes
   each beat when it comes: its need is its own (unstretched) pattern's,
   as late as the latest beat so far arrived after its need
   (:func:`_actual_need`); a width converter passes the beats on at its lags
   (:func:`_propagate`), and the core after it waits for them in turn.  The
   backlog of the producer's writes against those needs, minus what the
   consumer holds, is sized as in 6.

Guarantee
---------
* **Sufficient: meant, checked, not proven.**  The model errs on the safe
  side where it can (every producer held to its pattern stretched to the
  period, though it could slow down more and catch up; need taken as read
  for kinds without a demand model), but the credits (what a consumer holds
  ahead, through its relays) are derived from the schedules, not proven.
  Checked in simulation: ``tests/system`` (a design at exactly the bound on
  every image, ``test_fifo_sizing``; >= 0.95 of the bound over random
  foldings, most exactly 1.0).
* **Minimal where it says 0.**  With the cores of :mod:`bnnhw.cores` and the
  line buffers the builder gives the sliding-window units, every link of
  every folding we tried (the 20 random foldings of ``tests/system``, 78
  more of the same nets, TFC, LFC and CNV plans) comes out direct, and the
  simulated designs reach the bound; a direct link cannot be shortened, so
  those depths are minimal.
* **Not minimal when it says more.**  A depth > 0 is an upper bound, not the
  least depth: upstream of the bottleneck a core faster than the period is
  held to its stretched pattern, though in hardware it can wait and then
  catch up at full speed.  With sliding-window units built with only ``K``
  line buffers (a lowering option the builder never uses) and the
  bottleneck after them, the model puts 6-24 deep FIFOs in front of them; in
  the two such chains simulated (24 and 11 deep) a direct link reaches the
  bound (``tests/system/test_fifo_sizing.py``, strict xfail).  Exact minimal depths
  would need a model of how each core stalls, not only its stall-free
  schedule.

Latency estimate
----------------
The first image through an empty pipeline (:func:`_propagate`): each core's
output ``i`` waits until every input beat it needs (``need < w_i``) has
arrived, as late relative to its need as that beat arrived, and keeps the
spacing of its pattern; a FIFO adds two cycles.  It is the cycle of the class
index after the first input beat, and matches the simulated latency closely
(exactly in the system tests, within 10% over random foldings).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LinkSizing", "Sizing", "size_fifos", "core_pattern"]

MIN_FIFO_DEPTH = 3          # bnnhw.cores.StreamFIFO's minimum
DIRECT_BACKLOG = 2          # backlogs up to this many beats need no FIFO
RELAY_KINDS = ("width_converter",)   # cores that pass beats on, pacing nothing


@dataclass
class LinkSizing:
    producer: str
    consumer: str
    beats_per_image: int
    shift: int              # consumer image start after the producer's (stretched patterns)
    backlog: int            # largest beats written and not yet needed
    held: int               # of which the consumer can hold ahead itself
    depth: int              # FIFO depth (0 = direct connection)


@dataclass
class Sizing:
    depths: list[int]
    period: int
    latency: int | None
    links: list[LinkSizing] = field(default_factory=list)

    def report(self) -> dict:
        return {"method": "schedule patterns stretched to the period (bnnhw.dataflow.fifo)",
                "period": self.period, "latency_estimate": self.latency,
                "links": [vars(link) for link in self.links]}


def core_pattern(core, repeats: int, image: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Input and output transfer cycles of image ``image`` (``repeats`` frames each) of a
    stall-free run, relative to that image's first input transfer."""
    r = int(repeats)
    s = core.schedule(r * (image + 1))
    sel = slice(r * image, r * (image + 1))
    reads = np.fromiter((c for f in s.reads[sel] for c in f), dtype=np.int64)
    writes = np.fromiter((c for f in s.writes[sel] for c in f), dtype=np.int64)
    t0 = reads[0] if len(reads) else 0
    return reads - t0, writes - t0


def demand_pattern(core, repeats: int, reads: np.ndarray, writes: np.ndarray):
    """The cycle by which each input beat of one image is *needed* (relative to the
    image's first input transfer), and how many beats the core can hold ahead of that.

    A core reads ahead when it can (an MVAU takes the next vector into its spare
    bank, a sliding-window unit fills its spare line buffers); those early reads are
    buffering, not need.  Kinds without a model here need each beat when their
    stall-free run reads it (a conservative choice) and hold none ahead."""
    kind = getattr(core, "kind", "")
    need = None
    hold = 0
    try:
        if kind in ("mvau", "first_layer_mvau"):
            sf, g, d = core.sf, core.groups, core.pipeline_depth
            w0 = writes.reshape(int(repeats), core.nf)[:, 0]
            start = w0 - (g * sf + d + 1)                 # compute start of each vector
            need = (start[:, None] + np.arange(sf)[None, :]).reshape(-1)
            hold = sf                                     # the spare input bank
        elif kind == "swu":
            H, W, K, s, p, cf = core.height, core.width, core.k, core.stride, core.pad, core.cf
            oh, ow = core.out_height, core.out_width
            oy, ox = np.divmod(np.arange(oh * ow), ow)
            ry = np.minimum(oy * s - p + K - 1, H - 1)
            rx = np.minimum(ox * s - p + K - 1, W - 1)
            # a window starts once its last pixel is in; the first window that needs
            # pixel q is the first whose last pixel is >= q.  Clipped to the image, the
            # last pixels are not monotone (a bottom padding row repeats the row above,
            # a right padding column the column before): search their running maximum.
            last_pixel = np.maximum.accumulate(ry * W + rx)
            per_window = K * K * cf
            t_start = writes.reshape(int(repeats), -1)[:, ::per_window].reshape(-1)
            pixel = np.arange(len(reads)) // cf
            pixel = pixel % (H * W)
            frame = np.arange(len(reads)) // (H * W * cf)
            j = np.searchsorted(last_pixel, pixel, side="left")
            idx = frame * (oh * ow) + np.minimum(j, oh * ow - 1)
            need = np.where(j < oh * ow, t_start[idx] - 2, reads)
            hold = max(0, core.rows - K) * W * cf         # spare line buffers
    except (AttributeError, ValueError, IndexError):     # a core that changed shape
        need, hold = None, 0
    if need is None or len(need) != len(reads):
        return reads.copy(), 0
    need = np.maximum(need, reads)                        # never before it can be read
    need = np.minimum.accumulate(need[::-1])[::-1]        # in stream order
    return need, int(hold)


def relay_demand(reads: np.ndarray, writes: np.ndarray, down_need: np.ndarray) -> np.ndarray:
    """The need of a relay's (a width converter's) input beats, from the need of its
    output beats by the core after it (``down_need``, any common time origin).

    A relay has no work of its own to pace: it passes each beat on as soon as it has
    it, at its own stall-free lags.  Input ``j`` is needed ``w_i - r_j`` cycles before
    the need of the first output ``i`` that depends on it (the first output written
    after ``j`` is read: ``r_j < w_i``), and one cycle before the next input's need
    at the latest (one beat per cycle, in stream order)."""
    if not len(reads):
        return reads.copy()
    # first output written after input j is read
    first = np.searchsorted(writes, reads, side="right")
    first = np.minimum(first, len(writes) - 1)
    need = down_need[first] - (writes[first] - reads)
    for j in range(len(need) - 2, -1, -1):
        need[j] = min(need[j], need[j + 1] - 1)
    return need


def _actual_need(arrival: np.ndarray, need: np.ndarray) -> np.ndarray:
    """When a core that waits for its data (see :func:`_propagate`) needs each input
    beat: its pattern's need, as late as the latest beat so far arrived after its
    need."""
    if not len(need):
        return need.copy()
    return need + np.maximum.accumulate(arrival - need)


def _propagate(arrival, need, reads, writes):
    """Output transfer cycles of a core whose input beats arrive at ``arrival``
    (absolute cycles), given its per-image pattern (``need``, ``reads``, ``writes``
    relative to its first read): output ``i`` waits for every input needed before it
    (those with ``need < writes[i]``) to be as late as it arrived relative to its need,
    and keeps the pattern's spacing to the previous output."""
    if not len(writes):
        return writes
    start = arrival[0] - reads[0]
    late = np.maximum.accumulate(arrival - need)
    dep = np.clip(np.searchsorted(need, writes, side="left") - 1, 0, len(need) - 1)
    off = np.maximum(start, np.maximum.accumulate(late[dep]))
    return writes + off


def _backlog(w: np.ndarray, r: np.ndarray, period: int, periods: int = 3) -> int:
    """Max over time of (writes so far - reads so far) for patterns repeated every
    ``period`` cycles (a write and a read in the same cycle: the read sees the write)."""
    ws = np.concatenate([w + f * period for f in range(periods)])
    rs = np.concatenate([r + f * period for f in range(periods)])
    # events sorted by time; at equal times reads count after writes (a beat written and
    # read in one cycle never occupies the link)
    t = np.concatenate([ws, rs])
    d = np.concatenate([np.ones(len(ws), np.int64), -np.ones(len(rs), np.int64)])
    order = np.lexsort((-d, t))
    occ = np.cumsum(d[order])
    return int(occ.max()) if len(occ) else 0


def size_fifos(chain, *, period: int | None = None) -> Sizing:
    """FIFO depths for every link of ``chain`` (a :class:`bnnhw.cores.lowering.Chain`)."""
    cores, reps = chain.cores, chain.repeats
    per_image = [int(c.throughput) * int(r) for c, r in zip(cores, reps)]
    P = int(period or max(per_image))
    pats = [core_pattern(c, r) for c, r in zip(cores, reps)]
    B = int(np.argmax(per_image))            # the bottleneck (the first, on a tie)
    # upstream of the bottleneck, each core's demand for its input beats in stretched
    # time (steps 3-5): a relay takes its demand from the core after it
    demands: list = [None] * len(cores)
    for n in range(B, 0, -1):
        r, rw = pats[n]
        if getattr(cores[n], "kind", "") in RELAY_KINDS and n < B \
                and len(rw) == len(pats[n + 1][0]):
            down_need, down_hold = demands[n + 1]
            need = relay_demand(r, rw, down_need)
            hold = (down_hold * len(r)) // max(1, len(rw))
        else:
            need, hold = demand_pattern(cores[n], reps[n], r, rw)
            need = np.floor(need * (P / per_image[n])).astype(np.int64)
        demands[n] = (need, hold)
    relayed: list = [None] * len(cores)      # downstream relays' output cycles
    depths, links = [], []
    for n in range(len(cores) - 1):
        (_, w), (r, rw) = pats[n], pats[n + 1]
        if len(w) != len(r):   # pragma: no cover - lowering guarantees equal beat counts
            raise ValueError(f"link {cores[n].name} -> {cores[n + 1].name}: {len(w)} beats "
                             f"written but {len(r)} read per image")
        if relayed[n] is not None:
            ws = relayed[n]
        else:
            ws = np.floor(w * (P / per_image[n])).astype(np.int64)
        relay_in = getattr(cores[n], "kind", "") in RELAY_KINDS and 0 < n < B
        if n + 1 <= B:
            rs, hold = demands[n + 1]
            shift = int(np.max(ws - rs)) if len(ws) else 0
            rs = rs + shift
        else:
            # downstream of the bottleneck (step 7): the consumer waits for the data
            # and takes it at its own pace; a relay passes it on at its lags
            need, hold = demand_pattern(cores[n + 1], reps[n + 1], r, rw)
            rs = _actual_need(ws, need)
            shift = 0
            if getattr(cores[n + 1], "kind", "") in RELAY_KINDS:
                relayed[n + 1] = _propagate(ws, need, r, rw)
        backlog = _backlog(ws, rs, P)
        excess = backlog - hold
        if relay_in:
            # a relay passes on the bursts of the core in front of it at its own lags
            # (its stretched pattern says nothing about them): the link into the
            # relays, sized from the same demand, holds that backlog
            excess = 0
        depth = 0 if excess <= DIRECT_BACKLOG else max(MIN_FIFO_DEPTH, excess)
        depths.append(depth)
        links.append(LinkSizing(cores[n].name, cores[n + 1].name, len(w), shift, backlog,
                                hold, depth))
    # latency estimate: the first image through an empty pipeline, every core as fast
    # as its inputs arrive (unstretched patterns; see _propagate)
    r0, w0 = pats[0]
    arrival = r0.astype(np.int64)
    for n, core in enumerate(cores):
        r, w = pats[n]
        need, _ = demand_pattern(core, reps[n], r, w)
        out = _propagate(arrival, need, r, w)
        arrival = out + (2 if n < len(depths) and depths[n] else 0)
    latency = int(out[-1]) if len(out) else None
    return Sizing(depths=depths, period=P, latency=latency, links=links)
