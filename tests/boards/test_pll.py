"""PLL calculators: same choices as the reference tools, legal parameters, clear refusals.

Reference rows were produced with the YoWASP builds of the reference tools
(``yowasp-icepll -i 12 -o F``, ``yowasp-ecppll -i FIN -o F``) and with
icepll outputs for 48/96 MHz inputs."""
import pytest

from bnnhw.boards.clock import plan_clock
from bnnhw.boards.pll import (LIMITS, achievable_frequencies, check_config, ecp5_pll, ice40_pll,
                              plan_pll)
from bnnhw.errors import BnnhwError

# (f_in, f_req, f_out, DIVR, DIVF, DIVQ, FILTER_RANGE)
ICEPLL = [(12, *row) for row in [
    (16, 15.938, 0, 84, 6, 1), (20, 19.875, 0, 52, 5, 1), (24, 24.0, 0, 63, 5, 1),
    (25, 25.125, 0, 66, 5, 1), (30, 30.0, 0, 79, 5, 1), (33, 33.0, 0, 87, 5, 1),
    (36, 36.0, 0, 47, 4, 1), (40, 39.75, 0, 52, 4, 1), (48, 48.0, 0, 63, 4, 1),
    (50, 50.25, 0, 66, 4, 1), (60, 60.0, 0, 79, 4, 1), (64, 63.75, 0, 84, 4, 1),
    (72, 72.0, 0, 47, 3, 1), (75, 75.0, 0, 49, 3, 1), (80, 79.5, 0, 52, 3, 1),
    (90, 90.0, 0, 59, 3, 1), (100, 100.5, 0, 66, 3, 1), (120, 120.0, 0, 79, 3, 1),
    (150, 150.0, 0, 49, 2, 1), (200, 201.0, 0, 66, 2, 1), (275, 276.0, 0, 45, 1, 1)]] + [
    (48, 100, 100.0, 2, 49, 3, 1), (48, 150, 150.0, 1, 24, 2, 2), (48, 60, 60.0, 0, 19, 4, 4),
    (96, 16, 16.0, 2, 31, 6, 3), (96, 20, 20.0, 2, 19, 5, 3)]

# (f_in, f_req, CLKI_DIV, CLKFB_DIV, CLKOP_DIV, f_out)
ECPPLL = [
    (25, 10, 5, 2, 60, 10.0), (25, 20, 5, 4, 30, 20.0), (25, 24, 1, 1, 24, 25.0),
    (25, 30, 5, 6, 20, 30.0), (25, 33.3, 3, 4, 18, 33.3333), (25, 40, 5, 8, 15, 40.0),
    (25, 48, 8, 15, 13, 46.875), (25, 50, 1, 2, 12, 50.0), (25, 60, 5, 12, 10, 60.0),
    (25, 62.5, 2, 5, 10, 62.5), (25, 75, 1, 3, 8, 75.0), (25, 80, 5, 16, 7, 80.0),
    (25, 100, 1, 4, 6, 100.0), (25, 125, 1, 5, 5, 125.0), (25, 150, 1, 6, 4, 150.0),
    (25, 200, 1, 8, 3, 200.0), (25, 250, 1, 10, 2, 250.0), (25, 300, 1, 12, 2, 300.0),
    (25, 400, 1, 16, 1, 400.0), (100, 10, 10, 1, 60, 10.0), (100, 24, 25, 6, 25, 24.0),
    (100, 33.3, 3, 1, 18, 33.3333), (100, 48, 25, 12, 12, 48.0), (100, 62.5, 8, 5, 10, 62.5),
    (100, 125, 4, 5, 5, 125.0), (100, 250, 2, 5, 2, 250.0), (48, 10, 14, 3, 53, 10.2857),
    (48, 33.3, 13, 9, 18, 33.2308), (48, 50, 15, 16, 12, 51.2), (48, 62.5, 10, 13, 9, 62.4),
    (48, 75, 9, 14, 8, 74.6667), (48, 125, 5, 13, 6, 124.8), (48, 250, 14, 73, 2, 250.286),
    (48, 400, 3, 25, 1, 400.0)]

# ecppll's CLKOP_CPHASE (its float32 arithmetic truncates 100 MHz / DIV 6 to 2, not 3)
ECP_CPHASE = [(25, 100, 2), (25, 48, 6), (25, 10, 30), (25, 33.3, 9), (25, 80, 3), (25, 125, 2)]


@pytest.mark.parametrize("f_in,f_req,f_out,divr,divf,divq,fr", ICEPLL)
def test_ice40_matches_icepll(f_in, f_req, f_out, divr, divf, divq, fr):
    cfg = ice40_pll(f_in, f_req)
    assert (cfg.params["divr"], cfg.params["divf"], cfg.params["divq"],
            cfg.params["filter_range"]) == (divr, divf, divq, fr)
    assert cfg.f_out == pytest.approx(f_out, abs=1e-3)
    # like icepll, the closest result may sit just outside 16..275 MHz (15.94, 276)
    assert check_config(cfg) == [] or not 16 <= cfg.f_out <= 275


@pytest.mark.parametrize("f_in,f_req,clki,clkfb,clkop,f_out", ECPPLL)
def test_ecp5_matches_ecppll(f_in, f_req, clki, clkfb, clkop, f_out):
    cfg = ecp5_pll(f_in, f_req)
    assert (cfg.params["clki_div"], cfg.params["clkfb_div"], cfg.params["clkop_div"]) == \
        (clki, clkfb, clkop)
    assert cfg.f_out == pytest.approx(f_out, abs=1e-3)
    assert check_config(cfg) == []


@pytest.mark.parametrize("f_in,f_req,cphase", ECP_CPHASE)
def test_ecp5_cphase_matches_ecppll(f_in, f_req, cphase):
    assert ecp5_pll(f_in, f_req).params["clkop_cphase"] == cphase


@pytest.mark.parametrize("family,f_in", [("ice40", 12.0), ("ecp5", 25.0), ("ecp5", 100.0)])
def test_sweep_is_legal_and_reports_what_it_makes(family, f_in):
    lo, hi = LIMITS[family]["out"]
    f = lo
    while f <= hi:
        try:
            cfg = plan_pll(family, f_in, f)
        except BnnhwError:
            f *= 1.07
            continue
        assert check_config(cfg) == [], (f, cfg)
        assert cfg.error <= 0.01
        lim = LIMITS[family]
        assert lim["vco"][0] <= cfg.f_vco <= lim["vco"][1]
        assert lim["pfd"][0] <= cfg.f_pfd <= lim["pfd"][1]
        f *= 1.07


def test_strict_search_stays_in_the_output_range():
    cfg = plan_pll("ice40", 12, 16)
    assert cfg.f_out >= 16 and check_config(cfg) == []
    assert plan_pll("ice40", 12, 270).f_out <= 275
    with pytest.raises(BnnhwError, match="270"):
        plan_pll("ice40", 12, 275)          # 270 is the closest legal output: 1.8 % off


def test_check_config_catches_bad_parameters():
    cfg = ice40_pll(12, 48)
    from dataclasses import replace
    bad = replace(cfg, params={**cfg.params, "divf": 20})        # VCO 252 MHz: too low
    assert any("vco" in b for b in check_config(bad))
    bad = replace(cfg, params={**cfg.params, "filter_range": 3})
    assert any("filter" in b for b in check_config(bad))


@pytest.mark.parametrize("family,f_in,f_req,why", [
    ("ice40", 12, 10, "output range"),        # below 16 MHz
    ("ice40", 12, 300, "output range"),       # above 275 MHz
    ("ecp5", 25, 5, "output range"),
    ("ecp5", 25, 48, "off"),                  # best is 46.875: 2.3 % off
    ("ecp5", 25, 500, "output range"),
])
def test_impossible_requests_raise(family, f_in, f_req, why):
    with pytest.raises(BnnhwError) as e:
        plan_pll(family, f_in, f_req)
    assert why in e.value.message
    assert "reachable range" in e.value.message
    assert "nearby achievable" in e.value.hint
    near = [float(x) for x in e.value.hint.split(":")[1].split(",")]
    freqs = achievable_frequencies(family, f_in)
    assert all(any(abs(x - f) < 5e-3 * f for f in freqs) for x in near)


def test_nearby_suggestions_bracket_the_request():
    with pytest.raises(BnnhwError) as e:
        plan_pll("ecp5", 25, 48)
    near = [float(x) for x in e.value.hint.split(":")[1].split(",")]
    assert min(near) < 48 < max(near)
    assert 46.875 in near and 50.0 in near


def test_plan_clock_for_boards():
    p = plan_clock("icebreaker", None)
    assert (p.source, p.mhz) == ("oscillator", 12.0)
    p = plan_clock("icebreaker", 48)
    assert (p.source, p.mhz, p.pll.params["divf"]) == ("pll", 48.0, 63)
    p = plan_clock("ulx3s-85f", 100)
    assert (p.source, p.mhz, p.pll.params["clkop_div"]) == ("pll", 100.0, 6)
    p = plan_clock("ulx3s-85f", 25)
    assert p.source == "oscillator"
    with pytest.raises(BnnhwError, match="cannot make"):
        plan_clock("icebreaker", 7)
