"""The package's layers: no module imports one that imports it back (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mushroom"


def import_graph() -> dict[str, set[str]]:
    """Module -> the mushroom modules it imports anywhere (top level, functions, ``__main__`` blocks)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mushroom"):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("mushroom")}
        graph[name] = imported
    return graph


def cycles_through(graph: dict[str, set[str]], prefix: str) -> list[list[str]]:
    """Every import path that leaves a ``prefix`` module and comes back to it."""
    found = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                found.append([*path, nxt])
            elif nxt in graph and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for module in sorted(m for m in graph if m.startswith(prefix)):
        walk(module, module, [module])
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    """audit -> prepare -> manifest -> audit was one: a refactoring that brings one back fails here."""
    graph = import_graph()
    assert "mushroom.data.prepare" in graph["mushroom.data.datamodule"]  # the graph is read at all
    assert cycles_through(graph, "mushroom") == []


def test_the_core_imports_nothing_above_it() -> None:
    """mushroom.core is the bottom layer: training, data and the service build on it, never the reverse."""
    above = (
        "mushroom.models",
        "mushroom.serving",
        "mushroom.train",
        "mushroom.inference",
        "mushroom.checkpoints",
    )
    graph = import_graph()
    for module in (m for m in graph if m.startswith("mushroom.core")):
        assert not [name for name in graph[module] if name.startswith(above)], module
