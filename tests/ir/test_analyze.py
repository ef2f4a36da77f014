"""bnnhw analyze: kernel repetition counted on hand-built layers (independent of layout's
helpers: the im2col column of tap (ky, kx) and channel c is written out here as
(ky*K + kx)*C + c, the documented order)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from bnnhw.analyze import analyze_layer, expected_unique, kernel_codes
from bnnhw.ir import Dense


def conv_layer(codes_by_channel, k=3, thresholds=None, acc=(0, None)):
    """A binary conv layer whose kernel (o, c) has the given 9-bit code: bit ky*3+kx."""
    c_in = len(codes_by_channel)
    mh = len(codes_by_channel[0])
    w = np.zeros((mh, k * k * c_in), dtype=np.uint8)
    for c, codes in enumerate(codes_by_channel):
        for o, code in enumerate(codes):
            for ky in range(k):
                for kx in range(k):
                    w[o, (ky * k + kx) * c_in + c] = (code >> (ky * k + kx)) & 1
    mw = w.shape[1]
    t = np.full(mh, mw // 2, dtype=np.int64) if thresholds is None else np.asarray(thresholds)
    return Dense(name="conv1", kind="conv", in_shape=(6, 6, c_in), out_shape=(4, 4, mh),
                 input_bits=1, input_signed=False, weights=w, acc_min=acc[0],
                 acc_max=mw if acc[1] is None else acc[1], direction=np.ones(mh, np.int8),
                 thresholds=t, kernel=k)


def test_unique_kernels_per_input_channel_with_and_without_complements():
    c0 = [5, 5, 511 ^ 5, 7]      # 3 distinct; 5 and its complement merge -> 2
    c1 = [1, 2, 3, 4]            # 4 distinct either way
    layer = conv_layer([c0, c1])
    assert kernel_codes(layer).tolist() == [list(p) for p in zip(c0, c1)]
    r = analyze_layer(layer)
    assert (r["kernels"], r["unique"], r["unique_with_complements"]) == (8, 7, 6)
    assert r["unique_fraction"] == pytest.approx(7 / 8)
    assert r["unique_fraction_with_complements"] == pytest.approx(6 / 8)
    assert r["random_expected_fraction"] == pytest.approx(expected_unique(4, 512) / 4)


def test_duplicate_and_complement_filters_identical_inverted_and_dead_channels():
    # 5 output channels over 1 input channel (MW = 9, popcount range 0..9)
    codes = [[0b101010101, 0b101010101, 0b010101010, 0b101010101, 0b000000111]]
    # row 1 duplicates row 0 with the same threshold -> identical channel;
    # row 2 complements row 0 with threshold 0 + 9 + 1 - 4 = 6 -> the inverse of channel 0;
    # row 3 duplicates row 0 with another threshold -> shares the popcount only;
    # row 4: threshold 0 -> always 1 (dead)
    layer = conv_layer(codes, thresholds=[4, 4, 6, 7, 0])
    r = analyze_layer(layer)
    assert (r["duplicate_filters"], r["complement_filters"]) == (2, 1)
    assert (r["identical_channels"], r["inverted_channels"]) == (1, 1)
    assert (r["constant_one_channels"], r["constant_zero_channels"], r["dead_channels"]) == (1, 0, 1)
    never = analyze_layer(conv_layer(codes, thresholds=[4, 4, 6, 7, 10]))
    assert (never["constant_zero_channels"], never["dead_channels"]) == (1, 1)


def test_expected_unique_matches_a_simulation():
    rng = np.random.default_rng(0)
    for n, m in ((64, 512), (256, 512), (128, 256)):
        sim = np.mean([len(np.unique(rng.integers(0, m, n))) for _ in range(400)])
        assert expected_unique(n, m) == pytest.approx(sim, rel=0.01)


def test_analyze_command_json_on_a_shipped_model():
    r = subprocess.run([sys.executable, "-m", "bnnhw", "analyze", "--model", "tfc-digits",
                        "--random", "1", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert [l["name"] for l in res["layers"]] == ["fc0", "fc1", "fc2", "fc3"]
    assert res["summary"]["paper_unique_fraction"] == 0.42 and "random" in res
