"""Host/board framing (pure Python): round trips, escaping, garbage, bad CRC, cut frames."""
import random

import numpy as np
import pytest

from bnnhw.boards import protocol as P
from bnnhw.boards.protocol import FrameDecoder, encode_frame


def test_crc16_check_value():
    # CRC-16/CCITT-FALSE catalogue check value
    assert P.crc16(b"123456789") == 0x29B1
    # appending the CRC big-endian gives a zero residue (what the hardware checks)
    body = b"\x01\x07\x03\x00abc"
    assert P.crc16(body + P.crc16(body).to_bytes(2, "big")) == 0


def test_round_trip_and_escaping():
    payload = bytes([0xA5, 0xDB, 0x5A, 0x00, 0xFF, 0x85, 0xFB])
    wire = encode_frame(P.T_CLASSIFY, 0xA5, payload)
    assert wire[:2] == P.SYNC
    assert 0xA5 not in wire[2:], "A5 must only start a frame"
    frames = FrameDecoder().feed(wire)
    assert frames == [P.Frame(P.T_CLASSIFY, 0xA5, payload)]


def test_round_trip_random_frames_byte_by_byte():
    rng = random.Random(0)
    dec = FrameDecoder()
    sent, got = [], []
    for k in range(50):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        f = P.Frame(rng.choice([P.T_CLASSIFY, P.T_RESULT]), k, payload)
        sent.append(f)
        for b in encode_frame(f.type, f.seq, f.payload):
            got += dec.feed(bytes([b]))
    assert got == sent and dec.ok == 50 and dec.crc_errors == dec.truncated == 0


def test_garbage_between_frames_is_skipped():
    rng = random.Random(1)
    dec = FrameDecoder()
    frames = [P.Frame(P.T_RESULT, k, bytes([k, 0])) for k in range(20)]
    stream = b""
    for f in frames:
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
        stream += garbage + encode_frame(f.type, f.seq, f.payload)
    assert dec.feed(stream) == frames
    assert dec.garbage_bytes > 0


def test_bad_crc_is_dropped_and_next_frame_survives():
    good = encode_frame(P.T_CLASSIFY, 1, b"hello")
    bad = bytearray(encode_frame(P.T_CLASSIFY, 2, b"world"))
    bad[7] ^= 0x01                                      # a payload bit flips
    dec = FrameDecoder()
    assert dec.feed(bytes(bad) + good) == [P.Frame(P.T_CLASSIFY, 1, b"hello")]
    assert dec.crc_errors == 1


@pytest.mark.parametrize("cut", [1, 2, 3, 6, 9, 12])
def test_truncated_frame_then_resync(cut):
    first = encode_frame(P.T_CLASSIFY, 1, bytes(range(8)))
    second = encode_frame(P.T_CLASSIFY, 2, bytes(range(8, 16)))
    dec = FrameDecoder()
    assert dec.feed(first[:cut] + second) == [P.Frame(P.T_CLASSIFY, 2, bytes(range(8, 16)))]
    if cut > 2:
        assert dec.truncated == 1


def test_truncated_frame_then_timeout():
    dec = FrameDecoder()
    assert dec.feed(encode_frame(P.T_RESULT, 3, b"\x01\x00")[:-2]) == []
    dec.timeout()
    assert dec.truncated == 1
    assert dec.feed(encode_frame(P.T_RESULT, 4, b"\x02\x00")) == [
        P.Frame(P.T_RESULT, 4, b"\x02\x00")]


def test_oversize_length_is_dropped():
    dec = FrameDecoder(max_payload=4)
    assert dec.feed(encode_frame(P.T_CLASSIFY, 1, b"123456") +
                    encode_frame(P.T_CLASSIFY, 2, b"12")) == [P.Frame(P.T_CLASSIFY, 2, b"12")]
    assert dec.oversize == 1


def test_decoder_can_fail():
    """The decoder must not accept a frame whose CRC bytes were swapped."""
    wire = bytearray(encode_frame(P.T_RESULT, 9, b"\x05\x00"))
    wire[-1], wire[-2] = wire[-2], wire[-1]
    if wire[-1] != wire[-2]:
        assert FrameDecoder().feed(bytes(wire)) == []


def test_encode_image():
    assert P.encode_image([1, 2, 255], 8) == bytes([1, 2, 255])
    assert P.encode_image(np.array([[1, 0], [1, 1]], dtype=bool), 1) == bytes([1, 0, 1, 1])
    assert P.encode_image([0x3FF, 1], 10) == bytes([0xFF, 0x03, 0x01, 0x00])
    with pytest.raises(ValueError, match="does not fit"):
        P.encode_image([256], 8)
    with pytest.raises(ValueError, match="elements"):
        P.encode_image([1, 2], 8, frame_len=3)
    with pytest.raises(ValueError, match="integers"):
        P.encode_image([0.5], 8)


def test_board_info_round_trip():
    info = P.BoardInfo(1, 8, 4, 784, 12000, 5, 1, 2, 3)
    assert P.BoardInfo.decode(info.encode()) == info
    assert len(info.encode()) == P.INFO_PAYLOAD_LEN
    assert info.frame_bytes == 784
