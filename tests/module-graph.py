#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""The code's module graph, checked: which file of src/ calls a function
another file defines, and whether that keeps to the layers docs/design.md
draws.

    tests/module-graph.py [SRC]        check; exit 1 naming what breaks
    tests/module-graph.py --print SRC  also print the graph

Rules: no cycle between the files of one module (directory), and a module
calls only the modules below it:

    common <- image <- convert <- store <- tools
    common <- mount <- store

It reads C as text: a function is defined where a line starts with a
non-static declaration and "name(...) {"; a file calls every defined
name it writes followed by "(". That is enough for this code base, whose
function names are unique across files."""
import glob
import os
import re
import sys

# What each module may call (besides itself).
ALLOWED = {
    "common": set(),
    "image": {"common"},
    "mount": {"common"},
    "convert": {"common", "image"},
    "store": {"common", "image", "convert", "mount"},
    "tools": {"common", "image", "convert", "mount", "store"},
}
# Each tool is its own program: their main() and usage() are not calls.
IGNORED = {"main", "usage"}

DEF = re.compile(r"^(?!static\b)[A-Za-z_][\w \*]*?\b([a-z_]\w*)\(([^;{]*)\)\s*\{",
                 re.M)
CALL = re.compile(r"\b([a-z_]\w*)\s*\(")
COMMENT = re.compile(r"/\*.*?\*/", re.S)


def read(path):
    with open(path, encoding="utf-8") as f:
        return COMMENT.sub("", f.read())


def graph(src):
    files = sorted(os.path.relpath(p, src) for p in glob.glob(f"{src}/*/*.c"))
    text = {f: read(os.path.join(src, f)) for f in files}
    defs = {}
    for f in files:
        for m in DEF.finditer(text[f]):
            if m.group(1) not in IGNORED:
                defs.setdefault(m.group(1), f)
    calls = {}
    for f in files:
        used = set(CALL.findall(text[f]))
        calls[f] = sorted({defs[u] for u in used if u in defs and defs[u] != f})
    return files, calls


def module(f):
    return f.split("/")[0]


def cycles(nodes, edges):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    args = sys.argv[1:]
    show = "--print" in args
    args = [a for a in args if a != "--print"]
    src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
    files, calls = graph(src)
    bad = []
    for f in files:
        for g in calls[f]:
            if module(g) != module(f) and module(g) not in ALLOWED.get(module(f), set()):
                bad.append(f"{f} calls {g}: {module(f)} may not call {module(g)}")
    for m in sorted({module(f) for f in files}):
        fs = [f for f in files if module(f) == m]
        edges = {f: [g for g in calls[f] if module(g) == m] for f in fs}
        for c in cycles(fs, edges):
            bad.append(f"cycle in {m}: " + " <-> ".join(c))
        if show:
            print(f"{m}:")
            for f in fs:
                inner = [os.path.basename(g) for g in edges[f]]
                outer = sorted({module(g) for g in calls[f] if module(g) != m})
                print(f"  {os.path.basename(f)} -> {', '.join(inner) or '-'}"
                      + (f"  [{', '.join(outer)}]" if outer else ""))
    for b in bad:
        print(f"module-graph: {b}", file=sys.stderr)
    if not bad:
        print(f"module-graph: {len(files)} files, no cycle, layers kept")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
