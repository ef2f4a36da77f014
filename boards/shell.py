"""I/O shells around an accelerator: UART link to a host, or an on-chip self-test.

The accelerator is any :class:`amaranth.lib.wiring.Component` with stream ports
``i`` (payload ``unsigned(WI)``, one image element per beat, ``frame_len``
beats per image) and ``o`` (payload ``unsigned(WO)``, WO <= 16, one class index
per image, results in input order).

Host link protocol (version 1)
==============================

8N1 UART; default 3,000,000 baud where the board's clock divides it within
1.5 % (the FT2232H of the iCEBreaker/ECPIX-5 and the FT231X of the ULX3S all
do 3 Mbaud), else 1,000,000, else 115,200 -- see
:func:`bnnhw.boards.shell.default_baud`. Both directions use the same framing::

    frame  = A5 5A escape(body)
    body   = TYPE SEQ LEN_lo LEN_hi PAYLOAD[LEN] CRC_hi CRC_lo
    escape : a body byte A5 is sent as DB 85, a body byte DB as DB FB
    CRC    : CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no
             final xor) over TYPE..PAYLOAD, sent big-endian; the receiver runs
             the CRC over the whole body including the CRC and expects 0.

Because of the escaping, A5 never occurs inside a frame, so a receiver that
sees A5 always starts over -- resynchronisation after garbage or a cut frame is
immediate, no matter what the payload holds.

Frame types:

=========  ==========  =====================================================
TYPE       direction   payload
=========  ==========  =====================================================
0x01       host->board CLASSIFY: one image, ``frame_len * ceil(WI/8)`` bytes;
                       each element little-endian in ceil(WI/8) bytes, in the
                       accelerator's input order (bits above WI are ignored)
0x02       host->board INFO: empty
0x81       board->host RESULT for the CLASSIFY with the same SEQ: class index,
                       u16 little-endian
0x82       board->host INFO reply (18 bytes, little-endian): version u8 (=1),
                       WI u8, WO u8, 0 u8, frame_len u16, clock kHz u32,
                       then u16 counters since reset: frames_ok, crc_errors,
                       dropped (unknown type, wrong length, cut short by a
                       new A5, or no free buffer), timeouts (sampled while
                       the reply is sent)
=========  ==========  =====================================================

The board (the :class:`Shell` receiver):

* discards bytes until ``A5 5A``; any A5 restarts the frame (the cut frame is
  dropped);
* drops a frame whose TYPE/LEN pair is not one of the above (``dropped``), or
  whose CRC is wrong (``crc_errors``), or in which the line stays idle for
  more than ``timeout_us`` (default 5 ms) between bytes (``timeouts``);
* stores a CLASSIFY payload in one of two image buffers while it arrives and
  hands the image to the accelerator only after the CRC checked out (a bad
  frame never reaches the accelerator); when both buffers are busy the frame
  is dropped (``dropped``) -- the host keeps at most two frames outstanding;
* answers each image with a RESULT carrying the request's SEQ, in order;
  a dropped frame gets no answer: the host resends after a timeout
  (:class:`bnnhw.boards.host.Board` does, with a new SEQ).

Throughput at 3 Mbaud: 300 kbyte/s, e.g. a 784-byte MNIST image every 2.6 ms
(about 380 images/s); the accelerator itself is usually much faster.

Self-test
=========

:class:`SelfTestShell` feeds test images from on-chip ROM through the
accelerator, compares each class with the expected one, and then lights the
pass LED (steady) or blinks the fail LED (2 Hz) -- no host needed.
"""
from __future__ import annotations

import math

from amaranth import Array, C, Cat, Elaboratable, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, io, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bnnhw.errors import BnnhwError

from . import protocol as P
from .uart import STANDARD_BAUDS, UARTRx, UARTTx, baud_divisor

__all__ = ["Shell", "SelfTestShell", "BoardTop", "make_top", "default_baud", "stream_widths"]


def stream_widths(accelerator) -> tuple[int, int]:
    """(WI, WO) of an accelerator's ``i``/``o`` stream payloads."""
    try:
        wi = len(accelerator.i.payload)
        wo = len(accelerator.o.payload)
    except AttributeError:
        raise BnnhwError("the accelerator needs stream ports `i` and `o` "
                         "(amaranth.lib.stream)") from None
    return wi, wo


def default_baud(clk_hz: float, max_baud: int = 3_000_000) -> int:
    """The fastest of 3 M, 1 M, 115200 baud the clock makes within 1.5 % (and the
    bridge supports)."""
    for b in (3_000_000, 1_000_000, 115200):
        if b > max_baud:
            continue
        d = round(clk_hz / b)
        if d >= 4 and abs(clk_hz / d - b) / b <= 0.015:
            return b
    raise BnnhwError(f"no standard baud rate works at {clk_hz / 1e6:g} MHz",
                     f"choose --baud from {', '.join(map(str, STANDARD_BAUDS))} and a clock "
                     "that is a multiple of it")


def _crc16_matrix():
    """For each bit of the CRC-16/CCITT-FALSE register after one byte: the bitmask of
    the inputs (bits 0..15: old register, 16..23: the byte) it is the XOR of."""
    reg = [1 << i for i in range(16)]                      # symbolic register
    for k in range(8):                                     # data bit 7 first (MSB first)
        reg[8 + k] ^= 1 << (16 + k)
    for _ in range(8):
        top = reg[15]
        reg = [0] + reg[:15]
        for i in (0, 5, 12):                               # poly 0x1021
            reg[i] ^= top
    return reg


_CRC_MATRIX = _crc16_matrix()


def _crc16_byte(crc, byte):
    """Amaranth expression: CRC-16/CCITT-FALSE register after one byte (one XOR tree
    per output bit)."""
    inputs = Cat(crc, byte)
    bits = []
    for mask in _CRC_MATRIX:
        terms = [inputs[i] for i in range(24) if mask >> i & 1]
        x = terms[0]
        for t in terms[1:]:
            x = x ^ t
        bits.append(x)
    return Cat(*bits)


class Shell(wiring.Component):
    """UART link between a host and ``accelerator`` (protocol: module docstring).

    Ports: ``rx`` (UART line from the host, idle high), ``tx`` (to the host),
    ``activity`` (toggles with each RESULT sent), and the 16-bit counters
    ``frames_ok``, ``crc_errors``, ``dropped``, ``timeouts``.

    ``divisor`` (clock cycles per bit) is computed from ``clock_hz`` and
    ``baud`` unless given. ``results_in_flight`` bounds the images inside the
    accelerator whose RESULT is still due (their SEQs wait in a FIFO)."""

    def __init__(self, accelerator, frame_len: int, *, clock_hz: float, baud: int | None = None,
                 divisor: int | None = None, timeout_us: float = 5000.0,
                 timeout_cycles: int | None = None, results_in_flight: int = 4,
                 max_baud: int = 3_000_000):
        wi, wo = stream_widths(accelerator)
        if wo > 16:
            raise BnnhwError(f"class index of {wo} bits does not fit the 16-bit RESULT")
        if frame_len < 1:
            raise BnnhwError(f"frame length must be at least 1, not {frame_len}")
        self.bpe = P.bytes_per_element(wi)
        if frame_len * self.bpe > P.MAX_PAYLOAD:
            raise BnnhwError(f"an image of {frame_len * self.bpe} bytes exceeds the protocol's "
                             f"{P.MAX_PAYLOAD}-byte payload")
        self.accelerator = accelerator
        self.frame_len = frame_len
        self.in_width, self.out_width = wi, wo
        self.clock_hz = float(clock_hz)
        if divisor is None:
            if baud is None:
                baud = default_baud(self.clock_hz, max_baud)
            divisor, actual = baud_divisor(self.clock_hz, baud, max_baud=max_baud)
        else:
            actual = self.clock_hz / divisor
        self.baud = baud if baud is not None else round(actual)
        self.actual_baud = actual
        self.divisor = divisor
        if timeout_cycles is None:
            timeout_cycles = max(20 * divisor, int(timeout_us * 1e-6 * self.clock_hz))
        self.timeout_cycles = timeout_cycles
        self.results_in_flight = results_in_flight
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "activity": Out(1),
            "frames_ok": Out(16),
            "crc_errors": Out(16),
            "dropped": Out(16),
            "timeouts": Out(16),
        })

    def info(self) -> P.BoardInfo:
        """The static part of the INFO reply."""
        return P.BoardInfo(P.PROTOCOL_VERSION, self.in_width, self.out_width, self.frame_len,
                           int(round(self.clock_hz / 1000)), 0, 0, 0, 0)

    def elaborate(self, platform):
        m = Module()
        acc = self.accelerator
        n, bpe, wi = self.frame_len, self.bpe, self.in_width
        frame_bytes = n * bpe
        m.submodules.accelerator = acc
        m.submodules.uart_rx = urx = UARTRx(self.divisor)
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        # Two image buffers (ping-pong): RX writes bank `wbank`, the streamer reads `rbank`.
        m.submodules.buf = buf = Memory(shape=unsigned(wi), depth=2 * n, init=[])
        wp = buf.write_port()
        rp = buf.read_port(domain="sync", transparent_for=())
        full = Signal(2)
        bank_seq = [Signal(8, name=f"bank{k}_seq") for k in range(2)]
        wbank = Signal()
        rbank = Signal()
        set_full = Signal(2)
        clr_full = Signal(2)
        m.d.sync += full.eq((full | set_full) & ~clr_full)

        m.submodules.seq_fifo = seq_fifo = fifo.SyncFIFOBuffered(
            width=8, depth=self.results_in_flight)

        # ---------------- receiver ----------------
        byte = urx.o.payload
        got = urx.o.valid
        esc = Signal()
        hdr_idx = Signal(2)
        ftype = Signal(8)
        fseq = Signal(8)
        len_lo = Signal(8)
        pcount = Signal(range(frame_bytes + 1))
        eidx = Signal(range(n + 1))
        ebyte = Signal(range(bpe))
        elem_sr = Signal(8 * bpe)
        crc_idx = Signal()
        crc = Signal(16)
        accept = Signal()
        idle = Signal(range(self.timeout_cycles + 1))
        info_pending = Signal()
        info_seq = Signal(8)
        cnt_ok, cnt_crc, cnt_drop, cnt_tmo = (self.frames_ok, self.crc_errors, self.dropped,
                                              self.timeouts)

        data = Signal(8)
        m.d.comb += data.eq(Mux(esc, byte ^ P.ESC_XOR, byte))
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(_crc16_byte(crc, data))
        length = Cat(len_lo, data)
        elem = Cat(elem_sr[8:], data) if bpe > 1 else data
        m.d.comb += [wp.addr.eq(Mux(wbank, n, 0) + eidx), wp.data.eq(elem[:wi])]

        in_frame = Signal()
        with m.If(got):
            m.d.sync += idle.eq(0)
        with m.Elif(in_frame & (idle != self.timeout_cycles)):
            m.d.sync += idle.eq(idle + 1)

        with m.FSM(name="rx_fsm") as rx_fsm:
            m.d.comb += in_frame.eq(~rx_fsm.ongoing("HUNT") & ~rx_fsm.ongoing("SYNC2") &
                                   ~rx_fsm.ongoing("CHECK"))
            with m.State("HUNT"):
                with m.If(got & (byte == P.SYNC[0])):
                    m.next = "SYNC2"
            with m.State("SYNC2"):
                with m.If(got):
                    with m.If(byte == P.SYNC[1]):
                        m.d.sync += [esc.eq(0), hdr_idx.eq(0), crc.eq(0xFFFF)]
                        m.next = "HEADER"
                    with m.Elif(byte != P.SYNC[0]):
                        m.next = "HUNT"
            for state in ("HEADER", "PAYLOAD", "CRC"):
                with m.State(state):
                    with m.If(got & (byte == P.SYNC[0])):
                        m.d.sync += cnt_drop.eq(cnt_drop + 1)   # cut short by a new frame
                        m.next = "SYNC2"
                    with m.Elif(got & (byte == P.ESC) & ~esc):
                        m.d.sync += esc.eq(1)
                    with m.Elif(got):
                        m.d.sync += [esc.eq(0), crc.eq(crc_next)]
                        if state == "HEADER":
                            m.d.sync += hdr_idx.eq(hdr_idx + 1)
                            with m.Switch(hdr_idx):
                                with m.Case(0):
                                    m.d.sync += ftype.eq(data)
                                with m.Case(1):
                                    m.d.sync += fseq.eq(data)
                                with m.Case(2):
                                    m.d.sync += len_lo.eq(data)
                                with m.Case(3):
                                    with m.If((ftype == P.T_CLASSIFY) & (length == frame_bytes)):
                                        m.d.sync += [pcount.eq(0), eidx.eq(0), ebyte.eq(0),
                                                     accept.eq(~full.bit_select(wbank, 1))]
                                        m.next = "PAYLOAD"
                                    with m.Elif((ftype == P.T_INFO) & (length == 0)):
                                        m.d.sync += crc_idx.eq(0)
                                        m.next = "CRC"
                                    with m.Else():
                                        m.d.sync += cnt_drop.eq(cnt_drop + 1)
                                        m.next = "HUNT"
                        elif state == "PAYLOAD":
                            m.d.sync += pcount.eq(pcount + 1)
                            if bpe > 1:
                                m.d.sync += elem_sr.eq(Cat(elem_sr[8:], data))
                                with m.If(ebyte == bpe - 1):
                                    m.d.sync += [ebyte.eq(0), eidx.eq(eidx + 1)]
                                    m.d.comb += wp.en.eq(accept)
                                with m.Else():
                                    m.d.sync += ebyte.eq(ebyte + 1)
                            else:
                                m.d.sync += eidx.eq(eidx + 1)
                                m.d.comb += wp.en.eq(accept)
                            with m.If(pcount == frame_bytes - 1):
                                m.d.sync += crc_idx.eq(0)
                                m.next = "CRC"
                        else:  # CRC
                            m.d.sync += crc_idx.eq(1)
                            with m.If(crc_idx == 1):
                                m.next = "CHECK"
                    with m.Elif(idle == self.timeout_cycles):
                        m.d.sync += cnt_tmo.eq(cnt_tmo + 1)
                        m.next = "HUNT"
            with m.State("CHECK"):       # one cycle after the last byte: CRC residue == 0?
                m.next = "HUNT"
                with m.If(crc != 0):
                    m.d.sync += cnt_crc.eq(cnt_crc + 1)
                with m.Elif(ftype == P.T_INFO):
                    m.d.sync += [cnt_ok.eq(cnt_ok + 1), info_pending.eq(1), info_seq.eq(fseq)]
                with m.Elif(accept):
                    m.d.sync += [cnt_ok.eq(cnt_ok + 1), wbank.eq(~wbank)]
                    m.d.comb += set_full.eq(Mux(wbank, 0b10, 0b01))
                    for k in range(2):
                        with m.If(wbank == k):
                            m.d.sync += bank_seq[k].eq(fseq)
                with m.Else():
                    m.d.sync += cnt_drop.eq(cnt_drop + 1)   # no free buffer

        # ---------------- streamer: buffer -> accelerator ----------------
        active = Signal()
        issued = Signal(range(n + 1))
        m.d.comb += [rp.addr.eq(Mux(rbank, n, 0) + issued),
                     rp.en.eq(~acc.i.valid | acc.i.ready),
                     acc.i.payload.eq(rp.data)]
        start = Signal()
        m.d.comb += start.eq(~active & full.bit_select(rbank, 1) & seq_fifo.w_rdy)
        m.d.comb += [seq_fifo.w_en.eq(start),
                     seq_fifo.w_data.eq(Mux(rbank, bank_seq[1], bank_seq[0]))]
        with m.If(start):
            m.d.sync += [active.eq(1), issued.eq(0)]
        with m.Elif(rp.en):
            m.d.sync += acc.i.valid.eq(active & (issued < n))
            with m.If(active & (issued < n)):
                m.d.sync += issued.eq(issued + 1)
            with m.If(active & (issued == n)):
                m.d.sync += [active.eq(0), rbank.eq(~rbank)]
                m.d.comb += clr_full.eq(Mux(rbank, 0b10, 0b01))

        # ---------------- transmitter: results / info -> host ----------------
        # Wire order: A5 5A, then escape(body bytes 0..blen-1, CRC hi, CRC lo).
        info_len = P.INFO_PAYLOAD_LEN
        body_max = 4 + info_len
        is_info = Signal()
        t_seq = Signal(8)
        t_cls = Signal(16)
        blen = Signal(range(body_max + 1))
        phase = Signal(range(5))        # 0: A5, 1: 5A, 2: body, 3: CRC hi, 4: CRC lo
        bidx = Signal(range(body_max))
        tx_crc = Signal(16)
        tx_esc = Signal()
        cur = Signal(8)
        cur_escapable = Signal()
        cur_special = Signal()
        clk_khz = int(round(self.clock_hz / 1000))
        result_body = Array([C(P.T_RESULT, 8), t_seq, C(2, 8), C(0, 8), t_cls[:8], t_cls[8:]])
        info_body = Array([C(x, 8) if isinstance(x, int) else x for x in [
            P.T_INFO_REPLY, t_seq, info_len, 0, P.PROTOCOL_VERSION, wi, self.out_width, 0,
            n & 0xFF, n >> 8, *[(clk_khz >> (8 * k)) & 0xFF for k in range(4)],
            cnt_ok[:8], cnt_ok[8:], cnt_crc[:8], cnt_crc[8:],
            cnt_drop[:8], cnt_drop[8:], cnt_tmo[:8], cnt_tmo[8:]]])

        start_tx = [phase.eq(0), bidx.eq(0), tx_esc.eq(0), tx_crc.eq(0xFFFF)]
        with m.FSM(name="tx_fsm"):
            with m.State("IDLE"):
                with m.If(acc.o.valid & seq_fifo.r_rdy):
                    m.d.comb += [acc.o.ready.eq(1), seq_fifo.r_en.eq(1)]
                    m.d.sync += [is_info.eq(0), t_seq.eq(seq_fifo.r_data),
                                 t_cls.eq(acc.o.payload), blen.eq(6),
                                 self.activity.eq(~self.activity), *start_tx]
                    m.next = "FETCH"
                with m.Elif(info_pending):
                    m.d.sync += [info_pending.eq(0), is_info.eq(1), t_seq.eq(info_seq),
                                 blen.eq(body_max), *start_tx]
                    m.next = "FETCH"
            with m.State("FETCH"):        # register the next logical byte (short paths)
                lb = Signal(8)
                with m.Switch(phase):
                    with m.Case(0):
                        m.d.comb += lb.eq(P.SYNC[0])
                    with m.Case(1):
                        m.d.comb += lb.eq(P.SYNC[1])
                    with m.Case(2):
                        m.d.comb += lb.eq(Mux(is_info, info_body[bidx],
                                              result_body[bidx[:3]]))
                    with m.Case(3):
                        m.d.comb += lb.eq(tx_crc[8:])
                    with m.Default():
                        m.d.comb += lb.eq(tx_crc[:8])
                m.d.sync += [cur.eq(lb), cur_escapable.eq(phase >= 2)]
                m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += cur_special.eq(cur_escapable & ((cur == P.SYNC[0]) | (cur == P.ESC)))
                m.d.comb += [utx.i.valid.eq(1),
                             utx.i.payload.eq(Mux(cur_special & ~tx_esc, P.ESC,
                                                  Mux(tx_esc, cur ^ P.ESC_XOR, cur)))]
                with m.If(utx.i.ready):
                    with m.If(cur_special & ~tx_esc):
                        m.d.sync += tx_esc.eq(1)
                    with m.Else():
                        m.d.sync += tx_esc.eq(0)
                        m.next = "FETCH"
                        with m.If(phase == 2):
                            m.d.sync += [tx_crc.eq(_crc16_byte(tx_crc, cur)), bidx.eq(bidx + 1)]
                            with m.If(bidx == blen - 1):
                                m.d.sync += phase.eq(3)
                        with m.Elif(phase == 4):
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += phase.eq(phase + 1)
        return m


class SelfTestShell(wiring.Component):
    """Runs ``images`` (each ``frame_len`` elements) from on-chip ROM through the
    accelerator once after reset and compares the classes with ``expected``.

    Ports: ``done``, ``passed``, ``failed``, ``errors`` (mismatch count),
    ``pass_led`` (steady on after a pass), ``fail_led`` (blinks at ``blink_hz``
    after a failure). Needs ``clock_hz`` only for the blink rate."""

    def __init__(self, accelerator, frame_len: int, images, expected, *,
                 clock_hz: float = 12e6, blink_hz: float = 2.0):
        wi, wo = stream_widths(accelerator)
        flat = []
        for k, img in enumerate(images):
            vals = [int(v) for v in _flatten(img)]
            if len(vals) != frame_len:
                raise BnnhwError(f"self-test image {k} has {len(vals)} elements, the "
                                 f"accelerator takes {frame_len}")
            if any(not 0 <= v < (1 << wi) for v in vals):
                raise BnnhwError(f"self-test image {k} has elements outside {wi} bits")
            flat += vals
        expected = [int(e) for e in expected]
        if len(expected) != len(images) or not expected:
            raise BnnhwError("self-test needs one expected class per image, at least one image")
        if any(not 0 <= e < (1 << wo) for e in expected):
            raise BnnhwError(f"expected classes must fit the accelerator's {wo}-bit output")
        self.accelerator = accelerator
        self.frame_len = frame_len
        self.count = len(expected)
        self._flat = flat
        self._expected = expected
        self.in_width, self.out_width = wi, wo
        self.blink_period = max(2, int(clock_hz / blink_hz))
        super().__init__({
            "done": Out(1), "passed": Out(1), "failed": Out(1), "errors": Out(16),
            "pass_led": Out(1), "fail_led": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        acc = self.accelerator
        total = len(self._flat)
        m.submodules.accelerator = acc
        m.submodules.images = images = Memory(shape=unsigned(self.in_width), depth=total,
                                              init=self._flat)
        m.submodules.expected = exp = Memory(shape=unsigned(self.out_width), depth=self.count,
                                             init=self._expected)
        rp = images.read_port(domain="sync", transparent_for=())
        ep = exp.read_port(domain="sync", transparent_for=())

        issued = Signal(range(total + 1))
        m.d.comb += [rp.addr.eq(issued), rp.en.eq(~acc.i.valid | acc.i.ready),
                     acc.i.payload.eq(rp.data)]
        with m.If(rp.en):
            m.d.sync += acc.i.valid.eq(issued < total)
            with m.If(issued < total):
                m.d.sync += issued.eq(issued + 1)

        j = Signal(range(self.count + 1))
        got = Signal(self.out_width)
        check = Signal()
        m.d.comb += [acc.o.ready.eq(j < self.count), ep.addr.eq(j), ep.en.eq(1)]
        m.d.sync += check.eq(0)
        with m.If(acc.o.valid & acc.o.ready):
            m.d.sync += [got.eq(acc.o.payload), check.eq(1), j.eq(j + 1)]
        with m.If(check & (got != ep.data)):
            m.d.sync += self.errors.eq(self.errors + 1)
        m.d.comb += self.done.eq((j == self.count) & ~check)
        m.d.comb += [self.passed.eq(self.done & (self.errors == 0)),
                     self.failed.eq(self.done & (self.errors != 0))]

        blink = Signal()
        timer = Signal(range(self.blink_period // 2 + 1))
        with m.If(timer == self.blink_period // 2 - 1):
            m.d.sync += [timer.eq(0), blink.eq(~blink)]
        with m.Else():
            m.d.sync += timer.eq(timer + 1)
        m.d.comb += [self.pass_led.eq(self.passed), self.fail_led.eq(self.failed & blink)]
        return m


def _flatten(img):
    try:
        import numpy as np
        return np.asarray(img).reshape(-1).tolist()
    except ImportError:  # pragma: no cover
        return list(img)


class BoardTop(Elaboratable):
    """A board's top level: clock (oscillator or PLL), and the UART or LEDs wired to
    ``core`` (a :class:`Shell` or :class:`SelfTestShell`)."""

    def __init__(self, core, board, clock):
        from .registry import get_board
        self.core = core
        self.board = get_board(board)
        self.clock = clock          # a ClockPlan

    def _led(self, m, platform, ref, value):
        res = platform.request(ref.resource, ref.number, dir="-")
        port = getattr(res, ref.sub) if ref.sub else res
        buf = io.Buffer("o", port)
        m.submodules[f"led_{ref.resource}{ref.number}{ref.sub or ''}"] = buf
        m.d.comb += buf.o.eq(value)

    def elaborate(self, platform):
        from .clock import ClockGenerator
        m = Module()
        ClockGenerator(self.clock).add_to(m)
        m.submodules.core = core = self.core
        b = self.board
        if isinstance(core, Shell):
            if b.uart is None:
                raise BnnhwError(f"board {b.name} has no UART to a host",
                                 "build the self-test variant instead (--selftest)")
            uart = platform.request(*b.uart, dir="-")
            m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart.rx)
            m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart.tx)
            m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx)]
            if b.pass_led is not None:
                self._led(m, platform, b.pass_led, core.activity)
        else:
            if b.pass_led is None:
                raise BnnhwError(f"board {b.name} has no LED for the self-test result")
            if b.fail_led is not None:
                self._led(m, platform, b.pass_led, core.pass_led)
                self._led(m, platform, b.fail_led, core.fail_led)
            else:  # one LED: steady = pass, blinking = fail
                self._led(m, platform, b.pass_led, core.pass_led | core.fail_led)
        return m


def make_top(board, accelerator, frame_len: int, *, clock_mhz: float | None = None,
             baud: int | None = None, selftest=None, **shell_kwargs) -> BoardTop:
    """The top level for ``board``: ``accelerator`` behind a UART :class:`Shell`, or, with
    ``selftest=(images, expected)``, behind a :class:`SelfTestShell`. ``clock_mhz`` sets
    the clock through the PLL (None: the oscillator). The result has ``.clock``
    (:class:`~bnnhw.boards.clock.ClockPlan`) and ``.core``."""
    from .clock import plan_clock
    from .registry import get_board
    b = get_board(board)
    plan = plan_clock(b, clock_mhz)
    if selftest is not None:
        images, expected = selftest
        core = SelfTestShell(accelerator, frame_len, images, expected, clock_hz=plan.hz)
    else:
        core = Shell(accelerator, frame_len, clock_hz=plan.hz, baud=baud, max_baud=b.max_baud,
                     **shell_kwargs)
    return BoardTop(core, b, plan)
