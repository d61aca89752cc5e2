"""Dependencies point down: the import graph of ``skillmimic/`` and ``envs/`` has no cycle and
every import between two packages goes to a strictly lower floor.

The graph is read from the source with :mod:`ast` (nothing is imported). Every ``import`` and
``from ... import`` statement counts, wherever it is -- a lazy import inside a function is
still a dependency: it only postpones the cycle to the first call. Not counted:

* the implicit execution of a parent package's ``__init__`` when a submodule is imported
  (``skillmimic/__init__.py`` is a lazy facade over the whole library; counting it would make
  every module depend on everything);
* imports named by a string (``importlib.import_module``): the facades and the simulator
  backend table, each of which only looks downwards by construction.

``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.
A package's ``__init__`` sits on the floor of its package, so re-exports stay inside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("skillmimic", "envs")

#: floor of each group of modules, lowest first; a module's group is its longest matching prefix
FLOORS: list[tuple[str, ...]] = [
    # base utilities: plain tensor maths, safe file loading
    ("skillmimic.state", "skillmimic.rotations", "skillmimic.safe_load", "skillmimic.scoring",
     "skillmimic.profiling", "skillmimic.sampling"),
    ("skillmimic.checkpoint",),                               # checkpoint files, read without rl-games
    ("skillmimic.assets",),                                   # the skeleton, the MJCF scene
    ("skillmimic.kinematics",),                               # forward kinematics over the skeleton
    ("skillmimic.motion", "skillmimic.sim"),                  # reference clips, physics backends
    ("skillmimic.observations", "skillmimic.rewards"),
    ("skillmimic.augment",),                                  # SkillMimic-V2's env hook
    ("envs",),                                                # task environments and their registry
    ("skillmimic.rl",),                                       # rl-games training
    ("skillmimic.eval",),
    ("skillmimic.viz",),
    ("skillmimic.cli", "skillmimic.data_gen", "skillmimic"),  # command-line tools, the root facade
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that module ``name`` imports anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:           # `import a.b.c` of a non-module attribute: nearest module
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


#: groups that are one module, not a prefix: a new module under ``skillmimic/`` must be given its floor
_EXACT = {"skillmimic"}


def _group(name: str) -> tuple[int, str]:
    """(floor, group prefix) of a module: the longest prefix listed in FLOORS."""
    best = None
    for floor, prefixes in enumerate(FLOORS):
        for p in prefixes:
            inside = name == p or (p not in _EXACT and name.startswith(p + "."))
            if inside and (best is None or len(p) > len(best[1])):
                best = (floor, p)
    assert best is not None, f"module {name} has no floor in FLOORS: add it"
    return best


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative DFS)."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    return None


def test_every_module_has_a_floor_and_the_graph_is_read():
    graph = _graph()
    for name in graph:
        _group(name)
    # the parser sees lazy imports and resolves relative ones (a sanity check of the reader)
    assert "skillmimic.assets.mjcf" in graph["skillmimic.sim.base"]
    assert "envs.skill" in graph["envs"]
    assert any(t.startswith("skillmimic.motion") for t in graph["skillmimic.augment.stg"])   # a lazy import


def test_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_point_strictly_down_between_packages():
    bad = []
    for src, targets in sorted(_graph().items()):
        f_src, g_src = _group(src)
        for dst in sorted(targets):
            f_dst, g_dst = _group(dst)
            if g_src != g_dst and f_dst >= f_src:
                bad.append(f"{src} (floor {f_src}) -> {dst} (floor {f_dst})")
    assert not bad, "imports that do not point down:\n  " + "\n  ".join(bad)


def test_the_checker_catches_a_cycle_and_an_upward_edge():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert _group("skillmimic.rl.config")[0] > _group("envs.skill")[0] > _group("skillmimic.sim.base")[0]
    with pytest.raises(AssertionError, match="no floor"):
        _group("skillmimic.brand_new")
