"""The default run (``pytest`` with no arguments, as CI runs it) collects every test folder.

pytest's default ``norecursedirs`` contains ``build``, which silently skipped the whole
``tests/build`` tier (the real TFC bitstream and its estimate-vs-synthesis check among
them); pyproject.toml sets ``norecursedirs`` without it."""
from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_folder_is_skipped_by_norecursedirs(pytestconfig):
    patterns = pytestconfig.getini("norecursedirs")
    folders = [p for p in TESTS.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert {p.name for p in folders} >= {"build", "boards", "cores", "ir", "sim", "system",
                                         "train"}
    skipped = [p.name for p in folders if any(fnmatch(p.name, pat) for pat in patterns)]
    assert skipped == [], f"norecursedirs {patterns} skips tests/{skipped}"
