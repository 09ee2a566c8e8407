#!/usr/bin/env python3
"""Checks the shape of every crate of the workspace, as CI does (.ci/run):

- in the library (shared/src), no module imports from a layer above its own, in
  this order, top to bottom: the stages (settings, intake, enrich, dispatch, pull,
  ops), then batch, hold and quality, mapping, jobs, the partners (ghl, capi), and at the
  bottom normalize, ports, telemetry, http, error; local mode (local/src) has
  layers of its own (LOCAL_LAYERS);
- in every crate, no import circle among modules (a module may use its own
  submodules: a parent is their facade; every other use is an edge);
- no file over MAX_LINES lines, and in the library at most MAX_TOP_FILES
  top-level files besides lib.rs (the rest live in wings of their own).

An edge is any `use crate::…`, `use super::…` or relative `use child::…`, and any
`crate::…` / `super::…` path in code, resolved through `pub use` re-exports to the
module that defines the item. Test modules (`#[cfg(test)] mod tests`) are left out.

    scripts/check-layers.py            # every crate
    scripts/check-layers.py shared/src # one source folder
"""
import re
import sys
from pathlib import Path

LAYERS = [
    {"settings", "intake", "enrich", "dispatch", "pull", "ops"},
    {"batch", "hold", "quality"},
    {"mapping"},
    {"jobs"},
    {"ghl", "capi"},
    {"normalize", "ports", "telemetry", "http", "error"},
]
# Local mode, top to bottom: the server and its parts, what they use, the store.
LOCAL_LAYERS = [
    {"serve"},
    {"admin", "workers", "tasks"},
    {"status", "journal", "outbox", "dev", "ports"},
    {"store", "schema", "files", "mappings"},
]
MAX_LINES = 450
MAX_TOP_FILES = 8
# Each crate's source folder, with its layers (None: only circles and sizes).
CRATES = [
    ("shared/src", LAYERS, MAX_TOP_FILES),
    ("local/src", LOCAL_LAYERS, None),
    ("aws/src", None, None),
    ("cli/src", None, None),
    ("tests/src", None, None),
]


def module_of(path: Path, root: Path) -> tuple:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def strip(text: str) -> str:
    """The code without comments, string literals and test modules."""
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests\b", text)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    text = re.sub(r"/\*(?:.|\n)*?\*/", "", text)
    return re.sub(r"//[^\n]*", "", text)


def expand(tree: str) -> list:
    """`a::{b, c::{d, e as f}}` → [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix, inner, rest = tree[:start], tree[start + 1 : i], tree[i + 1 :]
                items, depth2, cur = [], 0, ""
                for c in inner:
                    if c == "," and depth2 == 0:
                        items.append(cur)
                        cur = ""
                        continue
                    depth2 += c == "{"
                    depth2 -= c == "}"
                    cur += c
                items.append(cur)
                return [p for item in items if item for p in expand(prefix + item + rest)]
    return [tree]


def check(root: Path, layers, max_top_files) -> tuple:
    """The problems of the crate whose sources are under `root`, and how many
    modules and imports it has."""
    files = sorted(root.rglob("*.rs"))
    modules = {module_of(f, root): f for f in files}
    code = {m: strip(f.read_text()) for m, f in modules.items()}
    problems = []

    for f in files:
        lines = f.read_text().count("\n")
        if lines > MAX_LINES:
            problems.append(f"{f}: {lines} lines; split it (at most {MAX_LINES})")
    top = [f for f in root.glob("*.rs") if f.name not in ("lib.rs", "main.rs")]
    if max_top_files is not None and len(top) > max_top_files:
        problems.append(f"{root}: {len(top)} top-level files besides lib.rs (at most {max_top_files})")

    def resolve(segments: list, here: tuple) -> tuple:
        """The module a path from `here` names (its longest module prefix)."""
        if not segments:
            return None
        head = segments[0]
        if head in ("crate", "$crate"):
            base, rest = (), segments[1:]
        elif head == "super":
            base, rest = here[:-1], segments[1:]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        elif head == "self":
            base, rest = here, segments[1:]
        elif here + (head,) in modules:
            base, rest = here, segments
        else:
            return None  # another crate
        module = base
        for i, seg in enumerate(rest):
            if module + (seg,) in modules:
                module = module + (seg,)
                continue
            # An item of `module`: follow it if the module re-exports it.
            target = reexports.get(module, {}).get(seg)
            if target is not None and target != module:
                return target
            return module
        return module

    use_re = re.compile(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
    uses = {}
    reexports = {}
    for m, text in code.items():
        uses[m] = []
        for public, tree in use_re.findall(text):
            for path in expand(tree):
                segments = [s for s in path.split("::") if s]
                uses[m].append(segments)
                if public and segments and segments[-1] != "*":
                    reexports.setdefault(m, {})[segments[-1]] = segments
    # Re-exports resolved to the module that defines each name (after every module's
    # uses are known, since they chain).
    for _ in range(5):
        for m, names in reexports.items():
            for name, segs in list(names.items()):
                if isinstance(segs, list):
                    names[name] = resolve(segs[:-1], m) if len(segs) > 1 else m
    inline = re.compile(r"(?<![\w:])((?:\$?crate|super)(?:::\w+)+)")
    edges = {m: set() for m in modules}
    for m, text in code.items():
        paths = [segs for segs in uses[m]]
        body = use_re.sub("", text)
        paths += [p.split("::") for p in inline.findall(body)]
        for segs in paths:
            target = resolve(segs, m)
            if target is None or target == m or target[: len(m)] == m:
                continue  # another crate, itself, or one of its own submodules
            edges[m].add(target)

    def layer(m: tuple):
        for i, wing in enumerate(layers or []):
            if m and m[0] in wing:
                return i
        return None

    for m in sorted(edges):
        if layers is None:
            break
        for t in sorted(edges[m]):
            lm, lt = layer(m), layer(t)
            if m and t and m[0] != t[0] and None not in (lm, lt) and lt < lm:
                problems.append(
                    f"{modules[m]}: imports crate::{'::'.join(t)}, a layer above it"
                )
        if m and layer(m) is None:
            problems.append(f"{modules[m]}: wing {m[0]} is in no layer of scripts/check-layers.py")

    # Circles: strongly connected components of more than one module.
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                sccs.append(component)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            connect(v)
    for component in sccs:
        names = ", ".join("crate::" + "::".join(m) for m in sorted(component))
        problems.append(f"import circle among: {names}")

    count = sum(len(e) for e in edges.values())
    return problems, len(modules), count


def main() -> int:
    if len(sys.argv) > 1:
        crates = [(sys.argv[1], LAYERS if "shared" in sys.argv[1] else None, None)]
    else:
        crates = CRATES + [(str(p), None, None) for p in sorted(Path("functions").glob("*/src"))]
    problems, modules, imports = [], 0, 0
    for root, layers, max_top in crates:
        found, m, i = check(Path(root), layers, max_top)
        problems += found
        modules += m
        imports += i
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} problem(s)")
        return 1
    print(
        f"check-layers: {len(crates)} crates, {modules} modules, {imports} imports between "
        "them: no circle, no import from a lower layer to a higher one, every file in size"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
