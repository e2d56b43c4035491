"""Evaluate a checkpoint on every image of a folder.

    python -m mushroom.evaluate ckpt_path=CKPT data=folder data.root=DIR metrics_path=FILE.json

Class names and preprocessing come from the checkpoint; the folder may hold any subset of its classes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from mushroom.data import MushroomDataModule
from mushroom.errors import MushroomError
from mushroom.models import MushroomClassifier
from mushroom.report import write_report
from mushroom.runtime import exit_on_user_error

log = logging.getLogger(__name__)


def load_classifier(ckpt_path: str | Path) -> MushroomClassifier:
    """Load a checkpoint written by mushroom.train, without fetching pretrained weights again."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise MushroomError(
            f"Checkpoint {path} does not exist. Pass ckpt_path=<run dir>/checkpoints/best.ckpt."
        )
    try:
        # The checkpoint holds the trained weights: do not fetch ImageNet ones, and skip compiling.
        return MushroomClassifier.load_from_checkpoint(
            path, map_location="cpu", pretrained=False, compile=False
        )
    except Exception as error:
        raise MushroomError(
            f"Could not load {path} as a mushroom checkpoint ({type(error).__name__}: {error}). "
            "Use a best.ckpt or last.ckpt written by mushroom.train."
        ) from error


def evaluate(cfg: DictConfig) -> dict:
    """Test the checkpoint on the whole folder; write the metrics JSON and confusion matrix PNG."""
    model = load_classifier(cfg.ckpt_path)
    model.eval()
    pre = model.hparams.get("preprocessing") or {}
    datamodule: MushroomDataModule = instantiate(
        cfg.data, class_names=model.class_names, test_on_all=True, **pre, _convert_="all"
    )
    datamodule.prepare_data()
    datamodule.setup("test")
    progress = [L.pytorch.callbacks.RichProgressBar()] if cfg.trainer.get("enable_progress_bar", True) else []
    trainer: L.Trainer = instantiate(cfg.trainer, logger=False, callbacks=progress)
    trainer.test(model, datamodule=datamodule, verbose=False)
    return write_report(model.test_confmat.compute().cpu().numpy(), model.class_names, cfg.metrics_path)


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
