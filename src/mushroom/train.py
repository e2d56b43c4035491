"""Train a classifier: ``python -m mushroom.train [overrides]``.

Thin on purpose: it wires the configured data, model, callbacks, loggers and trainer together, then
fits, tests the best checkpoint and writes the test report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mushroom.cluster.slurm import requeued_resume_path
from mushroom.errors import MushroomError
from mushroom.runtime import checked_command_line, exit_on_user_error

if TYPE_CHECKING:
    from mushroom.data import MushroomDataModule
    from mushroom.models import MushroomClassifier

# PyTorch, Lightning and the rest are imported where they are used: a misspelt override, `--help` or
# `--cfg job` answers in a second instead of after the ~8 s those imports take.

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig) -> MushroomDataModule:
    """The data config, with size and normalisation the network expects where the config says null."""
    from hydra.utils import instantiate

    from mushroom.models import network_preprocessing

    defaults = network_preprocessing(cfg.model.name)
    filled: dict[str, Any] = {key: value for key, value in defaults.items() if cfg.data.get(key) is None}
    if cfg.data.teacher.name and not cfg.model.distill_weight:
        log.warning(
            "data.teacher.name=%s, but model.distill_weight=0: the teacher would teach nothing, so its "
            "targets are not computed. Set model.distill_weight (e.g. 0.5) to distil from it.",
            cfg.data.teacher.name,
        )
        teacher = OmegaConf.to_container(cfg.data.teacher, resolve=True)
        assert isinstance(teacher, dict)
        filled["teacher"] = {**teacher, "name": None}
    return instantiate(cfg.data, **filled, _convert_="all")


def train(cfg: DictConfig, extra_callbacks: Sequence[Any] = ()) -> dict[str, float]:
    """Fit, then test the best checkpoint; return the final metrics (floats) by name.

    ``extra_callbacks``: Lightning callbacks that cannot come from config, such as a search's pruning
    callback that holds its trial.
    """
    import lightning as L
    from hydra.utils import instantiate

    from mushroom.calibration import CalibrateBestCheckpoint
    from mushroom.checkpoints import best_checkpoint, check_resume_classes, model_state, resume_path
    from mushroom.core.safety import deadly_mask, table_from_config
    from mushroom.data.sampling import EpochSeeds
    from mushroom.run_report import report_on_test_split
    from mushroom.runtime import instantiate_all, lightning_logs_once
    from mushroom.tracking import prepare_wandb

    lightning_logs_once()
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    datamodule = build_datamodule(cfg)
    L.pytorch.utilities.rank_zero_only(datamodule.prepare_data)()
    datamodule.setup("fit")
    safety_table = table_from_config(cfg.get("safety"))

    ckpt_path = resume_path(cfg.get("ckpt_path"), output_dir) or requeued_resume_path(output_dir)
    if ckpt_path is not None:
        check_resume_classes(ckpt_path, datamodule.class_names)
    deadly = deadly_mask(datamodule.class_names, safety_table)
    model: MushroomClassifier = instantiate(
        cfg.model,
        **({"pretrained": False} if ckpt_path is not None else {}),  # the weights come from the checkpoint
        class_names=datamodule.class_names,
        class_counts=datamodule.train_class_counts(),
        preprocessing=datamodule.preprocessing.as_dict(),
        open_set_classes=datamodule.open_set_classes,
        deadly=None if deadly is None else deadly.tolist(),
        _convert_="all",
    )
    prepare_wandb(cfg.get("logger"))
    callbacks = [*instantiate_all(cfg.get("callbacks")), *extra_callbacks]
    calibrator = None
    if cfg.calibration.enabled:
        calibrator = CalibrateBestCheckpoint.from_config(cfg.calibration, model.hparams["deadly"])
        callbacks.append(calibrator)
    if cfg.get("seed") is not None:
        callbacks.append(EpochSeeds(cfg.seed))  # a resumed run ends where the uninterrupted one does
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=instantiate_all(cfg.get("logger"))
    )

    log.info(
        "Training %s on %d classes; outputs in %s", cfg.model.name, len(datamodule.class_names), output_dir
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}

    if cfg.get("test") and len(datamodule.index_and_split()[1].test):
        best = best_checkpoint(trainer)
        if best:
            # The state best.ckpt ships, loaded here rather than through ckpt_path: with weight averaging
            # (callbacks=[...,ema]) Lightning would restore the raw weights it keeps there for resuming,
            # not the averaged, calibrated ones that evaluate, export and serve load.
            model.load_state_dict(model_state(best))
        else:
            log.warning("No best checkpoint was saved; testing the weights as they are after fitting.")
        trainer.test(model, datamodule=datamodule)
        metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})
        if trainer.is_global_zero:  # one process, or rank 0 of several: the same report either way
            calibration = calibrator.fitted if calibrator else {}
            report = report_on_test_split(
                model, datamodule, cfg, safety_table, best, calibration, trainer.loggers
            )
            metrics.update({f"test/report_{k}": v for k, v in report.items() if isinstance(v, float)})
    elif cfg.data.get("fold", 0) is None and trainer.is_global_zero:
        from mushroom.model_card import write_model_card

        best = best_checkpoint(trainer)
        log.info("No test split (data.fold=null): the recipe's figures are its cross-validation's.")
        calibration = calibrator.fitted if calibrator else {}
        write_model_card(None, cfg, datamodule, Path(best).parent if best else output_dir, calibration)
    return metrics


@checked_command_line("train")
@hydra.main(version_base="1.3", config_path="configs", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    if cfg.get("search") is not None:  # hparams_search=... on train: it would train once, not search
        raise MushroomError(
            "hparams_search configures python -m mushroom.search; run that instead of mushroom.train "
            "(the Hydra Optuna sweeper is gone: it needed optuna<3)."
        )
    if cfg.get("cluster") is not None:
        from mushroom.cluster.ray_train import train_on_ray

        metrics = train_on_ray(cfg, train)
    else:
        metrics = train(cfg)
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


if __name__ == "__main__":
    main()
