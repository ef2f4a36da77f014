"""The sliding-window unit's default line buffers hide the frame boundary.

Uses the cycle-level control model (which the conformance suite checks
against the hardware): with the default ``rows`` the unit needs exactly
``max(H*W, OH*OW*K*K) * C/SIMD`` cycles per frame."""
import itertools

import pytest

from bnnhw.cores.swu import SlidingWindow

SHAPES = [s for s in itertools.product([5, 8, 9], [3, 8], [1, 2, 3, 5], [1, 2, 3], [0, 1, 2])
          if s[4] < s[2] and s[2] <= s[0] + 2 * s[4] and s[2] <= s[1] + 2 * s[4]]


@pytest.mark.parametrize("h,w,k,s,p", SHAPES)
def test_default_rows_no_bubble(h, w, k, s, p):
    core = SlidingWindow(height=h, width=w, channels=2, k=k, stride=s, pad=p, simd=1)
    core._MustUse__silence = True
    bound = max(h * w, core.out_height * core.out_width * k * k) * 2
    assert core.throughput == bound


def test_fewer_rows_cost_a_bubble():
    core = SlidingWindow(height=8, width=8, channels=1, k=3, stride=2, pad=0, rows=3)
    core._MustUse__silence = True
    assert core.throughput > max(64, core.out_height * core.out_width * 9)
