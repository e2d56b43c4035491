"""Evaluate a checkpoint on every image of a folder.

    python -m mushroom.evaluate model_path=CKPT data=folder data.root=DIR metrics_path=FILE.json

Class names and preprocessing come from the checkpoint; the folder may hold any subset of its classes.
"""

from __future__ import annotations

import logging

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from mushroom.checkpoints import load_classifier
from mushroom.core.answer import chosen_threshold
from mushroom.core.images import find_images
from mushroom.core.safety import table_from_config
from mushroom.data import MushroomDataModule
from mushroom.errors import MushroomError
from mushroom.inference import score_test_set
from mushroom.report import write_test_report
from mushroom.runtime import checked_command_line, exit_on_user_error

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict:
    """Predict every image of the folder; write the report (metrics JSON, per-class table, pictures),
    with the open-set view of the folders in ``open_set_dirs``."""
    chosen_threshold(cfg.abstain_threshold, None)  # refuse a threshold outside [0, 1] before any work
    model = load_classifier(cfg.model_path)  # in eval mode
    if cfg.tta_hflip is not None:
        model.hparams["tta_hflip"] = bool(cfg.tta_hflip)
    pre = model.hparams.get("preprocessing") or {}
    datamodule: MushroomDataModule = instantiate(
        cfg.data, class_names=model.class_names, test_on_all=True, **pre, _convert_="all"
    )
    datamodule.prepare_data()
    datamodule.setup("test")
    device = (
        "cuda"
        if cfg.trainer.get("accelerator") in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        else "cpu"
    )
    negatives = {}
    for folder in cfg.open_set_dirs or []:
        paths = find_images([folder])
        if not paths:
            raise MushroomError(f"open_set_dirs: {folder} holds no image.")
        negatives[str(folder)] = datamodule.images_dataloader(paths, [0] * len(paths))
    scores = score_test_set(model.to(device), datamodule.test_dataloader(), negatives)
    threshold = chosen_threshold(cfg.abstain_threshold, model.fitted_abstain_threshold())
    index, split = datamodule.index_and_split()
    return write_test_report(
        scores,
        model.class_names,
        cfg.metrics_path,
        paths=[index.paths[i] for i in split.test],
        safety_table=table_from_config(cfg.get("safety")),
        thresholds=model.thresholds()._replace(abstain=threshold),
        extra={
            "checkpoint": str(cfg.model_path),
            "tta_hflip": bool(model.hparams["tta_hflip"]),
            "tta_centre_crop": model.hparams["tta_centre_crop"],
            "temperature": float(model.temperature),
        },
    )


@checked_command_line("evaluate")
@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
