"""Glue shared by the entry points: clean error exits and building callbacks/loggers from config."""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hydra.utils import instantiate
from omegaconf import DictConfig

from mushroom.errors import MushroomError

log = logging.getLogger(__name__)
T = TypeVar("T")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_library_noise() -> None:
    """Drop lines that tell the user nothing about their run (library adverts, internal deprecations)."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropAdverts())


def exit_on_user_error(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Log a :class:`MushroomError` as one clear message and exit 1, instead of a traceback."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> T:
        quiet_library_noise()
        try:
            return task(cfg)
        except MushroomError as error:
            log.error("%s", error)
            sys.exit(1)

    return wrapper


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks`` or ``logger``."""
    if not group:
        return []
    return [
        instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node
    ]


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def prepare_wandb(logger_cfg: DictConfig | None) -> None:
    """Never let W&B block on a login prompt: without credentials it runs offline, and says so."""
    if not logger_cfg or "wandb" not in logger_cfg:
        return
    os.environ.setdefault("WANDB_SILENT", "true")
    if not wandb_has_credentials() and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
        os.environ["WANDB_MODE"] = "offline"
        log.warning(
            "No W&B API key found (WANDB_API_KEY or `wandb login`): logging offline to %s; "
            "upload later with `wandb sync`.",
            logger_cfg.wandb.get("save_dir"),
        )
