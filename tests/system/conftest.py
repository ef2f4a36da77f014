"""Fixtures of the system tests: trained digits TFCs, a CNV-shaped net, the CLI runner.

Verilator builds are cached by Verilog hash (``$BNNHW_CACHE``), so a warm cache
compiles nothing; cold, the suite builds about half a dozen small designs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import copy

from .netgen import CNV_SPEC_LAYERS, cnv_checkpoint, synthetic_npz

PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def bnnhw(*args, check=True, env=None, timeout=900):
    r = subprocess.run([PY, "-m", "bnnhw", *map(str, args)], capture_output=True, text=True,
                       env=env or ENV, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"bnnhw {' '.join(map(str, args))} failed ({r.returncode}):\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def last_json(r):
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def digits_tfc(tmp_path_factory):
    """TFC (width 0.5) trained briefly on digits: 5-bit (``8``) and 1-bit (``1``) inputs."""
    d = tmp_path_factory.mktemp("tfc")
    out = {}
    for bits in (8, 1):
        path = d / f"tfc{bits}.pt"
        bnnhw("train", "--arch", "tfc", "--dataset", "digits", "--epochs", "4", "--width", "0.5",
              "--batch-size", "50", "--lr", "0.02", "--dropout", "0.1", "--input-dropout", "0",
              "--input-bits", bits, "--json", "-o", path)
        out[bits] = path
    return out


@pytest.fixture(scope="session")
def cnv_small(tmp_path_factory):
    """A CNV-shaped net (3 convs with integer and binary padding, 2 max-pools, 2 fcs) on
    16x16 RGB images: (checkpoint path, dataset .npz path)."""
    d = tmp_path_factory.mktemp("cnv")
    npz = synthetic_npz(d / "syn16.npz")
    return cnv_checkpoint(d / "cnv.pt", npz), npz


@pytest.fixture(scope="session")
def cnv_pool_before_bn(tmp_path_factory):
    """The CNV-shaped net with conv -> pool -> BN -> sign, trained a few steps, a third of
    every hidden BatchNorm's scales negative, and the signed 8-bit first conv padded with
    the integer -37: (checkpoint path, dataset .npz path)."""
    d = tmp_path_factory.mktemp("cnvpool")
    npz = synthetic_npz(d / "syn16.npz", seed=1)
    layers = copy.deepcopy(CNV_SPEC_LAYERS)
    layers[0]["pad_value"] = -37
    return cnv_checkpoint(d / "cnvpool.pt", npz, seed=2, layers=layers, pool_order="before_bn",
                          train_steps=20, negative_scales=0.35), npz
