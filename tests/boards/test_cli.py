"""`bnnhw boards`: list, one board, clock planning, errors."""
import json

from bnnhw.cli import main


def _json(capsys, argv):
    rc = main(argv + ["--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return rc, json.loads(out[-1])


def test_list_table(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    for name in ("icebreaker", "ulx3s-45f", "ulx3s-85f", "ecpix5-85f"):
        assert name in out
    assert "5280" in out and "83640" in out


def test_list_json(capsys):
    rc, d = _json(capsys, ["boards"])
    assert rc == 0 and d["ok"]
    names = [b["name"] for b in d["boards"]]
    assert "icebreaker" in names and "ulx3s-85f" in names
    ice = d["boards"][names.index("icebreaker")]
    assert ice["capacity"]["ebr"] == 30 and ice["uart"] == ["uart", 0]


def test_one_board_with_pll(capsys):
    rc, d = _json(capsys, ["boards", "--board", "icebreaker", "--clock-mhz", "48"])
    assert rc == 0
    assert d["clock"]["clock_mhz"] == 48.0 and d["clock"]["pll"]["divf"] == 63
    assert d["link"] == {"baud": 3_000_000, "divisor": 16, "actual_baud": 3e6}


def test_impossible_clock(capsys):
    rc, d = _json(capsys, ["boards", "--board", "ulx3s-85f", "--clock-mhz", "48"])
    assert rc == 1 and not d["ok"]
    assert "reachable range" in d["error"] and "46.875" in d["hint"]


def test_unknown_board(capsys):
    rc, d = _json(capsys, ["boards", "--board", "nope"])
    assert rc == 1 and "icebreaker" in d["hint"]


def test_bad_baud(capsys):
    rc, d = _json(capsys, ["boards", "--board", "ulx3s-85f", "--baud", "3000000"])
    assert rc == 1 and "1000000" in d["hint"]


def test_link_test_needs_a_port(capsys):
    rc, d = _json(capsys, ["boards", "--link-test"])
    assert rc == 1 and "--port" in d["error"]


def test_link_test_against_the_simulated_demo_board(capsys, monkeypatch):
    """`bnnhw boards --link-test` end to end, the serial port replaced by the simulator
    running the demo bitstream's shell."""
    from bnnhw.boards import host
    from bnnhw.boards.shell import Shell
    from bnnhw.boards.simlink import SimTransport
    from bnnhw.commands import boards as cmd
    links = []

    def fake_serial(port, baud):
        assert port == "/dev/ttyFAKE"
        link = SimTransport(Shell(cmd._demo_accelerator(), cmd.DEMO_FRAME, clock_hz=1e6,
                                  divisor=4, timeout_cycles=400))
        links.append(link)
        return link
    monkeypatch.setattr(host, "SerialTransport", fake_serial)
    try:
        rc, d = _json(capsys, ["boards", "--link-test", "--port", "/dev/ttyFAKE",
                               "--baud", "250000", "--count", "3"])
    finally:
        for link in links:
            link.close()
    assert rc == 0, d
    assert (d["images"], d["wrong"], d["crc_errors"]) == (3, 0, 0)


def test_build_demo_wires_the_demo_design(capsys, monkeypatch, tmp_path):
    from bnnhw.boards import build
    from bnnhw.boards.shell import BoardTop, SelfTestShell
    seen = {}

    def fake_build(top, board, out_dir, *, seed=1, **kw):
        seen.update(top=top, board=board, out=out_dir, seed=seed)
        seen["plan"] = board.make_platform().build(top, do_build=False)   # it elaborates
        return build.BuildReport(board=board.name, device=board.device, family=board.family,
                                 clock_mhz=top.clock.mhz, clock_source=top.clock.source,
                                 bitstream=str(tmp_path / "top.bin"), out_dir=str(out_dir),
                                 seed=seed, tools={}, lut=10, ff=5, fmax_mhz=50.0,
                                 timing_met=True)
    monkeypatch.setattr(build, "build_bitstream", fake_build)
    rc, d = _json(capsys, ["boards", "--board", "icebreaker", "--build-demo", "--selftest",
                           "--clock-mhz", "24", "-o", str(tmp_path), "--seed", "3"])
    assert rc == 0, d
    assert isinstance(seen["top"], BoardTop) and isinstance(seen["top"].core, SelfTestShell)
    assert seen["seed"] == 3 and d["clock_mhz"] == 24.0 and d["lut"] == 10
    assert "SB_PLL40_PAD" in seen["plan"].files["top.il"]
