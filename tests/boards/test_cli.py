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
