#!/usr/bin/env python3
"""The import graph of the ``bnnhw`` package, and its cycles.

Reads the source (``bnnhw/`` plus ``boards/``, ``sim/``, ``train/``, installed as
``bnnhw.boards``, ``bnnhw.sim``, ``bnnhw.train``) with :mod:`ast`, so nothing is
imported.  An edge A -> B means module A imports module B (``from .x import y``
counts as an edge to ``x``, and to ``x.y`` when that is a module).  Two graphs:

* top level: imports executed when the module is imported;
* all: top-level plus function-local imports (what a reader must know to see
  what depends on what).

Prints the cycles (strongly connected components larger than one module) of both;
exit status 1 when the top-level graph has one (``--strict``: either graph).

    .venv/bin/python tools/import_graph.py [--edges] [--strict]
"""
from __future__ import annotations

import argparse
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = {"bnnhw": "bnnhw", "bnnhw.boards": "boards", "bnnhw.sim": "sim",
            "bnnhw.train": "train"}


def modules() -> dict[str, str]:
    out = {}
    for pkg, folder in PACKAGES.items():
        base = os.path.join(ROOT, folder)
        for dirpath, dirnames, files in os.walk(base):
            dirnames[:] = [d for d in dirnames if d not in ("__pycache__",)
                           and not (pkg == "bnnhw" and dirpath == base
                                    and d in ("boards", "sim", "train"))]
            rel = os.path.relpath(dirpath, base)
            parts = [] if rel == "." else rel.split(os.sep)
            for f in files:
                if not f.endswith(".py"):
                    continue
                name = ".".join([pkg] + parts + ([] if f == "__init__.py" else [f[:-3]]))
                out[name] = os.path.join(dirpath, f)
    return out


def _resolve(mod: str, is_pkg: bool, node, known) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = mod.split(".")
            base = base[:len(base) - node.level + (1 if is_pkg else 0)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
    out = []
    for n in names:
        while n and n not in known:
            n = n.rpartition(".")[0]
        if n:
            out.append(n)
    return out


def graphs():
    mods = modules()
    top = {m: set() for m in mods}
    full = {m: set() for m in mods}
    for m, path in mods.items():
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        is_pkg = path.endswith("__init__.py")
        toplevel = set()
        for node in tree.body:
            for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    toplevel.add(id(sub))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _resolve(m, is_pkg, node, mods):
                    if t == m:
                        continue
                    full[m].add(t)
                    if id(node) in toplevel:
                        top[m].add(t)
    return top, full


def cycles(g) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", action="store_true", help="print the top-level edges")
    ap.add_argument("--strict", action="store_true",
                    help="fail on a cycle through function-local imports too")
    args = ap.parse_args(argv)
    top, full = graphs()
    # a package importing its own submodules (its __init__ re-exporting them) is not a
    # dependency cycle between modules: drop package -> own submodule edges
    for g in (top, full):
        for m in g:
            g[m] = {t for t in g[m] if not t.startswith(m + ".")}
    if args.edges:
        for m in sorted(top):
            print(f"{m} -> {', '.join(sorted(top[m])) or '-'}")
    ct, cf = cycles(top), cycles(full)
    print(f"{len(top)} modules, {sum(map(len, top.values()))} top-level import edges, "
          f"{sum(map(len, full.values()))} with function-local imports")
    print(f"top-level cycles: {len(ct)}")
    for c in ct:
        print("  " + " <-> ".join(c))
    print(f"cycles through function-local imports too: {len(cf)}")
    for c in cf:
        print("  " + " <-> ".join(c))
    return 1 if ct or (args.strict and cf) else 0


if __name__ == "__main__":
    sys.exit(main())
