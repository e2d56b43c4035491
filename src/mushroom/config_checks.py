"""What a user typed, checked against the config before anything runs: unknown keys and options named in one
line with the closest valid ones, values of the wrong type or outside their range, and old key names moved
to their new ones with a warning."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
import re
import types
import typing
import warnings
from typing import Any

import yaml
from hydra import compose, initialize_config_module
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

import mushroom.schemas  # registers the config schemas before any entry point composes
from mushroom.configs import CONFIG_DIR, HIDDEN_GROUPS, group_options
from mushroom.errors import MushroomError

log = logging.getLogger(__name__)

#: Each command's config (a YAML file of the shipped configs) and the module that runs it.
COMMANDS = {
    "audit": "mushroom.data.audit",
    "drift": "mushroom.drift",
    "evaluate": "mushroom.evaluate",
    "export": "mushroom.export",
    "predict": "mushroom.predict",
    "prepare": "mushroom.data.prepare",
    "search": "mushroom.search",
    "serve": "mushroom.serve",
    "train": "mushroom.train",
}


def command_line_error(config_name: str, argv: list[str]) -> str | None:
    """One line explaining why ``argv``'s overrides do not compose into ``config_name``, or ``None``."""
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:  # argparse said what was wrong already
        return None
    if args.config_path or args.config_name or args.config_dir or args.experimental_rerun or args.info:
        return None  # another config than ours: Hydra reports
    if args.shell_completion or GlobalHydra.instance().is_initialized():
        return None
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(args.overrides)
    except Exception:  # a syntax error: Hydra's message shows where
        return None
    overrides = [
        str(override.input_line)
        for override in parsed
        if not override.is_sweep_override() and not override.key_or_group.startswith("hydra")
    ]
    with initialize_config_module("mushroom.configs", version_base="1.3"):
        try:
            compose(config_name=config_name, overrides=overrides)
        except MissingConfigException as error:
            return _missing_option_message(error)
        except ConfigCompositionException as error:
            chosen = [str(o.input_line) for o in parsed if _is_group_choice(o) and not o.is_sweep_override()]
            return _composition_message(error, config_name, chosen)
        except Exception:
            return None
    return None


def _is_group_choice(override: Any) -> bool:
    """``model=cnn``, ``callbacks=[default,ema]``: a config group (a folder of the shipped configs)."""
    group = override.key_or_group.partition("@")[0]
    return bool((CONFIG_DIR / group).is_dir())


def _missing_option_message(error: MissingConfigException) -> str | None:
    """``model=resnet5``, ``callbacks=[default,emma]``: the option, the closest ones, and all of a group's."""
    found = re.search(r"Could not (?:find|load) '([^']+)'", str(error))
    if not found:
        return None
    group, _, option = found[1].rpartition("/")
    options = group_options(group)
    close = difflib.get_close_matches(option, options, n=3, cutoff=0.4)
    hint = f" Did you mean {' or '.join(f'{group}={name}' for name in close)}?" if close else ""
    return f"{group}={option}: no such option.{hint} Options: {', '.join(options)}."


def _composition_message(
    error: ConfigCompositionException, config_name: str, chosen: list[str]
) -> str | None:
    """A key the config lacks (with the closest ones it has), or a value its schema cannot hold."""
    text = str(error)
    inside = re.search(r"In '([^'/]+)/([^']+)': Could not override '([^']+)'", text)
    if inside:  # +experiment=real_photos_cpu on a command whose config has no model group
        group, option, key = inside.groups()
        return (
            f"{group}={option} sets {key}, which the {config_name} command does not take. "
            f"Give the keys it does take (`--help` lists them), or run a command that takes {group}=...: "
            f"{_commands_with_group(group)}."
        )
    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown:
        key = unknown[1]
        if (CONFIG_DIR / key).is_dir() and key not in _config_groups(config_name):
            typed = next((choice for choice in chosen if choice.partition("=")[0] == key), f"{key}=...")
            return (
                f"{typed}: the {config_name} command has no {key} choice. Give the keys it does take "
                f"(`--help` lists them), or run a command that takes {key}=...: "
                f"{_commands_with_group(key)}."
            )
        chosen = [choice for choice in chosen if choice.lstrip("+~").partition("=")[0] != key]
        try:
            keys = _known_keys(compose(config_name=config_name, overrides=chosen))
        except Exception:  # another choice is wrong too: name the key without suggestions
            keys = []
        close = _closest_keys(key, keys)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        return f"{key}: no such key.{hint} (`--cfg job` prints every key; +{key}=... adds a new one.)"
    merging = re.search(r"Error merging override (\S+)", text)
    cause = error.__cause__
    if merging and cause is not None:
        return f"{merging[1]}: {str(cause).splitlines()[0]}."
    return None


def _config_groups(config_name: str) -> set[str]:
    """The config groups an entry point's config chooses in its defaults list (``data``, ``model``, ...)."""
    config = yaml.safe_load((CONFIG_DIR / f"{config_name}.yaml").read_text())
    groups: set[str] = set()
    for entry in config.get("defaults", []):
        if isinstance(entry, dict):  # data: genus, optional x: y, override hparams_search: optuna
            groups.update(str(key).partition("@")[0].split()[-1] for key in entry)
        elif (CONFIG_DIR / f"{entry}.yaml").is_file():  # another whole config (search builds on train)
            groups |= _config_groups(str(entry))
    return groups


def _commands_with_group(group: str) -> str:
    """``python -m mushroom.train``, ...: the entry points whose config chooses ``group`` and offers it (train
    composes hparams_search only to say "run search")."""
    names = sorted(
        path.stem
        for path in CONFIG_DIR.glob("*.yaml")
        if path.stem in COMMANDS
        and group in _config_groups(path.stem)
        and group not in HIDDEN_GROUPS.get(path.stem, set())
    )
    return ", ".join(f"`python -m {COMMANDS[name]}`" for name in names) or "none"


def _config_nodes(node: DictConfig, prefix: str = "") -> typing.Iterator[tuple[str, DictConfig]]:
    """Every mapping node of a config with the dotted prefix of its keys (``""``, ``"data."``, ...),
    without resolving a value."""
    yield prefix, node
    for key in node.keys():  # noqa: SIM118 (iterating the node itself resolves the values)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            yield from _config_nodes(child, f"{prefix}{key!s}.")


def _known_keys(cfg: DictConfig) -> list[str]:
    return [f"{prefix}{key!s}" for prefix, node in _config_nodes(cfg) for key in node.keys()]  # noqa: SIM118


def _closest_keys(key: str, keys: list[str]) -> list[str]:
    """Up to three keys like ``key``: a close last part (``lrr`` -> ``lr``) at about the same depth, the
    ones under the same parent first; else a close whole dotted name."""
    depth, parent, leaf = key.count("."), key.rpartition(".")[0], key.rpartition(".")[2]
    by_leaf: dict[str, list[str]] = {}
    for candidate in keys:
        if abs(candidate.count(".") - depth) <= 1:
            by_leaf.setdefault(candidate.rpartition(".")[2], []).append(candidate)
    close = difflib.get_close_matches(leaf, list(by_leaf), n=3, cutoff=0.75)
    found = [candidate for name in close for candidate in by_leaf[name]]
    found.sort(key=lambda candidate: not candidate.startswith(parent + "."))  # stable: closeness within
    return found[:3] or difflib.get_close_matches(key, keys, n=3, cutoff=0.75)


#: The release that stops reading the old keys of :data:`RENAMED_KEYS` (the CHANGELOG says the same).
RENAMED_KEYS_REMOVED_IN = "0.3.0"


#: Old key -> new key; an entry point whose config has the new key reads the old one, with a warning,
#: until :data:`RENAMED_KEYS_REMOVED_IN`.
RENAMED_KEYS = {
    "ckpt_path": "model_path",
    "eval.tta": "tta_hflip",
    "eval.abstain_threshold": "abstain_threshold",
    "eval.open_set_dirs": "open_set_dirs",
    "eval.calibrate": "calibration.enabled",
    "eval.dangerous_target": "calibration.dangerous_target",
    "eval.open_set_tpr": "calibration.open_set_tpr",
}


def apply_renamed_keys(cfg: DictConfig) -> None:
    """Move a value given under an old key (:data:`RENAMED_KEYS`) to its new key, with a warning."""
    for old, new in RENAMED_KEYS.items():
        if not _has_key(cfg, new):
            continue  # this entry point has no such setting (train's ckpt_path resumes)
        value = OmegaConf.select(cfg, old, default=None, throw_on_missing=False)
        if value is None:
            continue
        message = (
            f"{old} is now called {new}: pass {new}={value} (the old name is read until mushroom "
            f"{RENAMED_KEYS_REMOVED_IN})."
        )
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        log.warning("%s", message)
        OmegaConf.update(cfg, new, value, merge=False)
        OmegaConf.update(cfg, old, None, merge=False)


def _has_key(cfg: DictConfig, dotted: str) -> bool:
    parent, _, leaf = dotted.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and leaf in node.keys()  # noqa: SIM118 (`in node` is false for ???)


class OverrideTypeError(MushroomError):
    """A command-line override whose value cannot be what the key holds (``trainer.max_epochs=abc``)."""


TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number"}


def check_override_types(cfg: DictConfig) -> None:
    """Refuse ``key=value`` overrides whose value cannot be of the type the key takes.

    Without this, ``trainer.max_epochs=abc`` or ``model.optimizer.lr=fast`` failed minutes later, deep inside
    Lightning or PyTorch. The type a key takes is read, without a list kept by hand, from the type hints
    of the class the key's config node builds (``_target_``), and otherwise from the key's default: the
    value in the config composed without the override, with the same config groups chosen.
    """
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    groups = set(hydra_cfg.runtime.choices)
    keyed = [(override.partition("=")[0].lstrip("+~"), override) for override in hydra_cfg.overrides.task]
    # The values as typed, not as composed: a typed schema has already turned data.balanced_sampling=3
    # into true.
    parsed = OverridesParser.create().parse_overrides([override for _, override in keyed])
    given = {
        key: _plain(override.value())
        for (key, text), override in zip(keyed, parsed, strict=True)
        if "=" in text and key not in groups and not key.startswith("hydra.") and not override.is_delete()
    }
    if not given:
        return
    chosen = [override for key, override in keyed if key in groups]
    defaults = compose(config_name=hydra_cfg.job.config_name, overrides=chosen)
    for key, value in given.items():
        hint = _target_hint(defaults, key)
        if hint is not None:
            if not _fits(value, hint):
                raise OverrideTypeError(f"{key}={value}: expected {_describe(hint)}.")
            continue
        try:
            default = OmegaConf.select(defaults, key, throw_on_missing=False)
        except InterpolationResolutionError:
            continue  # its default follows a value not given (${data.root}/../open-set): nothing to match
        if not _same_kind(value, default):
            raise OverrideTypeError(
                f"{key}={value}: expected {TYPE_NAMES[type(default)]}, like its default {key}={default}."
            )


def _plain(value: Any) -> Any:
    """An override's parsed value as the config would hold it (sweeps and other objects are not checked)."""
    return value if isinstance(value, bool | int | float | str | list | dict) or value is None else None


def _target_hint(defaults: DictConfig, key: str) -> Any:
    """The type hint of the setting ``key`` names, when its config node builds a class (``_target_``): from
    the class's schema (:mod:`mushroom.schemas`) where it has one, else from its ``__init__``."""
    parent_key, _, name = key.rpartition(".")
    parent = OmegaConf.select(defaults, parent_key) if parent_key else defaults
    if not isinstance(parent, DictConfig) or "_target_" not in parent:
        return None
    schema = mushroom.schemas.schema_for(parent["_target_"])
    if schema is not None:
        return typing.get_type_hints(schema).get(name)
    try:
        target = get_object(parent["_target_"])
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # a hint that does not resolve, or a target that does not import: not checked here
        return None
    return hints.get(name)


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from the command line) fits the type hint; types this cannot judge pass."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in _command_line_types(args))
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is str:
        return isinstance(value, str)
    if hint in (bool, int, float):
        return value is not None and _same_kind(value, hint())
    return True


def _command_line_types(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The members of a union a command-line value can be: ``float | Tensor`` (``torch.optim``'s lr) takes
    a number, not any text; lists and text stay."""
    if any(arg in (bool, int, float) for arg in args):
        plain = (bool, int, float, str, type(None))
        return tuple(arg for arg in args if not inspect.isclass(arg) or arg in plain)
    return args


def _same_kind(value: Any, default: Any) -> bool:
    """Whether ``value`` may replace ``default``: checked only for booleans and numbers."""
    if type(default) not in TYPE_NAMES or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    return isinstance(value, (int, float))


def _describe(hint: Any) -> str:
    names = {**TYPE_NAMES, str: "text", type(None): "null"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = _command_line_types(typing.get_args(hint))
        return " or ".join(dict.fromkeys(_describe(arg) for arg in members))
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(str(arg) for arg in typing.get_args(hint))
    return names.get(hint, getattr(hint, "__name__", str(hint)))


class ValueRangeError(MushroomError):
    """A setting outside the values it may take (``data.batch_size=-3``)."""


def check_value_ranges(cfg: DictConfig) -> None:
    """Refuse, in one line naming the key and its range, a number outside the range its schema gives
    (:class:`mushroom.schemas.Range`; nested schemas too) or :data:`~mushroom.schemas.OTHER_RANGES` gives
    for the groups other libraries' classes take. Without this, ``data.batch_size=-3`` or
    ``model.optimizer.lr=-1`` failed after the data was read, deep inside PyTorch."""
    for key, allowed in [*_schema_ranges(cfg), *mushroom.schemas.OTHER_RANGES.items()]:
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=False)
        except InterpolationResolutionError:
            continue  # follows a value not given: judged where that value is
        if value not in allowed:
            raise ValueRangeError(mushroom.schemas.range_message(key, value, allowed))


def _schema_ranges(cfg: DictConfig) -> typing.Iterator[tuple[str, Any]]:
    """(dotted key, range) of every ranged field of the typed nodes of ``cfg``."""
    for prefix, node in _config_nodes(cfg):
        schema = OmegaConf.get_type(node)
        if schema is not None and dataclasses.is_dataclass(schema):
            for spec in dataclasses.fields(schema):
                if "range" in spec.metadata:
                    yield prefix + spec.name, spec.metadata["range"]
