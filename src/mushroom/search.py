"""Hyper-parameter search with Optuna: ``python -m mushroom.search [overrides]``.

Each trial is a training run (``mushroom.train`` without the test step) in ``<run dir>/trial_<n>/``. Its
validation metric is reported to Optuna every epoch, so a trial that falls behind is pruned instead of
trained to the end. With ``search.storage`` (an RDB URL or a journal file) several workers share one
study: run the same command on each machine. When the study is done, the best parameters are written as
an experiment config, ``<run dir>/experiment/search_best.yaml``, ready for ``mushroom.train``.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from mushroom.cluster.study import StudyLock, database_error, open_storage
from mushroom.configs import CONFIG_DIR
from mushroom.errors import MushroomError
from mushroom.runtime import checked_command_line, exit_on_user_error

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


def objective(cfg: DictConfig, run_dir: Path) -> Any:
    from optuna_integration import PyTorchLightningPruningCallback

    from mushroom.train import train

    metric = cfg.search.metric

    def run_trial(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = suggest(trial, cfg.search.space)
        log.info("Trial %d: %s", trial.number, params)
        trial_cfg = trial_config(cfg, params, run_dir / f"trial_{trial.number}")
        metrics = train(trial_cfg, extra_callbacks=[PyTorchLightningPruningCallback(trial, monitor=metric)])
        if metric not in metrics:
            raise MushroomError(
                f"search.metric={metric} was not logged; logged: {', '.join(sorted(metrics))}."
            )
        return metrics[metric]

    return run_trial


def best_experiment(cfg: DictConfig, study: optuna.Study, overrides: list[str]) -> str:
    """An experiment config (``# @package _global_``) that repeats the search's own overrides and sets the
    best trial's parameters, so ``mushroom.train`` runs the winner as it was searched."""
    best = study.best_trial
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
        f"# The best of study '{study.study_name}': {cfg.search.metric} = {best.value:.4f} "
        f"(trial {best.number} of {len(study.trials)}), written by mushroom.search.\n"
    )
    return header + OmegaConf.to_yaml(node)


def run_trials(study: optuna.Study, run_trial: Any, n_trials: int, lock: StudyLock) -> None:
    """Run trials until the study holds ``n_trials``, counted over every worker that shares it: the count
    and the start of a trial are one step under the study's lock, so the workers together run exactly the
    budget. A pruned trial is told as pruned; any other error fails the trial and stops the worker."""
    import optuna
    from optuna.trial import TrialState

    while True:
        with lock.held():
            if len(study.get_trials(deepcopy=False)) >= n_trials:
                return
            trial = study.ask()
        try:
            value = run_trial(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        study.tell(trial, value)


def search(cfg: DictConfig, overrides: list[str] | None = None) -> optuna.Study:
    """Run (or join) the study; write the best experiment config when it has a finished trial."""
    import optuna
    from hydra.utils import instantiate
    from sqlalchemy.exc import SQLAlchemyError

    settings = cfg.search
    run_dir = Path(cfg.paths.output_dir)
    storage = open_storage(settings.storage)
    seed = settings.sampler.get("seed")
    if storage is not None and seed is not None:
        seed = seed + os.getpid()  # workers sharing a study must not draw the same trials
    sampler = instantiate(settings.sampler, seed=seed) if seed is not None else instantiate(settings.sampler)
    lock = StudyLock(settings.storage, settings.study_name)
    try:
        with lock.held():  # two workers must not both create the tables of a fresh database
            study = optuna.create_study(
                study_name=settings.study_name,
                storage=storage,
                sampler=sampler,
                pruner=instantiate(settings.pruner),
                direction=settings.direction,
                load_if_exists=True,
            )
        run_trials(study, objective(cfg, run_dir), settings.n_trials, lock)
    except SQLAlchemyError as error:
        raise database_error(settings.storage, error) from error
    states = [trial.state.name for trial in study.trials]
    log.info(
        "Study %s: %d trials (%d complete, %d pruned)",
        study.study_name,
        len(states),
        states.count("COMPLETE"),
        states.count("PRUNED"),
    )
    if any(state == "COMPLETE" for state in states):
        path = run_dir / "experiment" / "search_best.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(best_experiment(cfg, study, overrides or []))
        # The same run as one command line: exact even where a config file cannot repeat an override
        # (a group given as a list, such as callbacks=[model_checkpoint], inside an experiment).
        searched = tuple(f"{key}=" for key in study.best_params)
        kept = [o for o in overrides or [] if not o.lstrip("+~").startswith((*SEARCH_ONLY, *searched))]
        best = [
            f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
            for key, value in study.best_params.items()
        ]
        (run_dir / "best_command.txt").write_text(" ".join(["python -m mushroom.train", *kept, *best]) + "\n")
        log.info(
            "Best %s = %.4f with %s. Run it: python -m mushroom.train --config-dir %s experiment=search_best",
            settings.metric,
            study.best_value,
            study.best_params,
            run_dir,
        )
    return study


@checked_command_line("search")
@hydra.main(version_base="1.3", config_path="configs", config_name="search")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    search(cfg, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
