"""Fixtures of the build tests: a trained digits TFC, small random-weight IRs, the CLI.

The ``slow`` tier (more real bitstream builds) is deselected by default (pyproject's
``-m 'not slow'``); run it with ``pytest -m slow tests/build``."""
from __future__ import annotations

import pytest

from tests.system.conftest import ENV, PY, bnnhw, last_json  # noqa: F401  (shared helpers)
from tests.system.netgen import random_ir


@pytest.fixture(scope="session")
def tfc_digits(tmp_path_factory):
    """TFC at width 0.5 trained briefly on digits (5-bit inputs): a checkpoint path."""
    path = tmp_path_factory.mktemp("tfc") / "tfc.pt"
    bnnhw("train", "--arch", "tfc", "--dataset", "digits", "--epochs", "4", "--width", "0.5",
          "--batch-size", "50", "--lr", "0.02", "--dropout", "0.1", "--input-dropout", "0",
          "--json", "-o", path)
    return path


def lfc_ir():
    """A random-weight LFC (3 x 1024 on 28x28 1-bit inputs, 2.9 Mbit of weights)."""
    ir = random_ir(input=(28, 28, 1, 1), layers=[("fc", 1024), ("fc", 1024), ("fc", 1024),
                                                  ("fc", 10)], seed=3)
    ir.spec = {"arch": "lfc", "width": 1.0}
    return ir


def small_conv_ir():
    """A small conv net (8-bit input, conv + pool + conv + fc) for plan and gate tests."""
    return random_ir(input=(8, 8, 1, 8), layers=[("conv", 4, 3, 1, 1), ("pool", 2),
                                                 ("conv", 8, 3, 1, 0), ("fc", 10)], seed=5)
