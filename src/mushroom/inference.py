"""Running a trained classifier over a DataLoader, outside the Trainer, for calibration and reports."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from mushroom.models import MushroomClassifier


@torch.no_grad()
def _run(
    model: MushroomClassifier, loader: DataLoader, outputs: Callable[[torch.Tensor], tuple[torch.Tensor, ...]]
) -> list[np.ndarray]:
    """``outputs(images)`` for every batch, and the labels, each concatenated in the loader's order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    columns: list[list[torch.Tensor]] = []
    for images, targets in loader:
        row = [out.float().cpu() for out in outputs(images.to(device))] + [targets]
        columns = columns or [[] for _ in row]
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    model.train(was_training)
    return [torch.cat(column).numpy() for column in columns]


def collect_logits(model: MushroomClassifier, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """Per-image raw genus logits of the image alone (what temperature scaling is fitted on) and labels,
    in the loader's order."""
    logits, labels = _run(model, loader, lambda images: (model(images),))
    return logits, labels


def collect_scores(
    model: MushroomClassifier, loader: DataLoader
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image calibrated probabilities, open-set scores (:meth:`MushroomClassifier.predict_scores`)
    and labels, in the loader's order."""
    probs, open_set, labels = _run(model, loader, model.predict_scores)
    return probs, open_set, labels
