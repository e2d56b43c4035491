"""What a search trial is, whichever scheduler runs it (``mushroom.search``'s Optuna loop or Ray Tune): its
values drawn from ``search.space``, the config it trains with, and the winner written as an experiment."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from mushroom.configs import CONFIG_DIR
from mushroom.errors import MushroomError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

#: Command-line overrides that describe the search, not the training: left out of the best experiment.
SEARCH_ONLY = ("search.", "hydra.", "hparams_search", "paths.")


def suggest(trial: optuna.Trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One value per config key (``spec["key"]``), drawn from the distribution ``space`` gives it."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        key, kind = spec.get("key"), spec.get("type")
        if not key:
            raise MushroomError(
                f"search.space.{name} has no key: say which config key it sets, e.g. model.optimizer.lr."
            )
        if kind == "float":
            params[key] = trial.suggest_float(key, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "int":
            low, high, step = spec["low"], spec["high"], spec.get("step", 1)
            params[key] = trial.suggest_int(key, low, high, step=step, log=spec.get("log", False))
        elif kind == "categorical":
            params[key] = trial.suggest_categorical(key, list(spec["choices"]))
        else:
            raise MushroomError(
                f"search.space.{name}: type {kind!r} is not a distribution; use float, int or categorical."
            )
    return params


def trial_config(cfg: DictConfig, params: Mapping[str, Any], output_dir: Path) -> DictConfig:
    """The search config with one trial's values, writing into ``output_dir``."""
    trial_cfg = copy.deepcopy(cfg)
    with open_dict(trial_cfg):
        for key, value in params.items():
            if OmegaConf.select(trial_cfg, key, default=KeyError) is KeyError:
                raise MushroomError(f"search.space names {key}, which is not a config key.")
            OmegaConf.update(trial_cfg, key, value, merge=False)
        trial_cfg.paths.output_dir = str(output_dir)
    return trial_cfg


def trial_metric(metrics: Mapping[str, float], name: str) -> float:
    """The value of ``search.metric`` a trial's training returned; refused by name when it was not logged."""
    if name not in metrics:
        raise MushroomError(f"search.metric={name} was not logged; logged: {', '.join(sorted(metrics))}.")
    return metrics[name]


@dataclass(frozen=True)
class BestTrial:
    """The winner of a search, whichever scheduler ran it."""

    params: dict[str, Any]
    value: float
    number: int | str
    of: int
    study_name: str


def best_experiment(cfg: DictConfig, best: BestTrial, overrides: list[str]) -> str:
    """An experiment config (``# @package _global_``) that repeats the search's own overrides and sets the
    best trial's parameters, so ``mushroom.train`` runs the winner as it was searched."""
    defaults: list[Any] = []
    values: dict[str, Any] = {}
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key.startswith(SEARCH_ONLY):
            continue
        if key == "experiment":
            defaults.append(f"/experiment/{value}")
        elif "." not in key and (CONFIG_DIR / key).is_dir():  # a config group, one option or a list
            defaults.append({f"override /{key}": yaml.safe_load(value)})
        else:
            values[key] = OmegaConf.select(cfg, key)
    values.update(best.params)
    node = OmegaConf.create({"defaults": [*defaults, "_self_"]})
    for key, value in values.items():
        OmegaConf.update(node, key, value, force_add=True)
    header = (
        "# @package _global_\n"
        f"# The best of study '{best.study_name}': {cfg.search.metric} = {best.value:.4f} "
        f"(trial {best.number} of {best.of}), written by mushroom.search.\n"
    )
    return header + OmegaConf.to_yaml(node)


def write_best(cfg: DictConfig, best: BestTrial, overrides: list[str]) -> None:
    """``<run dir>/experiment/search_best.yaml`` and ``best_command.txt``: the winner, ready to train."""
    run_dir = Path(cfg.paths.output_dir)
    path = run_dir / "experiment" / "search_best.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(best_experiment(cfg, best, overrides))
    # The same run as one command line: exact even where a config file cannot repeat an override
    # (a group given as a list, such as callbacks=[model_checkpoint], inside an experiment).
    searched = tuple(f"{key}=" for key in best.params)
    kept = [o for o in overrides if not o.lstrip("+~").startswith((*SEARCH_ONLY, *searched))]
    chosen = [f"{key}={v!r}" if isinstance(v, str) else f"{key}={v}" for key, v in best.params.items()]
    (run_dir / "best_command.txt").write_text(" ".join(["python -m mushroom.train", *kept, *chosen]) + "\n")
    log.info(
        "Best %s = %.4f with %s. Run it: python -m mushroom.train --config-dir %s experiment=search_best",
        cfg.search.metric, best.value, best.params, run_dir,
    )  # fmt: skip
