# amaranth: UnusedElaboratable=no
"""The UART shell around a real generated accelerator, host and board on different clocks.

The accelerator is the design ``bnnhw build`` would generate for the digits
TFC with 1-bit inputs (``digits_tfc``), inside :class:`bnnhw.boards.shell.Shell`
at 4 clocks per bit (iCEBreaker: 12 MHz, 3 Mbaud), in Amaranth's simulator.
The host is the real driver (:class:`bnnhw.boards.host.Board`) on
:class:`bnnhw.boards.simlink.SimTransport` with its own clock: 2 % fast or
slow, its first edge at a fraction of a bit, every edge jittered.  Every
answer must equal the golden model's class, with no CRC error, drop, timeout
or resend.  ``bnnhw run`` runs against the same simulated board (its serial
port replaced by the simulated link).
"""
from __future__ import annotations

import json

import pytest

from bnnhw.boards import host
from bnnhw.boards.host import Board
from bnnhw.boards.shell import Shell
from bnnhw.boards.simlink import SimTransport
from bnnhw.dataflow import build_design, encode_images, plan_folding
from bnnhw.export import load_model_any
from bnnhw.golden import GoldenModel

from .netgen import random_images

CLK = 1e6
DIV = 4            # as the iCEBreaker's 12 MHz / 3 Mbaud
LINKS = {
    "host_2pct_fast": dict(baud_ratio=1.02, phase=0.3, jitter=0.04, seed=1),
    "host_2pct_slow": dict(baud_ratio=0.98, phase=0.7, jitter=0.04, seed=2),
    "phase_and_jitter": dict(baud_ratio=1.0, phase=0.5, jitter=0.1, seed=3),
}


@pytest.fixture(scope="module")
def tfc(digits_tfc):
    ir, _ = load_model_any(str(digits_tfc[1]))
    imgs = random_images(ir, 5, seed=4)
    return ir, plan_folding(ir), imgs


def simulated_board(ir, plan, **link):
    design = build_design(ir, plan)
    n = ir.input.height * ir.input.width * ir.input.channels
    shell = Shell(design.top, n, clock_hz=CLK, divisor=DIV, timeout_cycles=4000)
    return SimTransport(shell, **link)


@pytest.mark.parametrize("link", list(LINKS))
def test_real_accelerator_behind_the_shell_with_clock_offsets(tfc, link):
    ir, plan, imgs = tfc
    t = simulated_board(ir, plan, **LINKS[link])
    try:
        board = Board(transport=t, baud=t.baud * LINKS[link]["baud_ratio"], timeout=0.05)
        info = board.info()
        assert (info.in_width, info.frame_len) == (1, 64)
        beats = encode_images(ir, imgs).reshape(len(imgs), -1)
        got = board.classify([list(map(int, b)) for b in beats])
        want = [int(c) for c in GoldenModel(ir).predict(imgs)]
        assert len(set(want)) > 1
        assert got == want
        info = board.info()
        assert (info.crc_errors, info.dropped, info.timeouts) == (0, 0, 0), info
        assert info.frames_ok == len(imgs) + 2 and board.resent == 0    # + the two INFOs
    finally:
        t.close()


def test_bnnhw_run_against_the_simulated_board(digits_tfc, tfc, monkeypatch, capsys):
    from bnnhw import cli
    ir, plan, _ = tfc
    opened = []

    def port(name, baud):
        assert name == "sim:board"
        t = simulated_board(ir, plan, **LINKS["host_2pct_fast"])
        opened.append((t, baud))
        return t

    monkeypatch.setattr(host, "SerialTransport", port)
    rc = cli.main(["run", "--port", "sim:board", "--baud", str(int(CLK / DIV)), "--model",
                   str(digits_tfc[1]), "--dataset", "digits", "--count", "6", "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and res["ok"] is True, res
    assert res["frames"] == 6 and res["mismatches"] == 0
    assert len(opened) == 1 and opened[0][1] == CLK / DIV
    assert 0.0 <= res["accuracy"] <= 1.0
