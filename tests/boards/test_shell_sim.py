# amaranth: UnusedElaboratable=no
"""The UART shell in Amaranth's simulator, driven by the REAL host driver
(bnnhw.boards.host.Board) through SimTransport: every answered image must be
right, through garbage, bad CRCs, cut frames, corrupted answers, busy buffers."""
import random

import pytest

from bnnhw.boards import protocol as P
from bnnhw.boards.host import Board
from bnnhw.boards.shell import SelfTestShell, Shell
from bnnhw.boards.simlink import SimTransport
from bnnhw.boards.standin import SumModAccelerator, sum_mod
from bnnhw.errors import BnnhwError

CLK = 1e6          # simulated clock: 1 MHz, 4 clocks per bit -> 250 kbaud
DIV = 4


_LINKS = []


@pytest.fixture(autouse=True)
def _close_links():
    yield
    while _LINKS:               # stop the simulator's driver processes, even after a failure
        _LINKS.pop().close()


def make_link(n=12, width=8, classes=10, ready_every=3, timeout_cycles=400, **kw):
    acc = SumModAccelerator(n, width, classes, ready_every=ready_every)
    shell = Shell(acc, n, clock_hz=CLK, divisor=DIV, timeout_cycles=timeout_cycles, **kw)
    link = SimTransport(shell)
    _LINKS.append(link)
    return link


def images_for(n, count, width=8, seed=0):
    rng = random.Random(seed)
    imgs = [[rng.randrange(1 << width) for _ in range(n)] for _ in range(count)]
    if width >= 8:   # bytes that need escaping on the wire
        imgs[0][:3] = [0xA5, 0xDB, 0x5A]
    return imgs


def test_info_and_clean_link():
    link = make_link()
    board = Board(transport=link, baud=link.baud, timeout=0.004)
    info = board.info()
    assert (info.version, info.in_width, info.out_width, info.frame_len, info.clock_khz) == \
        (1, 8, 4, 12, 1000)
    imgs = images_for(12, 5)
    assert board.classify(imgs) == [sum_mod(i, 10) for i in imgs]
    info = board.info()
    assert (info.frames_ok, info.crc_errors, info.dropped, info.timeouts) == (7, 0, 0, 0)
    assert board.resent == 0


def test_garbage_bad_crc_cut_frames_and_corrupt_answers():
    link = make_link()
    rng = random.Random(7)
    writes = []

    def mutate(data):
        k = len(writes)
        writes.append(data)
        if k == 1:      # garbage (with a false SYNC and header) before the first image
            return bytes([0x00, 0xA5, 0x5A, 0x01, 0x99, 0xFF, 0xA5]) + data
        if k == 2:      # a payload bit flips: bad CRC, the board drops it
            bad = bytearray(data)
            bad[8] ^= 0x10
            return bytes(bad)
        if k == 3:      # the frame is cut short; the line then idles (board timeout)
            return data[: len(data) // 2]
        if k == 5:      # trailing garbage
            return data + bytes(rng.randrange(256) for _ in range(5))
        return data

    corrupted = []

    def mutate_from_board(chunk):
        # flip one bit in the 3rd answer's bytes (the host's decoder must drop it)
        if len(corrupted) < 1 and link.bytes_written > 150:
            corrupted.append(chunk)
            return bytes([chunk[0] ^ 0x04]) + chunk[1:]
        return chunk

    board = Board(transport=link, baud=link.baud, timeout=0.004, retries=4)
    board.info()
    link.mutate = mutate
    link.mutate_from_board = mutate_from_board
    imgs = images_for(12, 6, seed=3)
    assert board.classify(imgs) == [sum_mod(i, 10) for i in imgs]
    link.mutate = link.mutate_from_board = None
    info = board.info()
    assert info.crc_errors >= 1
    assert info.timeouts + info.dropped >= 1      # the cut frame
    assert board.resent >= 2
    assert corrupted, "the answer-corruption hook never fired"


def test_busy_buffers_drop_and_host_resends():
    # a slow accelerator: both image buffers fill, a third frame is dropped (busy)
    link = make_link(n=12, ready_every=300)
    board = Board(transport=link, baud=link.baud, timeout=0.012, window=3, retries=6)
    imgs = images_for(12, 4, seed=5)
    assert board.classify(imgs) == [sum_mod(i, 10) for i in imgs]
    info = board.info()
    assert info.dropped >= 1 and board.resent >= 1


def test_wide_elements_two_bytes_each():
    link = make_link(n=6, width=10, classes=7, ready_every=1)
    board = Board(transport=link, baud=link.baud, timeout=0.004)
    assert board.info().frame_bytes == 12
    imgs = images_for(6, 3, width=10, seed=9)
    assert board.classify(imgs) == [sum_mod(i, 7) for i in imgs]


def test_wrong_type_wrong_length_and_idle_timeout_are_counted():
    link = make_link()
    board = Board(transport=link, baud=link.baud, timeout=0.004)
    link.write(P.encode_frame(P.T_CLASSIFY, 1, bytes(11)))        # wrong length
    link.write(P.encode_frame(0x33, 2, bytes(12)))                 # unknown type
    link.write(P.encode_frame(P.T_CLASSIFY, 3, bytes(12))[:9])     # cut, then idle
    link.drain()
    link.idle(600 / CLK)
    info = board.info()
    assert (info.dropped, info.timeouts, info.frames_ok) == (2, 1, 1)
    assert link.read(4096) == b""             # nothing was answered for the bad frames


def test_host_reports_a_mute_board():
    link = make_link()
    link.mutate = lambda data: b""           # nothing reaches the board
    board = Board(transport=link, baud=link.baud, timeout=0.002, retries=1)
    with pytest.raises(BnnhwError, match="INFO"):
        board.info()


def test_host_rejects_images_of_the_wrong_size():
    link = make_link()
    board = Board(transport=link, baud=link.baud, timeout=0.004)
    with pytest.raises(BnnhwError, match="image 1"):
        board.classify([[0] * 12, [0] * 11])


# ---------------- self-test shell ----------------

async def _run_selftest(ctx, dut, cycles):
    await ctx.tick().repeat(cycles)
    return ctx.get(dut.done), ctx.get(dut.passed), ctx.get(dut.failed), ctx.get(dut.errors)


@pytest.mark.parametrize("wrong", [False, True])
def test_selftest_shell(wrong):
    from amaranth.sim import Simulator
    n, k = 5, 4
    imgs = images_for(n, k, seed=11)
    expected = [sum_mod(i, 10) for i in imgs]
    if wrong:
        expected[2] = (expected[2] + 1) % 10
    dut = SelfTestShell(SumModAccelerator(n, 8, 10, ready_every=2), n, imgs, expected,
                        clock_hz=400, blink_hz=100)
    seen = {}

    async def bench(ctx):
        assert ctx.get(dut.done) == 0
        seen["result"] = await _run_selftest(ctx, dut, 2 * n * k + 20)
        leds = []
        for _ in range(8):
            leds.append((ctx.get(dut.pass_led), ctx.get(dut.fail_led)))
            await ctx.tick()
        seen["leds"] = leds

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    done, passed, failed, errors = seen["result"]
    assert done == 1
    if wrong:
        assert (passed, failed, errors) == (0, 1, 1)
        fail = [f for _, f in seen["leds"]]
        assert 0 in fail and 1 in fail, "the fail LED must blink"
        assert all(p == 0 for p, _ in seen["leds"])
    else:
        assert (passed, failed, errors) == (1, 0, 0)
        assert all(led == (1, 0) for led in seen["leds"])


def test_selftest_checks_its_inputs():
    acc = SumModAccelerator(4)
    with pytest.raises(BnnhwError, match="elements"):
        SelfTestShell(acc, 4, [[1, 2, 3]], [6])
    with pytest.raises(BnnhwError, match="expected"):
        SelfTestShell(acc, 4, [[1, 2, 3, 4]], [])
