"""What a training run writes about its held-out test split: the report that ``mushroom.evaluate`` writes
too (:func:`mushroom.report.write_test_report`), plus the per-photo table of the fold, the model card and
the report sent to the run's loggers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

if TYPE_CHECKING:
    from mushroom.data import MushroomDataModule
    from mushroom.models import MushroomClassifier


def report_on_test_split(
    model: MushroomClassifier,
    datamodule: MushroomDataModule,
    cfg: DictConfig,
    safety_table: Mapping[str, Any] | None,
    best: str,
    calibration: dict[str, float],
    loggers: Sequence[Any],
) -> dict[str, Any]:
    """The test report (metrics, safety and open-set views, pictures), the fold's predictions, the model
    card, and the report sent to the loggers; from the best checkpoint's weights as
    :meth:`~lightning.pytorch.Trainer.test` left them."""
    from mushroom.inference import fold_predictions, score_test_set
    from mushroom.model_card import write_model_card
    from mushroom.report import write_test_report
    from mushroom.tracking import send_report_to_loggers

    output_dir = Path(cfg.paths.output_dir)
    report_path = output_dir / "test_metrics.json"
    scores = score_test_set(model, datamodule.test_dataloader(), datamodule.negatives_by_kind("test"))
    index, split = datamodule.index_and_split()
    test_paths = [index.paths[i] for i in split.test]
    fold_predictions(model, datamodule, int(cfg.data.fold), scores).write(output_dir / "test_predictions.csv")
    report = write_test_report(
        scores,
        datamodule.class_names,
        report_path,
        paths=test_paths,
        safety_table=safety_table,
        thresholds=model.thresholds(),
        extra={"calibration": calibration, "checkpoint": best},
    )
    write_model_card(report, cfg, datamodule, Path(best).parent if best else output_dir)
    send_report_to_loggers(loggers, report, report_path, scores.probs, scores.labels, test_paths)
    return report
