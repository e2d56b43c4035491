"""The package's layers: no module imports one that imports it back (function-level imports included)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from mushroom.config_checks import COMMANDS

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


#: What mushroom.core may import of the package: itself and the error type every layer raises.
CORE_MAY_IMPORT = ("mushroom.core", "mushroom.errors")


def test_the_core_imports_nothing_above_it() -> None:
    """mushroom.core is the bottom layer: data, training and the service build on it, never the reverse
    (core.safety once reached up into mushroom.data for the genus of a folder name)."""
    graph = import_graph()
    core = [m for m in graph if m.startswith("mushroom.core")]
    assert "mushroom.core.taxonomy" in graph["mushroom.core.safety"]  # the graph sees function-level imports
    for module in core:
        above = [name for name in graph[module] if not name.startswith(CORE_MAY_IMPORT)]
        assert above == [], f"{module} imports {above}"


def schema_defaults() -> dict[str, set[object]]:
    """Setting name -> the defaults the schemas give it (every schema, nested ones included)."""
    import dataclasses
    import typing

    from mushroom import schemas

    found: dict[str, set[object]] = {}
    seen: set[type] = set()

    def visit(cls: type) -> None:
        if cls in seen:
            return
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[field.name]):
                visit(hints[field.name])
            elif field.default is not dataclasses.MISSING and not isinstance(
                field.default, bool | type(None)
            ):
                found.setdefault(field.name, set()).add(field.default)

    for schema in schemas.SCHEMAS.values():
        visit(schema)
    return found


# Python defaults that equal a schema default on purpose: "off", for code that builds these directly.
NEUTRAL = {("Mixing", "mixup_alpha"), ("Mixing", "cutmix_alpha"), ("create_network", "drop_path_rate")}


def test_no_config_default_is_written_twice() -> None:
    """A default lives in mushroom.schemas: no function or dataclass elsewhere repeats it, and no option file
    sets a key to the value its schema already gives it."""
    import yaml

    defaults = schema_defaults()
    assert defaults["near_duplicate_distance"] == {10} and defaults["batch_size"] == {32}
    repeated = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "schemas.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            pairs: list[tuple[str, str, ast.expr]] = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                positional = node.args.args[len(node.args.args) - len(node.args.defaults) :]
                pairs += [(node.name, a.arg, d) for a, d in zip(positional, node.args.defaults, strict=True)]
                pairs += [
                    (node.name, a.arg, d)
                    for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)
                    if d is not None
                ]
            elif isinstance(node, ast.ClassDef):
                pairs += [
                    (node.name, item.target.id, item.value)
                    for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value
                ]
            for owner, name, expr in pairs:
                try:
                    value = ast.literal_eval(expr)
                except ValueError:
                    continue
                if isinstance(value, list | dict | set):
                    continue
                if value in defaults.get(name, set()) and (owner, name) not in NEUTRAL:
                    repeated.append(f"{path.relative_to(PACKAGE)}: {owner}({name}={value!r})")
    for group in ("data", "model"):
        for option in (PACKAGE / "configs" / group).glob("*.yaml"):
            for name, value in (yaml.safe_load(option.read_text()) or {}).items():
                if not isinstance(value, dict | bool | list) and value in defaults.get(name, set()):
                    repeated.append(f"configs/{group}/{option.name}: {name}: {value!r}")
    assert repeated == []


def test_every_command_has_a_console_script_and_every_script_is_a_command() -> None:
    """Error messages name commands from ``config_checks.COMMANDS``; ``pip install .`` installs pyproject's
    scripts. A command added to one and not the other is missing where users look (search and audit were)."""
    pyproject = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())
    scripts = pyproject["project"]["scripts"]
    assert {name: target.partition(":")[0] for name, target in scripts.items()} == {
        f"mushroom-{command}": module for command, module in COMMANDS.items()
    }
