"""``bnnhw demo`` end to end (slow tier: it trains, synthesises, places and simulates).

    pytest -m slow tests/system/test_demo.py
"""
from __future__ import annotations

import pytest

from .conftest import bnnhw, last_json

REPORT_KEYS = {"output", "torch_accuracy", "golden_accuracy", "golden_disagreements",
               "test_images", "sim_frames", "sim_mismatches", "sim_cycles_per_frame",
               "bound_cycles_per_frame", "board", "lut", "ff", "ebr", "fmax_mhz", "clock_mhz",
               "fps_compute", "fps_link", "bitstream"}


@pytest.mark.slow
def test_demo_report(tmp_path):
    out = tmp_path / "demo"
    r = bnnhw("demo", "-o", out, "--epochs", "8", "--json", timeout=3600)
    res = last_json(r)
    assert res["ok"] is True and REPORT_KEYS <= set(res), REPORT_KEYS - set(res)
    assert res["output"] == str(out)
    assert res["golden_disagreements"] == 0 and res["sim_mismatches"] == 0
    assert res["sim_frames"] == res["test_images"] > 0
    assert res["torch_accuracy"] == res["golden_accuracy"] > 0.5
    assert res["board"] == "icebreaker" and 0 < res["lut"] <= 5280 and res["ebr"] >= 1
    assert res["fmax_mhz"] > res["clock_mhz"] == 12.0
    assert res["sim_cycles_per_frame"] >= res["bound_cycles_per_frame"] > 0
    assert (out / "model.pt").is_file() and (out / "model.bnn").is_file()
    assert res["bitstream"] and (out / "build" / "top.bin").stat().st_size > 50_000
    assert "Traceback" not in r.stderr
