"""Fuzz tests: mutated input files give success or a BnnhwError, never another exception,
within a memory and a time limit; the UART frame decoder survives fuzzed streams.

Each file format runs ``tests/fuzz_driver.py`` in a subprocess with ``RLIMIT_DATA`` (a
lying size field that made bnnhw allocate past it would end in MemoryError, which the
driver reports as a failure) and a wall-clock timeout.  Seeded: the same inputs every
run."""
from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from bnnhw.boards import protocol as P

DRIVER = Path(__file__).with_name("fuzz_driver.py")
MEMORY_LIMIT = 2 << 30          # RLIMIT_DATA of the fuzzing process (bytes)

# format -> (inputs, wall-clock limit in seconds); about 1-8 s each on a busy 2-core box
CASES = {"checkpoint": (150, 120), "ir": (600, 90), "npz": (600, 90), "image": (600, 90),
         "folding": (600, 90)}


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_mutated_files_load_or_give_a_bnnhw_error(fmt, tmp_path):
    count, limit = CASES[fmt]
    r = subprocess.run([sys.executable, str(DRIVER), fmt, str(count), "1", str(tmp_path)],
                       capture_output=True, text=True, timeout=limit,
                       preexec_fn=_limit_memory, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, f"{r.stdout[-2000:]}\n{r.stderr[-6000:]}"
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["inputs"] == count and res["ok"] + res["error"] == count
    assert res["error"] > 0           # the mutations do reach the checks
    print(f"fuzz {fmt}: {res}")


def test_fuzz_driver_reports_a_non_bnnhw_exception(tmp_path, monkeypatch, capsys):
    """The driver can fail: a loader raising a plain exception ends it with exit 1."""
    sys.path.insert(0, str(DRIVER.parent))
    import fuzz_driver as F

    def setup(fmt, wd):
        def load(path):
            if Path(path).read_bytes() != b"valid":
                raise KeyError("boom")
        return b"valid", "f.bin", load, None
    monkeypatch.setattr(F, "setup", setup)
    assert F.main("x", 5, 1, tmp_path) == 1
    assert "raised a non-BnnhwError" in capsys.readouterr().err


# ---------------------------------------------------------------- UART frame decoder

def _frames(rng, n):
    out = []
    for _ in range(n):
        t = rng.choice([P.T_RESULT, P.T_INFO_REPLY, rng.randrange(256)])
        payload = rng.randbytes(rng.choice([0, 1, 2, 18, rng.randrange(64)]))
        out.append((t, rng.randrange(256), payload))
    return out


def test_uart_decoder_survives_fuzzed_streams():
    """26,000 frames: valid ones, mutated ones and noise, fed in random chunk sizes.
    The decoder never raises, returns only frames whose CRC was right, and recovers
    every valid frame that follows a damaged one after a fresh SYNC."""
    rng = random.Random(15)
    dec = P.FrameDecoder()
    sent_ok, got = [], []
    stream = bytearray()
    for t, seq, payload in _frames(rng, 26_000):
        wire = bytearray(P.encode_frame(t, seq, payload))
        roll = rng.random()
        if roll < 0.4:                                # damage: flip, cut, noise
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(wire))
                wire[i] ^= 1 << rng.randrange(8)
            if rng.random() < 0.3:
                del wire[rng.randrange(len(wire)):]
        elif roll < 0.5:
            wire = bytearray(rng.randbytes(rng.randrange(1, 40)))
        else:
            sent_ok.append((t, seq, payload))
        stream += wire
        if roll >= 0.5:
            # a valid frame: feed everything so far, in random chunks
            i = 0
            while i < len(stream):
                n = rng.randint(1, 64)
                got += dec.feed(bytes(stream[i:i + n]))
                i += n
            stream.clear()
    got += dec.feed(bytes(stream))
    dec.timeout()
    got_set = [(f.type, f.seq, f.payload) for f in got]
    for f in got:                                   # each decoded frame is a real one
        assert isinstance(f, P.Frame) and len(f.payload) <= P.MAX_PAYLOAD
    # every valid frame arrives (damaged frames before it may eat none of it: the SYNC
    # restarts decoding), in order
    it = iter(got_set)
    assert all(any(g == want for g in it) for want in sent_ok)
    assert dec.ok >= len(sent_ok) and dec.crc_errors + dec.truncated > 1000


def test_uart_decoder_never_raises_on_random_bytes():
    rng = random.Random(16)
    dec = P.FrameDecoder(max_payload=64)
    for _ in range(2000):
        out = dec.feed(rng.randbytes(rng.randrange(1, 200)))
        assert all(isinstance(f, P.Frame) for f in out)
        if rng.random() < 0.1:
            dec.timeout()
