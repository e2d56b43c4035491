"""Hydra configs shipped inside the package, so installed copies find them from any directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

from mushroom.cluster.slurm import run_name

CONFIG_DIR = Path(__file__).resolve().parent

#: Groups an entry point composes but does not offer: train takes hparams_search only to say "use search".
HIDDEN_GROUPS = {"train": {"hparams_search"}}


def group_options(group: str) -> list[str]:
    """The options of config group ``group`` (its YAML files)."""
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def help_groups(choices: Mapping[str, object], task: str) -> str:
    """``--help``'s list of the groups this entry point composes (not every group the package has): each
    with its current choice and its options. Hydra's own list showed serve's users the trainer group."""
    lines = []
    for group, choice in sorted(choices.items()):
        if group.startswith("hydra") or group in HIDDEN_GROUPS.get(task, set()):
            continue
        chosen = "null" if choice is None else str(choice)
        lines.append(f"  {group + '=' + chosen:<26} options: {', '.join(group_options(group))}")
    return "\n".join(lines) or "  (none: every setting is a key below)"


OmegaConf.register_new_resolver("mushroom_help_groups", help_groups, replace=True)

# A run directory's name: slurm-<job id> in a SLURM job, so that a requeued job finds its run again.

OmegaConf.register_new_resolver("mushroom_run_name", run_name, replace=True, use_cache=True)

import mushroom.schemas  # noqa: E402, F401  (the option files start from the schemas it registers)
