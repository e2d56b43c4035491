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
    filled = {key: value for key, value in defaults.items() if cfg.data.get(key) is None}
    return instantiate(cfg.data, **filled, _convert_="all")


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``last`` means this run dir's ``checkpoints/last.ckpt``; anything else must be an existing file."""
    if not ckpt_path:
        return None
    path = output_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        hint = (
            " To resume, pass the interrupted run's directory: hydra.run.dir=<that dir> ckpt_path=last."
            if ckpt_path == "last"
            else ""
        )
        raise MushroomError(f"Checkpoint {path} does not exist.{hint}")
    return str(path)


def deadly_classes(class_names: list[str], cfg: DictConfig) -> list[bool] | None:
    """Which classes hold deadly species, from the safety table (``None`` when it does not cover them)."""
    from mushroom.core.safety import deadly_mask, table_from_config

    mask = deadly_mask(class_names, table_from_config(cfg.get("safety")))
    return None if mask is None else mask.tolist()


def train(cfg: DictConfig, extra_callbacks: Sequence[Any] = ()) -> dict[str, float]:
    """Fit, then test the best checkpoint; return the final metrics (floats) by name.

    ``extra_callbacks``: Lightning callbacks that cannot come from config, such as a search's pruning
    callback that holds its trial.
    """
    import lightning as L
    from hydra.utils import instantiate

    from mushroom.calibration import CalibrateBestCheckpoint
    from mushroom.checkpoints import best_checkpoint, checkpoint_class_names
    from mushroom.data.sampling import EpochSeeds
    from mushroom.runtime import instantiate_all, lightning_logs_once, prepare_wandb

    lightning_logs_once()
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    datamodule = build_datamodule(cfg)
    L.pytorch.utilities.rank_zero_only(datamodule.prepare_data)()
    datamodule.setup("fit")

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir) or requeued_resume_path(output_dir)
    if ckpt_path is not None:
        trained_on = checkpoint_class_names(ckpt_path)
        if trained_on != datamodule.class_names:
            raise MushroomError(
                f"{ckpt_path} was trained on classes {trained_on}, but the data has "
                f"{datamodule.class_names}. Resume with the same data, or start a new run without ckpt_path."
            )

    resuming = {"pretrained": False} if ckpt_path is not None else {}  # weights come from the checkpoint
    model: MushroomClassifier = instantiate(
        cfg.model,
        **resuming,
        class_names=datamodule.class_names,
        class_counts=datamodule.train_class_counts(),
        preprocessing=datamodule.preprocessing.as_dict(),
        open_set_classes=datamodule.open_set_classes,
        deadly=deadly_classes(datamodule.class_names, cfg),
        _convert_="all",
    )
    prepare_wandb(cfg.get("logger"))
    callbacks = [*instantiate_all(cfg.get("callbacks")), *extra_callbacks]
    calibrator = None
    if cfg.eval.calibrate:
        tpr = cfg.eval.get("open_set_tpr")
        calibrator = CalibrateBestCheckpoint(cfg.eval.dangerous_target, tpr, model.hparams["deadly"])
        callbacks.append(calibrator)
    if cfg.get("seed") is not None:
        callbacks.append(EpochSeeds(cfg.seed))  # a resumed run ends where the uninterrupted one does
    loggers = instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

    log.info(
        "Training %s on %d classes; outputs in %s", cfg.model.name, len(datamodule.class_names), output_dir
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}

    if cfg.get("test") and len(datamodule.index_and_split()[1].test):
        best = best_checkpoint(trainer)
        if not best:
            log.warning("No best checkpoint was saved; testing the weights as they are after fitting.")
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})
        report: dict[str, Any] = {}
        if trainer.is_global_zero:  # one process, or rank 0 of several: the same report either way
            calibration = calibrator.fitted if calibrator else {}
            report = report_on_test_split(model, datamodule, cfg, best, calibration, trainer.loggers)
        metrics.update({f"test/report_{k}": v for k, v in report.items() if isinstance(v, float)})
    return metrics


def report_on_test_split(
    model: MushroomClassifier,
    datamodule: MushroomDataModule,
    cfg: DictConfig,
    best: str,
    calibration: dict[str, float],
    loggers: Sequence[Any],
) -> dict[str, Any]:
    """The test report (metrics, safety and open-set views, pictures), the model card, and the report
    sent to the loggers; from the best checkpoint's weights as :meth:`Trainer.test` left them."""
    from mushroom.core.open_set import open_set_view
    from mushroom.core.safety import table_from_config
    from mushroom.inference import collect_scores, fold_predictions
    from mushroom.model_card import write_model_card
    from mushroom.report import write_evaluation_report
    from mushroom.tracking import send_report_to_loggers

    output_dir = Path(cfg.paths.output_dir)
    report_path = output_dir / "test_metrics.json"
    probs, open_set, labels = collect_scores(model, datamodule.test_dataloader())
    held_out = datamodule.negatives_by_kind("test")
    negatives = {kind: collect_scores(model, loader)[:2] for kind, loader in held_out.items()}
    thresholds = model.fitted_abstain_threshold(), model.fitted_open_set_threshold()
    index, split = datamodule.index_and_split()
    test_paths = [index.paths[i] for i in split.test]
    scored = {"known": (probs, open_set, labels), **negatives}
    fold_predictions(model, datamodule, int(cfg.data.fold), scored).write(output_dir / "test_predictions.csv")
    report = write_evaluation_report(
        probs,
        labels,
        datamodule.class_names,
        report_path,
        paths=test_paths,
        safety_table=table_from_config(cfg.get("safety")),
        abstain_threshold=thresholds[0],
        extra={
            "calibration": calibration,
            "checkpoint": best,
            "open_set": open_set_view((probs, open_set), negatives, *thresholds),
        },
    )
    write_model_card(report, cfg, datamodule, Path(best).parent if best else output_dir)
    send_report_to_loggers(loggers, report, report_path, probs, labels, test_paths)
    return report


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
