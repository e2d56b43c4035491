"""MkDocs hook: build the config reference from the YAML files, so it cannot drift from them."""

from __future__ import annotations

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


def render_config_reference() -> str:
    parts = ["## Entry points", ""]
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
