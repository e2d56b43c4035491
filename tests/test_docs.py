"""The docs cannot drift from the code: the config reference covers every YAML file, and every module the
architecture diagram names exists."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_reference_lists_every_config_file() -> None:
    rendered = load_hooks().render_config_reference()
    configs = ROOT / "src" / "mushroom" / "configs"
    for path in configs.rglob("*.yaml"):
        group = path.parent.relative_to(configs).as_posix()
        heading = f"`{path.stem}.yaml`" if group == "." else f"`{group}={path.stem}`"
        assert heading in rendered, heading
        assert path.read_text().strip() in rendered


def test_config_reference_shows_every_schema_with_its_defaults() -> None:
    """Each key the option files leave out is documented by its schema's source, nested schemas too."""
    from mushroom.schemas import DataConfig, OpenSetSettings, PrepareSettings, ServerLimits

    rendered = load_hooks().render_config_reference()
    for schema in (DataConfig, PrepareSettings, OpenSetSettings, ServerLimits):
        assert f"### `{schema.__name__}`" in rendered
    assert "near_duplicate_distance: int = 10" in rendered and "batch_size: int = 32" in rendered


def test_architecture_diagram_names_modules_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    names = set(re.findall(r"<code>([a-z_.]+)</code>", text)) | set(
        re.findall(r"`mushroom\.([a-z_.]+)`", text)
    )
    assert len(names) >= 10
    for name in names:
        module = name if name.startswith("mushroom") else f"mushroom.{name}"
        try:
            importlib.import_module(module)
        except (
            ModuleNotFoundError
        ):  # a function or class inside a module: mushroom.data.splits.grouped_partitions
            parent, _, attribute = module.rpartition(".")
            assert hasattr(importlib.import_module(parent), attribute), module
