"""Hyper-parameter search with Optuna: ``python -m mushroom.search [overrides]``.

Each trial is a training run (``mushroom.train`` without the test step) in ``<run dir>/trial_<n>/``. Its
validation metric is reported to Optuna every epoch, so a trial that falls behind is pruned instead of
trained to the end. With ``search.storage`` (an RDB URL or a journal file) several workers share one
study: run the same command on each machine. When the study is done, the best parameters are written as
an experiment config, ``<run dir>/experiment/search_best.yaml``, ready for ``mushroom.train``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mushroom.cluster.study import StudyLock, database_error, open_storage
from mushroom.runtime import checked_command_line, exit_on_user_error
from mushroom.trials import BestTrial, suggest, trial_config, trial_metric, write_best

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


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
        return trial_metric(metrics, metric)

    return run_trial


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


def search(cfg: DictConfig, overrides: list[str] | None = None) -> optuna.Study | None:
    """Run (or join) the study; write the best experiment config when it has a finished trial. With
    ``search.backend=ray`` Ray Tune schedules the trials (:mod:`mushroom.cluster.ray_tune`)."""
    if cfg.search.get("backend", "optuna") == "ray":
        from mushroom.cluster.ray_tune import search_on_ray

        tuned = search_on_ray(cfg)
        if tuned is not None:
            write_best(cfg, tuned, overrides or [])
        return None
    import optuna
    from hydra.utils import instantiate
    from optuna.exceptions import StorageInternalError
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
    except (SQLAlchemyError, StorageInternalError) as error:  # Optuna wraps some of SQLAlchemy's
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
        top = study.best_trial
        assert top.value is not None
        winner = BestTrial(top.params, top.value, top.number, len(states), study.study_name)
        write_best(cfg, winner, overrides or [])
    return study


@checked_command_line("search")
@hydra.main(version_base="1.3", config_path="configs", config_name="search")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    search(cfg, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
