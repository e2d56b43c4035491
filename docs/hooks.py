"""MkDocs hook: build the config reference from the YAML files, so it cannot drift from them."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "mushroom" / "configs"
MARKER = "<!-- config-reference -->"


def leading_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#") or line.startswith("# @package"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)


def schema_classes() -> list[type]:
    """Every dataclass in mushroom.schemas that a config node is checked against, nested ones included."""
    from mushroom import schemas

    found: list[type] = []

    def visit(cls: type) -> None:
        if cls in found:
            return
        found.append(cls)
        hints = __import__("typing").get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[field.name]):
                visit(hints[field.name])

    for schema in schemas.SCHEMAS.values():
        visit(schema)
    return found


def render_schemas() -> list[str]:
    """Each schema's source: every key of the group, its type, its default and the comment saying why."""
    parts = [
        "## Schemas",
        "",
        "The option files below start from these dataclasses (`src/mushroom/schemas.py`): every default is "
        "written there once, and a value of the wrong type, or outside the range written beside it, is "
        "refused when the config is composed.",
        "",
    ]
    for cls in schema_classes():
        parts += [f"### `{cls.__name__}`", "", "```python", readable_source(cls), "```", ""]
    return parts


def readable_source(cls: type) -> str:
    """The schema's source with ``x: int = ranged(32, COUNT)`` shown as ``x: int = 32  # at least 1``."""
    fields = {spec.name: spec for spec in dataclasses.fields(cls) if "range" in spec.metadata}

    def plain(match: re.Match[str]) -> str:
        indent, name, hint = match.groups()
        spec = fields[name]
        return f"{indent}{name}: {hint} = {spec.default!r}  # {spec.metadata['range']}"

    pattern = re.compile(r"^(\s+)(\w+): (.+?) = ranged\(.*\)$", flags=re.M)
    return pattern.sub(plain, inspect.getsource(cls).rstrip())


def render_config_reference() -> str:
    parts = [*render_schemas(), "## Entry points", ""]
    for path in sorted(CONFIGS.glob("*.yaml")):
        parts += [f"### `{path.stem}.yaml`", "", "```yaml", path.read_text().rstrip(), "```", ""]
    for group in sorted(p for p in CONFIGS.iterdir() if p.is_dir() and not p.name.startswith("_")):
        parts += [f"## `{group.name}/`", ""]
        for option in sorted(group.rglob("*.yaml")):
            # A nested group (hydra/launcher/slurm.yaml) is chosen as hydra/launcher=slurm.
            nested = option.parent.relative_to(CONFIGS).as_posix()
            text = option.read_text()
            summary = leading_comment(text)
            parts += [f"### `{nested}={option.stem}`", ""]
            if summary:
                parts += [summary, ""]
            parts += ["```yaml", text.rstrip(), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, render_config_reference())
    return markdown
