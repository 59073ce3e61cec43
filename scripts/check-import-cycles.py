#!/usr/bin/env python3
"""Checks that the files of a Rust crate import each other without cycles.

Builds a file-level graph of crates/candle-coreml/src (by default): one node
per .rs file, an edge A -> B when A names an item of B's module, through a
`use` declaration (`use crate::a::b::X;`, `use super::{x, y::Z};`, re-exports
included) or a path written in code (`crate::a::b::f(..)`, `super::x::Y`).
A path is resolved to the deepest module that is a file, so
`crate::portable::kernel::Args` is an edge to portable/kernel.rs and
`super::Registry` (from ops/conv.rs) one to ops/mod.rs.

`mod x;` declarations are not edges: a parent declaring its children is
ownership, not use (every child that imports an item of its parent would
otherwise form a "cycle"). Comments and string literals are ignored, and
so is test-only code (`#[cfg(test)]` modules and the files declared under
`#[cfg(test)]`) unless --with-tests is given: a unit test may build a whole
program through the planner, which is no dependency of the code it tests.

Prints the graph's size and every cycle found (as a strongly connected
component, with one cycle spelled out), and exits 1 if there is one.

    python3 scripts/check-import-cycles.py [SRC_DIR] [--edges] [--with-tests] [--forbid A:B ...]

--edges prints every edge. --forbid FROM:TO (path prefixes relative to
SRC_DIR) fails when a file under FROM imports a file under TO; by default
the backends may not import the facade: native/:model.rs and
portable/:model.rs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DEFAULT_SRC = Path(__file__).resolve().parent.parent / "crates/candle-coreml/src"
DEFAULT_FORBID = ["native/:model.rs", "portable/:model.rs", "engine/:model.rs"]


def strip_comments_and_strings(text: str) -> str:
    """Text with comments, string and char literals blanked out."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4] + "    "):
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            i += len(m.group(0)) if m else 1
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(path: Path, src: Path, path_attrs: dict[Path, tuple[str, ...]]) -> tuple[str, ...]:
    """The module path of a file: ("crate", "a", "b")."""
    if path in path_attrs:
        return path_attrs[path]
    rel = path.relative_to(src)
    parts = list(rel.with_suffix("").parts)
    if parts in (["lib"], ["main"]):
        return ("crate",)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return ("crate", *parts)


def find_path_attrs(files: list[Path], src: Path) -> dict[Path, tuple[str, ...]]:
    """Files named by `#[path = "..."] mod name;`, with their module paths."""
    out: dict[Path, tuple[str, ...]] = {}
    for f in files:
        text = f.read_text()
        for m in re.finditer(r'#\[path\s*=\s*"([^"]+)"\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', text):
            target = (f.parent / m.group(1)).resolve()
            owner = module_of(f, src, {})
            out[target] = (*owner, m.group(2))
    return out


def test_only_files(files: list[Path], src: Path) -> set[Path]:
    """Files declared only under `#[cfg(test)]` (`#[cfg(test)] mod testutil;`,
    `#[cfg(test)] #[path = "x_tests.rs"] mod tests;`)."""
    out: set[Path] = set()
    pat = r'#\[cfg\(test\)\]\s*((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;'
    for f in files:
        for m in re.finditer(pat, f.read_text()):
            attr = re.search(r'#\[path\s*=\s*"([^"]+)"\]', m.group(1))
            if attr:
                out.add((f.parent / attr.group(1)).resolve())
                continue
            base = f.parent if f.name in ("mod.rs", "lib.rs", "main.rs") else f.parent / f.stem
            for cand in (base / f"{m.group(2)}.rs", base / m.group(2) / "mod.rs"):
                if cand.exists():
                    out.add(cand.resolve())
    return out


def blank_test_modules(code: str) -> str:
    """`code` with every inline `#[cfg(test)] mod x { ... }` blanked out."""
    for m in reversed(list(re.finditer(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod\s+\w+\s*\{", code))):
        depth, i = 1, m.end()
        while i < len(code) and depth:
            if code[i] == "{":
                depth += 1
            elif code[i] == "}":
                depth -= 1
            i += 1
        code = code[: m.start()] + " " * (i - m.start()) + code[i:]
    return code


def split_use_tree(tree: str) -> list[str]:
    """Expands a use tree (`a::{b, c::{d, e}}`) into full paths."""
    tree = tree.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", tree, re.S)
    if not m:
        return [re.sub(r"\s+as\s+\w+$", "", tree).strip()]
    prefix, inner = m.group(1), m.group(2)
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        for sub in split_use_tree(item):
            out.append(prefix.rstrip(":") if sub == "self" else prefix + sub)
    return out


def inline_modules(code: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of every inline `mod name { ... }` of the file."""
    out = []
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{", code):
        depth, i = 1, m.end()
        while i < len(code) and depth:
            if code[i] == "{":
                depth += 1
            elif code[i] == "}":
                depth -= 1
            i += 1
        out.append((m.start(), i, m.group(1)))
    return out


def referenced_paths(code: str) -> list[tuple[int, str]]:
    """Every `crate::`/`super::`/`self::` path of `use` trees and of code,
    with its position in the file."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        for p in split_use_tree(m.group(1)):
            paths.append((m.start(), re.sub(r"\s+", "", p)))
    body = re.sub(r"\buse\s+[^;]+;", lambda m: " " * len(m.group(0)), code)
    # `crate::x`, `super::x`, and `child::x` (a relative path; kept only when
    # `child` is a module of the file, see `resolve`).
    for m in re.finditer(r"(?<![\w:])([a-z_]\w*(?:::\w+)+)", body):
        paths.append((m.start(), m.group(1)))
    return paths


def resolve(path: str, here: tuple[str, ...], is_mod_file: bool, modules: dict[tuple[str, ...], Path]):
    """The file whose module is the deepest prefix of `path`, seen from `here`."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = ["crate"], parts[1:]
    elif parts[0] in ("self", "super"):
        base = list(here)
        rest = parts
        while rest and rest[0] in ("self", "super"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    else:
        # A relative path names a child module of `here` (or an outer crate,
        # std, a local item: not an edge).
        if (*here, parts[0]) not in modules:
            return None
        base, rest = list(here), parts
    full = [*base, *rest]
    for k in range(len(full), 0, -1):
        f = modules.get(tuple(full[:k]))
        if f is not None:
            return f
    return None


def cycles(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def one_cycle(comp, edges):
    """A cycle through the component's first node, by breadth-first search."""
    start = comp[0]
    members = set(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def main() -> int:
    args = sys.argv[1:]
    show_edges = "--edges" in args
    with_tests = "--with-tests" in args
    forbid = []
    rest = []
    i = 0
    while i < len(args):
        if args[i] == "--forbid":
            forbid.append(args[i + 1])
            i += 2
        elif args[i] in ("--edges", "--with-tests"):
            i += 1
        else:
            rest.append(args[i])
            i += 1
    src = Path(rest[0]).resolve() if rest else DEFAULT_SRC
    forbid = forbid or DEFAULT_FORBID
    files = sorted(p.resolve() for p in src.rglob("*.rs"))
    path_attrs = find_path_attrs(files, src)
    skipped = set() if with_tests else test_only_files(files, src)
    modules = {module_of(f, src, path_attrs): f for f in files}
    rel = lambda f: str(f.relative_to(src))
    edges: dict[str, set[str]] = {}
    for f in files:
        if f in skipped:
            continue
        here = module_of(f, src, path_attrs)
        code = strip_comments_and_strings(f.read_text())
        if not with_tests:
            code = blank_test_modules(code)
        inline = inline_modules(code)
        for at, p in referenced_paths(code):
            # Inside `mod tests { .. }`, `super` is the file's own module.
            scope = (*here, *(name for (a, b, name) in inline if a <= at < b))
            target = resolve(p, scope, f.name == "mod.rs", modules)
            if target is not None and target != f:
                edges.setdefault(rel(f), set()).add(rel(target))
    nodes = [rel(f) for f in files if f not in skipped]
    n_edges = sum(len(v) for v in edges.values())
    print(f"import graph of {src}: {len(nodes)} files, {n_edges} edges")
    if skipped:
        print("test-only code left out (--with-tests keeps it): `#[cfg(test)]` modules, and "
              + ", ".join(sorted(rel(f) for f in skipped)))
    if show_edges:
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f"  {a} -> {b}")
    failed = False
    for comp in cycles(nodes, edges):
        failed = True
        print(f"cycle among {len(comp)} files: {', '.join(comp)}")
        print("  e.g. " + " -> ".join(one_cycle(comp, edges)))
    for rule in forbid:
        a, b = rule.split(":", 1)
        for x in sorted(edges):
            for y in sorted(edges[x]):
                if x.startswith(a) and y.startswith(b):
                    failed = True
                    print(f"forbidden import: {x} -> {y} ({rule})")
    if not failed:
        print("no cycle between files; forbidden imports: none (" + ", ".join(forbid) + ")")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
