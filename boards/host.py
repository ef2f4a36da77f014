"""Host driver: classify images on a board running the UART :class:`~bnnhw.boards.shell.Shell`.

::

    from bnnhw.boards.host import Board, run_images
    with Board("/dev/ttyUSB1", 3_000_000) as b:
        print(b.info())                 # what the bitstream expects
        classes = b.classify(images)    # list[int], in the order of `images`
    classes = run_images("/dev/ttyUSB1", 3_000_000, images)

Images are sequences (or numpy arrays, flattened in C order) of
``frame_len`` unsigned integers of the accelerator's input width, already in
the accelerator's input element order.

Robustness: up to ``window`` (default 2, the shell's buffer count) frames
are outstanding; an answer is matched by its SEQ; a frame not answered within
``timeout`` seconds is sent again under a new SEQ (late answers to the old
SEQ still count), up to ``retries`` times, then :class:`BnnhwError`. Garbage
on the line, bad CRCs and cut frames are skipped by the decoder
(:class:`~bnnhw.boards.protocol.FrameDecoder`), which resynchronises on the
next ``A5 5A``.

Speed: FTDI bridges hold small answers for their latency timer (16 ms by
default) before sending them to the host; with two frames outstanding that
caps small images at about 125/s. Set the timer to 1 ms
(``echo 1 > /sys/bus/usb-serial/devices/ttyUSB1/latency_timer`` on Linux)
to let the UART itself be the limit (3 Mbaud: ~380 MNIST images/s).

The serial port needs ``pyserial``; any object with ``write(bytes)``,
``read(n) -> bytes`` (returning within a short poll interval), ``now()`` and
``reset_input_buffer()`` can stand in as ``transport`` (the simulation tests
use one that runs the Amaranth simulator).
"""
from __future__ import annotations

import sys
import time

from bnnhw.errors import BnnhwError

from . import protocol as P
from .protocol import BoardInfo, FrameDecoder, encode_frame, encode_image

__all__ = ["Board", "run_images", "SerialTransport", "DEFAULT_BAUD", "BoardInfo",
           "encode_frame", "encode_image", "FrameDecoder"]

DEFAULT_BAUD = 3_000_000


class SerialTransport:
    """pyserial port as a transport."""

    def __init__(self, port: str, baud: int, *, poll: float = 0.005):
        try:
            import serial
        except ImportError:
            raise BnnhwError("talking to a board needs pyserial",
                             "pip install pyserial") from None
        try:
            self.ser = serial.Serial(port, baud, timeout=poll, write_timeout=5.0)
        except (serial.SerialException, OSError, ValueError) as e:
            raise BnnhwError(f"cannot open serial port {port!r} at {baud} baud: {e}",
                             "check --port (e.g. /dev/ttyUSB1 for the iCEBreaker's second "
                             "FTDI channel, /dev/ttyUSB0 for the ULX3S) and permissions "
                             "(dialout group)") from None

    def write(self, data: bytes):
        self.ser.write(data)
        self.ser.flush()

    def read(self, n: int) -> bytes:
        waiting = self.ser.in_waiting
        return self.ser.read(max(1, min(n, waiting)) if waiting else 1)

    def now(self) -> float:
        return time.monotonic()

    def reset_input_buffer(self):
        self.ser.reset_input_buffer()

    def close(self):
        self.ser.close()


class Board:
    """A board on a serial port (or any ``transport``)."""

    def __init__(self, port: str | None = None, baud: int = DEFAULT_BAUD, *, transport=None,
                 timeout: float | None = None, retries: int = 5, window: int = 2,
                 verbose: bool = False):
        if transport is None:
            if port is None:
                raise BnnhwError("no serial port given", "pass --port, e.g. /dev/ttyUSB1")
            transport = SerialTransport(port, baud)
        if not 1 <= window <= 64:
            raise ValueError("window must be 1..64")
        self.t = transport
        self.baud = baud
        self.timeout = timeout
        self.retries = retries
        self.window = window
        self.verbose = verbose
        self.decoder = FrameDecoder()
        self._seq = 0
        self._info: BoardInfo | None = None
        self.resent = 0
        self._flushed = False

    # -- plumbing --
    def close(self):
        close = getattr(self.t, "close", None)
        if close:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _log(self, msg):
        if self.verbose:
            print(msg, file=sys.stderr, flush=True)

    def _flush(self):
        if not self._flushed:
            reset = getattr(self.t, "reset_input_buffer", None)
            if reset:
                reset()
            self._flushed = True

    def _next_seq(self, busy) -> int:
        for _ in range(256):
            self._seq = (self._seq + 1) & 0xFF
            if self._seq not in busy:
                return self._seq
        raise RuntimeError("no free sequence number")  # pragma: no cover

    def _frame_timeout(self, payload_len: int) -> float:
        if self.timeout is not None:
            return self.timeout
        wire = 2 * (payload_len + 8) + 2 * (P.INFO_PAYLOAD_LEN + 8)  # worst-case escaping
        return self.window * wire * 10 / self.baud + 0.1

    # -- requests --
    def info(self) -> BoardInfo:
        """Ask the bitstream what it takes (and for its error counters)."""
        self._flush()
        tmo = self._frame_timeout(0)
        for attempt in range(self.retries + 1):
            seq = self._next_seq(())
            self.t.write(encode_frame(P.T_INFO, seq))
            deadline = self.t.now() + tmo
            while self.t.now() < deadline:
                for f in self.decoder.feed(self.t.read(4096)):
                    if f.type == P.T_INFO_REPLY and f.seq == seq:
                        try:
                            self._info = BoardInfo.decode(f.payload)
                        except ValueError as e:
                            raise BnnhwError(f"the board's INFO reply is malformed: {e}",
                                             "the bitstream is not a bnnhw shell of this "
                                             "version: rebuild it with `bnnhw build`, and "
                                             "check the baud rate") from None
                        return self._info
            self._log(f"INFO: no answer (attempt {attempt + 1})")
        raise BnnhwError(f"the board did not answer INFO after {self.retries + 1} tries",
                         "check the port and baud rate, that the board runs a bnnhw shell "
                         "bitstream, and that nothing else holds the port")

    def classify(self, images) -> list[int]:
        """Classes of ``images`` (in order), one frame per image."""
        if self._info is None:
            self.info()
        inf = self._info
        images = list(images)
        payloads = []
        for k, img in enumerate(images):
            try:
                payloads.append(encode_image(img, inf.in_width, inf.frame_len))
            except ValueError as e:
                raise BnnhwError(f"image {k}: {e}",
                                 "images must match the bitstream's accelerator (see "
                                 "Board.info())") from None
        tmo = self._frame_timeout(inf.frame_bytes)
        results: list[int | None] = [None] * len(images)
        seq_to_idx: dict[int, int] = {}
        sent_at: dict[int, float] = {}       # image index -> time of the latest send
        attempts: dict[int, int] = {}
        outstanding: list[int] = []          # image indices awaiting an answer
        nxt = 0
        remaining = len(images)

        def send(i):
            seq = self._next_seq(seq_to_idx)
            seq_to_idx[seq] = i
            self.t.write(encode_frame(P.T_CLASSIFY, seq, payloads[i]))
            sent_at[i] = self.t.now()
            attempts[i] = attempts.get(i, 0) + 1

        while remaining:
            while len(outstanding) < self.window and nxt < len(images):
                send(nxt)
                outstanding.append(nxt)
                nxt += 1
            for f in self.decoder.feed(self.t.read(4096)):
                if f.type != P.T_RESULT or f.seq not in seq_to_idx or len(f.payload) != 2:
                    continue
                i = seq_to_idx[f.seq]
                if results[i] is None:
                    results[i] = f.payload[0] | (f.payload[1] << 8)
                    remaining -= 1
                    outstanding.remove(i)
                    for s in [s for s, j in seq_to_idx.items() if j == i]:
                        del seq_to_idx[s]
            now = self.t.now()
            for i in list(outstanding):
                if now - sent_at[i] > tmo:
                    if attempts[i] > self.retries:
                        raise BnnhwError(
                            f"image {i}: no answer after {attempts[i]} tries",
                            "check the link (port, baud rate, cable); the board's INFO "
                            "counters (Board.info()) show CRC errors and drops")
                    self._log(f"image {i}: resending (attempt {attempts[i] + 1})")
                    self.resent += 1
                    send(i)
            # forget SEQs of old attempts once the window has moved far past them
            if len(seq_to_idx) > 128:  # pragma: no cover - only with huge retry storms
                live = set(outstanding)
                for s in [s for s, j in seq_to_idx.items() if j not in live]:
                    del seq_to_idx[s]
        return [int(r) for r in results]


def run_images(port: str, baud: int, images, **kwargs) -> list[int]:
    """Classify ``images`` on the board at ``port``; returns the class of each."""
    with Board(port, baud, **kwargs) as b:
        return b.classify(images)
