"""Host <-> board framing, pure Python (shared by the host driver, the tests and,
as constants, the hardware shell). The protocol is described in
:mod:`bnnhw.boards.shell`; in short::

    frame   = A5 5A  escape(body)
    body    = TYPE  SEQ  LEN_lo LEN_hi  PAYLOAD[LEN]  CRC_hi CRC_lo
    escape  : A5 -> DB 85, DB -> DB FB   (so A5 only ever starts a frame)
    CRC     = CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of TYPE..PAYLOAD,
              big-endian, so the CRC over the whole body is 0.

Types: host->board ``CLASSIFY`` (payload = one image, ``bytes_per_element``
bytes per element, little-endian), ``INFO`` (empty payload); board->host
``RESULT`` (payload = class index, u16 little-endian), ``INFO_REPLY``
(:class:`BoardInfo`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["SYNC", "ESC", "ESC_XOR", "T_CLASSIFY", "T_INFO", "T_RESULT", "T_INFO_REPLY",
           "PROTOCOL_VERSION", "crc16", "crc16_update", "escape", "encode_frame",
           "Frame", "FrameDecoder", "BoardInfo", "encode_image", "bytes_per_element",
           "INFO_PAYLOAD_LEN", "MAX_PAYLOAD"]

SYNC = bytes([0xA5, 0x5A])
ESC = 0xDB
ESC_XOR = 0x20
T_CLASSIFY = 0x01
T_INFO = 0x02
T_RESULT = 0x81
T_INFO_REPLY = 0x82
PROTOCOL_VERSION = 1
INFO_PAYLOAD_LEN = 18
MAX_PAYLOAD = 0xFFFF
_SPECIAL = (SYNC[0], ESC)


def crc16_update(crc: int, byte: int) -> int:
    """One byte of CRC-16/CCITT-FALSE (MSB first, poly 0x1021)."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    for b in data:
        crc = crc16_update(crc, b)
    return crc


def escape(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b in _SPECIAL:
            out += bytes([ESC, b ^ ESC_XOR])
        else:
            out.append(b)
    return bytes(out)


def encode_frame(ftype: int, seq: int, payload: bytes = b"") -> bytes:
    """The bytes on the wire for one frame."""
    if not 0 <= ftype <= 255 or not 0 <= seq <= 255:
        raise ValueError("frame type and sequence number are bytes")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = bytes([ftype, seq]) + struct.pack("<H", len(payload)) + bytes(payload)
    body += struct.pack(">H", crc16(body))
    return SYNC + escape(body)


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


class FrameDecoder:
    """Incremental decoder with the board's resynchronisation rules: garbage before a
    SYNC is skipped; any raw A5 restarts a frame; a frame with a bad CRC, a length
    over ``max_payload`` or an unexpected end (a new A5 or :meth:`timeout`) is dropped
    and counted. Counters: ``ok``, ``crc_errors``, ``truncated``, ``oversize``,
    ``garbage_bytes``."""

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = max_payload
        self.ok = self.crc_errors = self.truncated = self.oversize = self.garbage_bytes = 0
        self._state = "hunt"
        self._esc = False
        self._body = bytearray()
        self._need = 0

    def timeout(self):
        """The line went idle: drop a partial frame (as the board does after its
        idle timeout)."""
        if self._state in ("body",):
            self.truncated += 1
        self._state = "hunt"

    def feed(self, data: bytes) -> list[Frame]:
        frames = []
        for b in data:
            if b == SYNC[0]:
                if self._state == "body":
                    self.truncated += 1
                self._state = "sync2"
                continue
            if self._state == "hunt":
                self.garbage_bytes += 1
                continue
            if self._state == "sync2":
                if b == SYNC[1]:
                    self._state = "body"
                    self._esc = False
                    self._body = bytearray()
                    self._need = 6
                else:
                    self.garbage_bytes += 2
                    self._state = "hunt"
                continue
            # body
            if b == ESC and not self._esc:
                self._esc = True
                continue
            if self._esc:
                b ^= ESC_XOR
                self._esc = False
            self._body.append(b)
            if len(self._body) == 4:
                length = self._body[2] | (self._body[3] << 8)
                if length > self.max_payload:
                    self.oversize += 1
                    self._state = "hunt"
                    continue
                self._need = 6 + length
            if len(self._body) == self._need:
                self._state = "hunt"
                if crc16(bytes(self._body)) != 0:
                    self.crc_errors += 1
                    continue
                self.ok += 1
                frames.append(Frame(self._body[0], self._body[1], bytes(self._body[4:-2])))
        return frames


def bytes_per_element(width: int) -> int:
    return max(1, (width + 7) // 8)


def encode_image(image, width: int, frame_len: int | None = None) -> bytes:
    """An image (sequence of ints, any shape; flattened in C order) as payload bytes:
    ``bytes_per_element(width)`` little-endian bytes per element. Raises ValueError for
    a wrong length or an element that does not fit ``width`` bits."""
    try:
        import numpy as np
        flat = np.asarray(image).reshape(-1)
        if flat.dtype.kind == "b":
            flat = flat.astype(np.int64)
        if flat.dtype.kind not in "iu":
            if flat.dtype.kind == "f" and np.all(flat == np.round(flat)):
                flat = flat.astype(np.int64)
            else:
                raise ValueError(f"image elements must be integers, got dtype {flat.dtype}")
        values = [int(v) for v in flat]
    except ImportError:  # pragma: no cover
        values = [int(v) for v in image]
    if frame_len is not None and len(values) != frame_len:
        raise ValueError(f"image has {len(values)} elements, the accelerator takes {frame_len}")
    hi = (1 << width) - 1
    for i, v in enumerate(values):
        if not 0 <= v <= hi:
            raise ValueError(f"element {i} = {v} does not fit {width} unsigned bits (0..{hi})")
    n = bytes_per_element(width)
    return b"".join(v.to_bytes(n, "little") for v in values)


@dataclass(frozen=True)
class BoardInfo:
    """The INFO reply: what the bitstream's accelerator takes and the shell's counters
    (16-bit, wrapping) since reset."""
    version: int
    in_width: int
    out_width: int
    frame_len: int          # elements per image
    clock_khz: int
    frames_ok: int
    crc_errors: int
    dropped: int            # wrong type/length, cut short by a new A5, or no free buffer
    timeouts: int

    @property
    def frame_bytes(self) -> int:
        return self.frame_len * bytes_per_element(self.in_width)

    @classmethod
    def decode(cls, payload: bytes) -> "BoardInfo":
        if len(payload) != INFO_PAYLOAD_LEN:
            raise ValueError(f"INFO payload has {len(payload)} bytes, expected "
                             f"{INFO_PAYLOAD_LEN}")
        (version, wi, wo, _res, n, clk, ok, crc, drop, tmo) = struct.unpack(
            "<BBBBHIHHHH", payload)
        if wi < 1 or wo < 1 or n < 1:
            raise ValueError(f"INFO reply gives in_width {wi}, out_width {wo}, frame_len {n} "
                             "(each must be at least 1)")
        return cls(version, wi, wo, n, clk, ok, crc, drop, tmo)

    def encode(self) -> bytes:
        return struct.pack("<BBBBHIHHHH", self.version, self.in_width, self.out_width, 0,
                           self.frame_len, self.clock_khz, self.frames_ok, self.crc_errors,
                           self.dropped, self.timeouts)
