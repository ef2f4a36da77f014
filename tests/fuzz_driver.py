"""Fuzz driver: byte-level mutations of one valid input file, each loaded by bnnhw.

    python tests/fuzz_driver.py FORMAT COUNT SEED WORKDIR

Every mutated input must load (``ok``) or raise a :class:`bnnhw.errors.BnnhwError`
(``error``); any other exception prints the input's index and traceback and exits 1.
The last stdout line is a JSON summary.  ``tests/test_fuzz.py`` runs this in a
subprocess under ``RLIMIT_DATA`` and a timeout (torch, OpenBLAS and the WebAssembly
runtime reserve much address space, so ``RLIMIT_AS`` would be flaky).

Mutations (1-3 per input, seeded): bit flips, random spans, runs of 0xFF / 0x00 (huge
or zero sizes), truncation, insertion, duplication.  For zip containers (checkpoint,
IR, ``.npz``) half the inputs are mutated inside one member and re-zipped with correct
CRCs, and for the folding file (JSON) half only in their digits, so the checks behind
the CRC and the JSON parser are reached too.
"""
from __future__ import annotations

import io
import json
import os
import random
import sys
import time
import traceback
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not b:
            b = bytearray(rng.randbytes(rng.randint(1, 64)))
            continue
        op = rng.randrange(7)
        i = rng.randrange(len(b))
        if op == 0:                                      # bit flips
            for _ in range(rng.randint(1, 8)):
                j = rng.randrange(len(b))
                b[j] ^= 1 << rng.randrange(8)
        elif op == 1:                                    # random span
            n = rng.randint(1, 16)
            b[i:i + n] = rng.randbytes(n)
        elif op == 2:                                    # 0xFF run: huge sizes
            n = rng.randint(2, 8)
            b[i:i + n] = b"\xff" * n
        elif op == 3:                                    # 0x00 run: zero sizes
            n = rng.randint(1, 8)
            b[i:i + n] = b"\x00" * n
        elif op == 4:                                    # truncation
            del b[i:]
        elif op == 5:                                    # insertion
            b[i:i] = rng.randbytes(rng.randint(1, 32))
        else:                                            # duplication
            n = rng.randint(1, 64)
            b[i:i] = b[i:i + n]
    return bytes(b)


def mutate_digits(data: bytes, rng: random.Random) -> bytes:
    """Change, drop or add digits and signs only: JSON stays valid more often, so the
    checks behind the parser are reached."""
    b = bytearray(data)
    spots = [i for i, c in enumerate(b) if chr(c).isdigit()]
    for _ in range(rng.randint(1, 3)):
        i = rng.choice(spots)
        op = rng.randrange(4)
        if op == 0:
            b[i] = ord(rng.choice("0123456789"))
        elif op == 1:
            b[i:i + 1] = rng.choice([b"0", b"-1", b"99999999999", b"1e9", b"4096", b"3"])
        elif op == 2:
            b[i:i] = b"-"
        else:
            b[i:i] = bytes(rng.choice("0123456789"), "ascii") * rng.randint(1, 12)
        spots = [j for j, c in enumerate(b) if chr(c).isdigit()] or [0]
    return bytes(b)


def mutate_member(data: bytes, rng: random.Random) -> bytes:
    """Mutate one member of a zip archive and re-zip it (valid CRCs)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    infos = src.infolist()
    victim = rng.randrange(len(infos))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for k, info in enumerate(infos):
            blob = src.read(info)
            z.writestr(info.filename, mutate(blob, rng) if k == victim else blob)
    return out.getvalue()


def mutate_ir(data: bytes, rng: random.Random) -> bytes:
    """Every other call: the digits of the IR's JSON header only (re-zipped), which
    passes the CRCs and the JSON parser and reaches the IR's own consistency checks."""
    if rng.random() < 0.5:
        return mutate_member(data, rng)
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            blob = src.read(info)
            if info.filename == "header.npy":
                head = np.load(io.BytesIO(blob))
                text = mutate_digits(head.tobytes(), rng)
                buf = io.BytesIO()
                np.save(buf, np.frombuffer(text, dtype=np.uint8))
                blob = buf.getvalue()
            z.writestr(info.filename, blob)
    return out.getvalue()


# ------------------------------------------------------------------ the formats

def _tiny_checkpoint(path: Path) -> None:
    import torch

    from bnnhw.train.checkpoint import save_checkpoint
    from bnnhw.train.models import build_model
    torch.manual_seed(0)
    spec = {"version": 1, "arch": "tfc", "num_classes": 4, "width": 1.0,
            "input": {"channels": 1, "height": 4, "width": 4, "bits": 8, "signed": False,
                      "offset": 0, "scale_log2": -8},
            "layers": [{"type": "fc", "out_features": 8}, {"type": "fc", "out_features": 4}],
            "pool_order": "after_sign", "norm": "bn", "last_norm": "scalar",
            "binarize": "det", "dropout": 0.0, "input_dropout": 0.0, "bn_eps": 1e-4,
            "bn_momentum": 0.5}
    model = build_model(spec)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randint(0, 256, (32, 1, 4, 4)))
    model.eval()
    save_checkpoint(str(path), spec=spec, model=model, dataset={"name": "synthetic"},
                    split={}, meta={})


def _tiny_ir(path: Path):
    from tests.system.netgen import random_ir
    ir = random_ir(input=(4, 4, 1, 8), layers=[("conv", 4, 3, 1, 1), ("pool", 2),
                                               ("fc", 8), ("fc", 4)], seed=1)
    ir.save(str(path))
    return ir


def setup(fmt: str, wd: Path):
    """(valid bytes, name of the file to write them to, loader(path), structured
    mutation or None)."""
    from bnnhw.golden import GoldenModel
    if fmt == "checkpoint":
        from bnnhw.export import load_model_any
        p = wd / "valid.pt"
        _tiny_checkpoint(p)

        def load(path):
            ir, _ck = load_model_any(str(path))
            GoldenModel(ir).predict(np.zeros((1, 1, 4, 4), np.uint8))
        return p.read_bytes(), "m.pt", load, mutate_member
    if fmt == "ir":
        from bnnhw.ir import load_ir
        p = wd / "valid.bnn"
        _tiny_ir(p)

        def load(path):
            ir = load_ir(str(path))
            q = ir.input
            GoldenModel(ir).predict(np.zeros((2, q.channels, q.height, q.width), np.uint8))
        return p.read_bytes(), "m.bnn", load, mutate_ir
    if fmt == "npz":
        from bnnhw.train import data as D
        buf = io.BytesIO()
        rng = np.random.default_rng(0)
        np.savez(buf, x_train=rng.integers(0, 256, (20, 1, 6, 6), dtype=np.uint8),
                 y_train=np.arange(20) % 3, x_test=rng.integers(0, 256, (6, 6, 6, 1),
                                                                dtype=np.uint8),
                 y_test=np.arange(6) % 3, classes=np.array(["a", "b", "c"]))

        def load(path):
            ds = D.load_dataset(str(path))
            split = D.make_split(ds)
            D.select(ds, "train", split)
        return buf.getvalue(), "d.npz", load, mutate_member
    if fmt == "image":
        from PIL import Image

        from bnnhw.train import data as D
        folder = wd / "images"
        for c in ("cat", "dog"):
            (folder / c).mkdir(parents=True, exist_ok=True)
            for k in range(2):
                px = (np.arange(64, dtype=np.uint8).reshape(8, 8) * (k + 1) * 3)
                Image.fromarray(px, "L").save(folder / c / f"{k}.png")
        valid = (folder / "dog" / "1.png").read_bytes()

        def load(path):
            D.load_dataset(str(folder))
        return valid, "images/dog/1.png", load, None
    if fmt == "folding":
        from bnnhw.dataflow import load_folding_file, plan_folding
        ir = _tiny_ir(wd / "fold.bnn")
        plan = plan_folding(ir)
        text = json.dumps(plan.to_json(), indent=1, sort_keys=True).encode()

        def load(path):
            plan_folding(ir, folding=load_folding_file(str(path)), source=str(path))
        return text, "folding.json", load, mutate_digits
    raise SystemExit(f"unknown format {fmt}")


def main(fmt: str, count: int, seed: int, wd: Path) -> int:
    from bnnhw.errors import BnnhwError
    wd.mkdir(parents=True, exist_ok=True)
    valid, name, load, structured = setup(fmt, wd)
    target = wd / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(valid)
    load(target)                                   # the unmutated input loads
    outcomes = {"ok": 0, "error": 0}
    t0 = time.monotonic()
    for k in range(count):
        rng = random.Random(seed * 1_000_003 + k)
        data = structured(valid, rng) if structured and k % 2 else mutate(valid, rng)
        target.write_bytes(data)
        try:
            load(target)
            outcomes["ok"] += 1
        except BnnhwError:
            outcomes["error"] += 1
        except BaseException:
            keep = wd / f"crash-{fmt}-{k}.bin"
            keep.write_bytes(data)
            traceback.print_exc()
            print(f"input {k} of {fmt} (kept in {keep}) raised a non-BnnhwError",
                  file=sys.stderr)
            return 1
    print(json.dumps({"format": fmt, "inputs": count, **outcomes,
                      "seconds": round(time.monotonic() - t0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])))
