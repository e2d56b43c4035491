"""``python -m mushroom.search hparams_search=ray_tune``: the same search, its trials scheduled by Ray Tune.

The search space (``search.space``), the sampler (``search.sampler``, Optuna's TPE through Tune's
``OptunaSearch``), the metric and the trial budget are the Optuna search's own; Ray Tune places the trials
on the cluster (``search.ray.address``, or ``RAY_ADDRESS``) and stops the ones that fall behind with its
scheduler (``search.ray.scheduler``, ASHA by default) where Optuna's pruner would. Each trial trains like
``mushroom.train`` in ``<run dir>/trial_<id>/`` and reports the metric after every validation; the best
trial is written as an experiment config as the Optuna search writes it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from mushroom.errors import MushroomError

if TYPE_CHECKING:
    from mushroom.trials import BestTrial

log = logging.getLogger(__name__)

#: The name trials report their metric under: Tune reads "/" in a metric's name as nesting.
OBJECTIVE = "objective"


class ReportToTune(L.Callback):
    """Report the monitored metric to Ray Tune after every validation, so that its scheduler can stop the
    trial; the epoch is Tune's ``training_iteration``."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import ray.tune

        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        ray.tune.report({OBJECTIVE: value, "epoch": trainer.current_epoch})


class SearchSpace:
    """The search space as Optuna's define-by-run function that Tune's ``OptunaSearch`` calls (picklable,
    as Tune saves its searcher)."""

    def __init__(self, space: Any) -> None:
        self.space = space

    def __call__(self, trial: Any) -> None:
        from mushroom.trials import suggest

        suggest(trial, self.space)


def search_on_ray(cfg: DictConfig) -> BestTrial | None:
    """Run the search's trials on Ray Tune; the best trial (None when none reported)."""
    from hydra.utils import instantiate

    from mushroom.cluster.ray_train import join_ray, portable_config
    from mushroom.trials import BestTrial

    settings = cfg.search
    join_ray(settings.ray.address, "hparams_search=ray_tune", "ray.tune.search.optuna")
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    run_dir = Path(cfg.paths.output_dir)
    mode = "max" if settings.direction == "maximize" else "min"
    space = OmegaConf.to_container(settings.space, resolve=True)
    searcher = OptunaSearch(
        space=SearchSpace(space), metric=OBJECTIVE, mode=mode, sampler=instantiate(settings.sampler)
    )
    resolved = portable_config(cfg)  # the trials have no Hydra runtime
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, cfg=resolved),
        {"cpu": settings.ray.cpus_per_trial, "gpu": settings.ray.gpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE,
            mode=mode,
            search_alg=searcher,
            scheduler=instantiate(settings.ray.scheduler, time_attr="training_iteration"),
            num_samples=settings.n_trials,
            max_concurrent_trials=settings.ray.max_concurrent_trials,
        ),
        run_config=tune.RunConfig(
            name=settings.study_name,
            storage_path=str(settings.ray.storage_path or run_dir / "ray"),
            verbose=0,
        ),
    )
    results = tuner.fit()
    every = [results[i] for i in range(len(results))]
    reported = [r for r in every if r.metrics and OBJECTIVE in r.metrics]
    failed = [r for r in every if r.error is not None]
    if failed and not reported:
        raise MushroomError(f"Every trial of the Ray Tune search failed; the first: {failed[0].error}")
    epochs = int(cfg.trainer.max_epochs)
    stopped = sum(int((r.metrics or {})["training_iteration"]) < epochs for r in reported)
    log.info(
        "Ray Tune search %s: %d trials (%d stopped early by the scheduler, %d failed)",
        settings.study_name, len(results), stopped, len(failed),
    )  # fmt: skip
    if not reported:
        return None
    best = results.get_best_result(metric=OBJECTIVE, mode=mode, scope="last")
    metrics, params = best.metrics or {}, dict(best.config or {})
    value = float(metrics[OBJECTIVE])
    return BestTrial(params, value, metrics["trial_id"], len(results), settings.study_name)


def run_trial(config: dict[str, Any], cfg: dict[str, Any]) -> None:
    """One trial, in a Ray worker: the search config with the trial's values, trained to the end or until
    the scheduler stops it."""
    import ray.tune

    from mushroom.runtime import log_to_console
    from mushroom.train import train
    from mushroom.trials import trial_config, trial_metric

    log_to_console(logging.INFO)
    base = OmegaConf.create(cfg)
    trial_id = ray.tune.get_context().get_trial_id()
    run_dir = Path(base.paths.output_dir) / f"trial_{trial_id}"
    log.info("Trial %s: %s", trial_id, config)
    metrics = train(trial_config(base, config, run_dir), extra_callbacks=[ReportToTune(base.search.metric)])
    trial_metric(
        metrics, base.search.metric
    )  # a metric never logged fails the trial, as in the Optuna search
