"""The house rules of patchcheck's source, measured on the source itself (docs/architecture.md):
packages by stage whose imports go one way (.importlinter), no import cycle between modules,
no function over 60 lines, and each stage package's __init__.py two lines saying what the
stage takes and gives. `python3 -m tests.unit.test_house` prints the figures."""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "patchcheck"
MAX_LINES = 60
# The import graph's depth: the longest chain of imports that importing a module of patchcheck
# runs (module-level imports; those in functions run when called, those under TYPE_CHECKING
# never). Counting every import (docs/architecture.md gives both figures), it is a ceiling
# against growth.
MAX_DEPTH = 10
MAX_DEPTH_EVERY_IMPORT = 19


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, package: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        yield base
        yield from (f"{base}.{a.name}" for a in node.names)


def _statements(tree: ast.Module, import_time: bool) -> Iterator[ast.AST]:
    """Every node; or, for what runs at import time, the module's own statements but those
    under `if TYPE_CHECKING:`."""
    if not import_time:
        yield from ast.walk(tree)
        return
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        yield node


def import_graph(import_time: bool = False) -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _statements(ast.parse(path.read_text()), import_time):
            for target in _imported(node, package):
                if target in mods and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return found


def depth(graph: dict[str, set[str]]) -> tuple[int, list[str]]:
    """The longest chain of imports (modules on it), and the chain."""
    @functools.cache
    def longest(v: str) -> tuple[str, ...]:
        chains = [longest(w) for w in graph[v]]
        return (v, *max(chains, key=len, default=()))

    chain = max((longest(v) for v in graph), key=len)
    return len(chain), list(chain)


def long_functions(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_LINES:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                     f"({length} lines)")
    return found


def test_no_import_cycle_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_the_import_graph_is_at_most_10_levels_deep() -> None:
    levels, chain = depth(import_graph(import_time=True))
    assert levels <= MAX_DEPTH, " -> ".join(chain)
    levels, chain = depth(import_graph())
    assert levels <= MAX_DEPTH_EVERY_IMPORT, " -> ".join(chain)


def test_no_function_over_60_lines() -> None:
    assert long_functions(PACKAGE, ROOT / "tests", ROOT / "tasks.py") == []


def test_each_stage_says_in_two_lines_what_it_takes_and_gives() -> None:
    for init in sorted(PACKAGE.rglob("__init__.py")):
        if init.parent == PACKAGE:
            continue  # the package itself: its version
        tree = ast.parse(init.read_text())
        doc = ast.get_docstring(tree) or ""
        assert len(tree.body) == 1 and len(doc.splitlines()) == 2, init


def test_stages_import_only_the_stages_below_them() -> None:
    lint = pytest.importorskip("importlinter.cli")
    assert lint.lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True,
                             no_logo=True) == 0


if __name__ == "__main__":
    graph = import_graph()
    print(f"modules: {len(graph)}; import cycles: {len(cycles(graph))}")
    for title, g in (("at import time", import_graph(import_time=True)), ("every import", graph)):
        levels, chain = depth(g)
        print(f"depth ({title}): {levels}\n  " + " -> ".join(chain))
    over = long_functions(PACKAGE, ROOT / 'tests', ROOT / 'tasks.py')
    print(f"functions over {MAX_LINES} lines: {len(over)}")
