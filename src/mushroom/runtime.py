"""Glue shared by the entry points: clean error exits, one line per user mistake (the checks themselves are
in :mod:`mushroom.config_checks`), quiet library logs, and building callbacks and loggers from config."""

from __future__ import annotations

import functools
import logging
import re
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from mushroom.config_checks import (
    apply_renamed_keys,
    check_override_types,
    check_value_ranges,
    command_line_error,
)
from mushroom.errors import MushroomError

log = logging.getLogger(__name__)

#: The console's log lines where Hydra has not set logging up (configs/hydra/default.yaml says the same).
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] %(message)s"


def log_to_console(level: int = logging.WARNING) -> None:
    """Log to the console as Hydra's runs do, in a process Hydra does not start (a Ray worker) or before
    it has started."""
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S")


T = TypeVar("T")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_library_noise() -> None:
    """Drop lines that tell the user nothing about their run (library adverts, internal deprecations)."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropAdverts())


def lightning_logs_once() -> None:
    """Print Lightning's log lines once, through the entry point's (Hydra's) handlers.

    Importing ``lightning`` gives its logger a console handler of its own, and its records also reach the
    root logger's console handler, so every line (``Seed set to 42``) was printed twice. Call after
    importing Lightning: its own console handler goes, the root's (which also writes the run's log) stays.
    """
    lightning = logging.getLogger("lightning")
    if logging.getLogger().handlers:
        for handler in list(lightning.handlers):
            if type(handler) is logging.StreamHandler:
                lightning.removeHandler(handler)


def exit_on_user_error(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Run an entry point so that every mistake a user can fix ends in one clear line and exit 1.

    Caught: :class:`MushroomError` (its message says what is wrong and how to fix it), an override of the
    wrong type (checked against the value it replaces, before anything runs), a required value left out
    (``???`` in the config), and errors raised while Hydra builds an object from the config.
    """

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> T:
        quiet_library_noise()
        try:
            check_override_types(cfg)
            check_value_ranges(cfg)
            apply_renamed_keys(cfg)
            return task(cfg)
        except Exception as error:  # sorted below: the user's mistakes, or re-raised as a bug
            message = user_error_message(error)
            if message is None:
                raise
            log.error("%s", message)
            sys.exit(1)

    return wrapper


def checked_command_line(config_name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Put above ``@hydra.main``: a command line that names a key or an option the config does not have,
    or a value its schema cannot hold, ends in one line that names it and the closest valid ones, and
    exit 1, instead of Hydra's multi-line report.

    The overrides are composed once here, as Hydra is about to; a command line that composes, or that
    fails in a way this does not explain, goes on to Hydra unchanged.
    """

    def decorate(hydra_main: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(hydra_main)
        def run(*args: Any, **kwargs: Any) -> T:
            if not args and not kwargs:
                message = command_line_error(config_name, sys.argv[1:])
                if message:
                    log_to_console()
                    log.error("%s", message)
                    sys.exit(1)
            return hydra_main(*args, **kwargs)

        return run

    return decorate


def user_error_message(error: BaseException) -> str | None:
    """The one-line explanation of a mistake the user can fix, or ``None`` for a bug (a traceback)."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        if not isinstance(error.__cause__, (MushroomError, MissingMandatoryValue, InstantiationException)):
            target = re.search(r"target '([^']+)'", str(error))
            where = f" ({target[1]})" if target else ""
            cause = error.__cause__
            return f"Could not build{where} from the config: {type(cause).__name__}: {cause}"
        error = error.__cause__
    if isinstance(error, MushroomError):
        return str(error)
    if isinstance(error, MissingMandatoryValue):
        key = error.full_key or "a value"
        return f"Missing value for {key}: add {key}=... to the command (it has no default)."
    return None


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks`` or ``logger``."""
    if not group:
        return []
    return [
        instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node
    ]
