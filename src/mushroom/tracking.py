"""Send the test report to experiment trackers: pictures and sample predictions to W&B.

Scalars reach every logger through Lightning; this adds what a dashboard needs beyond them. The best
checkpoint goes to W&B as a model artifact through ``WandbLogger(log_model=True)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def send_report_to_loggers(
    loggers: Sequence[Any],
    report: dict[str, Any],
    report_path: Path,
    probs: np.ndarray,
    labels: np.ndarray,
    paths: Sequence[str | Path],
    samples: int = 16,
) -> None:
    """Confusion matrix, reliability diagram, mistakes gallery and a table of sample predictions."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        pictures = {
            f"test/{key.removesuffix('_png')}": report_path.parent / report[key]
            for key in ("confusion_matrix_png", "reliability_png", "mistakes_png")
            if report.get(key)
        }
        for key, picture in pictures.items():
            logger.log_image(key=key, images=[str(picture)])
        import wandb

        names = report["class_names"]
        rows = []
        for i in np.linspace(0, len(labels) - 1, min(samples, len(labels))).astype(int):
            predicted = int(probs[i].argmax())
            rows.append(
                [wandb.Image(str(paths[i])), names[labels[i]], names[predicted], float(probs[i, predicted])]
            )
        logger.log_table(
            key="test/sample_predictions", columns=["image", "true", "predicted", "confidence"], data=rows
        )
        log.info("Logged the test report to W&B run %s", logger.experiment.id)


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def prepare_wandb(logger_cfg: DictConfig | None) -> None:
    """Never let W&B block on a login prompt: without credentials it runs offline, and says so."""
    if not logger_cfg or "wandb" not in logger_cfg:
        return
    os.environ.setdefault("WANDB_SILENT", "true")
    if not wandb_has_credentials() and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
        os.environ["WANDB_MODE"] = "offline"
        log.warning(
            "No W&B API key found (WANDB_API_KEY or `wandb login`): logging offline to %s; "
            "upload later with `wandb sync`.",
            logger_cfg.wandb.get("save_dir"),
        )
