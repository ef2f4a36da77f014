#!/usr/bin/env python3
"""Mutation check: do the quick test tiers catch a wrong bit order or comparison?

Each named mutation below changes layout, golden-model or core code in a
*scratch copy* of this tree (never in the tree itself), then runs the quick
test files listed for it, cheapest first, with the scratch copy's code on the
import path.  A mutation is *caught* when a test fails; the script prints the
first failing test per mutation and exits 1 if any mutation survives.

    .venv/bin/python tools/mutate.py                 # every mutation, stop at the first catch
    .venv/bin/python tools/mutate.py --all           # run every listed file per mutation
    .venv/bin/python tools/mutate.py inword_reversed input_beats_chw
    .venv/bin/python tools/mutate.py --baseline      # first check the files pass unmutated

Import path: the scratch copy is run with ``PYTHONPATH=<scratch>`` from inside
it.  The editable install maps ``bnnhw.train``/``bnnhw.sim``/``bnnhw.boards``
to this tree's ``train/``, ``sim/``, ``boards/``, so the copy gets
``bnnhw/train -> ../train`` (etc.) links, and the script checks that
``bnnhw``, ``bnnhw.train`` and ``bnnhw.sim`` resolve inside the copy before
running anything.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYOUT_VEC = "tests/ir/test_layout_vectors.py"
FIXED_VEC = "tests/cores/test_cores_fixed_vectors.py"
CONFORMANCE = "tests/cores/test_cores_conformance.py"
LOWERING = "tests/cores/test_cores_lowering.py"
GOLDEN_TORCH = "tests/ir/test_golden_vs_torch.py"
MVAU_PROP = "tests/cores/test_cores_mvau_property.py"


@dataclass
class Mutation:
    name: str
    what: str
    path: str
    edits: list            # (old, new) exact replacements, each old must occur once
    tests: list            # test files, cheapest / most specific first
    extra: tuple = ()      # further (path, [(old, new)]) edits of the same mutation


MUTATIONS = [
    Mutation("input_beats_chw", "layout.input_beats streams CHW instead of HWC",
             "bnnhw/layout.py",
             [("hwc = x.transpose(0, 2, 3, 1).reshape(x.shape[0], -1)",
               "hwc = x.reshape(x.shape[0], -1)")],
             [LAYOUT_VEC, LOWERING]),
    Mutation("inword_reversed",
             "element j at bit SIMD-1-j, consistently in layout.pack_weights and MVAU.encode",
             "bnnhw/layout.py",
             [("weights = (1 << np.arange(simd, dtype=object))",
               "weights = (1 << np.arange(simd - 1, -1, -1, dtype=object))")],
             [FIXED_VEC, LAYOUT_VEC, CONFORMANCE],
             extra=(("bnnhw/cores/mvau.py",
                     [("word |= (int(v) & mask) << (j * self.bits)",
                       "word |= (int(v) & mask) << ((self.simd - 1 - j) * self.bits)")]),)),
    Mutation("thresholds_pe_reversed", "layout.pack_thresholds gives PE p the neuron of PE-1-p",
             "bnnhw/layout.py",
             [("return [[t[nf * pe + p].tolist() for nf in range(mh // pe)] for p in range(pe)]",
               "return [[t[nf * pe + pe - 1 - p].tolist() for nf in range(mh // pe)] "
               "for p in range(pe)]")],
             [LAYOUT_VEC, FIXED_VEC, CONFORMANCE]),
    Mutation("sign_of_zero", "layout.to_bits maps 0 to -1", "bnnhw/layout.py",
             [("return (np.asarray(pm1) >= 0).astype(np.uint8)",
               "return (np.asarray(pm1) > 0).astype(np.uint8)")],
             [LAYOUT_VEC, GOLDEN_TORCH]),
    Mutation("flatten_chw", "layout.fc_weight_from_torch keeps torch's (c, h, w) columns",
             "bnnhw/layout.py",
             [("w.reshape(out, channels, height, width).transpose(0, 2, 3, 1).reshape(out, -1)",
               "w.reshape(out, channels, height, width).reshape(out, -1)")],
             [LAYOUT_VEC, GOLDEN_TORCH]),
    Mutation("im2col_cfirst", "layout.conv_weight_to_matrix keeps (c, ky, kx) columns",
             "bnnhw/layout.py",
             [("return np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1))",
               "return np.ascontiguousarray(w.reshape(w.shape[0], -1))")],
             [LAYOUT_VEC, GOLDEN_TORCH]),
    Mutation("signed_plane_positive",
             "layout.plane_coefficients: MSB plane of signed inputs +2^(B-1)",
             "bnnhw/layout.py",
             [("        c[-1] = -c[-1]\n", "        c[-1] = c[-1]\n")],
             [LAYOUT_VEC, FIXED_VEC, CONFORMANCE]),
    Mutation("golden_threshold_gt", "golden_ops.threshold uses acc > T", "bnnhw/golden_ops.py",
             [("return (np.asarray(acc) >= np.asarray(thresholds)).astype(np.uint8)",
               "return (np.asarray(acc) > np.asarray(thresholds)).astype(np.uint8)")],
             [GOLDEN_TORCH, CONFORMANCE]),
    Mutation("mvau_hw_threshold_gt", "MVAU hardware compares acc > T", "bnnhw/cores/mvau.py",
             [("fields.append(accs[p] >= port.data)", "fields.append(accs[p] > port.data)")],
             [FIXED_VEC, CONFORMANCE]),
    Mutation("swu_pad_zero", "sliding-window unit pads with 0 instead of pad_value",
             "bnnhw/cores/swu.py",
             [("pad_word |= (self.pad_value & ((1 << E) - 1)) << (j * E)",
               "pad_word |= (0 & ((1 << E) - 1)) << (j * E)")],
             [FIXED_VEC, CONFORMANCE]),
    Mutation("maxpool_ops_swapped", "max-pool hardware swaps OR and AND channels",
             "bnnhw/cores/maxpool.py",
             [('if self.pool_op[g * SIMD + j] == "and":',
               'if self.pool_op[g * SIMD + j] == "or":')],
             [FIXED_VEC, CONFORMANCE]),
    Mutation("label_select_class0", "LabelSelect hardware always answers class 0",
             "bnnhw/cores/label_select.py",
             [("o.payload.eq(Mux(take, cand, best_i))", "o.payload.eq(0)")],
             [FIXED_VEC, CONFORMANCE]),
]


def _copy_tree(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split("\n")
    for f in filter(None, files):
        src = ROOT / f
        if not src.is_file():
            continue
        out = dst / f
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)
    # bnnhw.train/sim/boards live in train/, sim/, boards/ (package-dir); mirror that
    for sub in ("train", "sim", "boards"):
        link = dst / "bnnhw" / sub
        if not link.exists():
            link.symlink_to(Path("..") / sub)


def _env(scratch: Path) -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(scratch), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    return env


def _check_imports(scratch: Path) -> None:
    code = ("import bnnhw, bnnhw.train, bnnhw.sim, bnnhw.layout as L; "
            "print(bnnhw.__file__); print(bnnhw.train.__file__); print(bnnhw.sim.__file__); "
            "print(L.__file__)")
    r = subprocess.run([sys.executable, "-c", code], cwd=scratch, env=_env(scratch),
                       capture_output=True, text=True)
    paths = r.stdout.split()
    if r.returncode or len(paths) != 4:
        sys.exit(f"import check failed:\n{r.stdout}\n{r.stderr}")
    real = os.path.realpath(scratch)
    for p in paths:
        if not os.path.realpath(p).startswith(real + os.sep):
            sys.exit(f"import check failed: {p} is not inside the scratch copy {scratch}")


def _apply(scratch: Path, path: str, edits) -> str:
    f = scratch / path
    text = f.read_text()
    for old, new in edits:
        n = text.count(old)
        if n != 1:
            sys.exit(f"{path}: the mutation's anchor occurs {n} times (code changed?): {old!r}")
        text = text.replace(old, new)
    original = f.read_text()
    f.write_text(text)
    return original


def _pytest(scratch: Path, test: str, timeout: int = 1200) -> tuple[bool, str, float]:
    """(passed, first failing test or '', seconds)."""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", test, "-x", "-q", "-p", "no:cacheprovider",
                        "-rf", "--no-header"], cwd=scratch, env=_env(scratch),
                       capture_output=True, text=True, timeout=timeout)
    dt = time.monotonic() - t0
    if r.returncode == 0:
        return True, "", dt
    m = re.search(r"^(?:FAILED|ERROR) (\S+)", r.stdout, re.M)
    return False, (m.group(1) if m else f"pytest exit {r.returncode}: "
                   + (r.stdout + r.stderr).strip().splitlines()[-1]), dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutations to run (default: all)")
    ap.add_argument("--all", action="store_true", help="run every listed file per mutation")
    ap.add_argument("--baseline", action="store_true",
                    help="first run every test file unmutated (they must pass)")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        ap.error(f"unknown mutations {sorted(unknown)}; known: {[m.name for m in MUTATIONS]}")
    if args.list:
        for m in chosen:
            print(f"{m.name:24s} {m.what}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bnnhw-mutate-") as tmp:
        scratch = Path(tmp) / "tree"
        _copy_tree(scratch)
        _check_imports(scratch)
        print(f"scratch copy: {scratch} (imports resolve inside it)", flush=True)
        if args.baseline:
            for test in sorted({t for m in chosen for t in m.tests}):
                ok, first, dt = _pytest(scratch, test)
                print(f"baseline {test}: {'pass' if ok else 'FAIL ' + first} ({dt:.0f} s)",
                      flush=True)
                if not ok:
                    return 2
        survivors = []
        for m in chosen:
            originals = [(m.path, _apply(scratch, m.path, m.edits))]
            for path, edits in m.extra:
                originals.append((path, _apply(scratch, path, edits)))
            caught = []
            try:
                for test in m.tests:
                    ok, first, dt = _pytest(scratch, test)
                    print(f"  {m.name}: {test}: {'passes' if ok else 'CATCHES: ' + first} "
                          f"({dt:.0f} s)", flush=True)
                    if not ok:
                        caught.append(first)
                        if not args.all:
                            break
            finally:
                for path, text in originals:
                    (scratch / path).write_text(text)
            print(f"{m.name:24s} {'caught by ' + caught[0] if caught else 'SURVIVED'}"
                  f"  -- {m.what}", flush=True)
            if not caught:
                survivors.append(m.name)
    if survivors:
        print(f"surviving mutations: {survivors}")
        return 1
    print(f"all {len(chosen)} mutations caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
