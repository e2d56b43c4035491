"""Running a trained classifier over a DataLoader, outside the Trainer, for calibration and reports."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from mushroom.models import MushroomClassifier


@torch.no_grad()
def collect(
    model: MushroomClassifier, loader: DataLoader, logits: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image outputs and labels, in the loader's order.

    ``logits=True`` gives the raw logits of the image alone (what temperature scaling is fitted on);
    otherwise the calibrated probabilities the model answers with (:meth:`MushroomClassifier.predict_proba`).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs, labels = [], []
    for images, targets in loader:
        images = images.to(device)
        outputs.append((model(images) if logits else model.predict_proba(images)).float().cpu())
        labels.append(targets)
    model.train(was_training)
    return torch.cat(outputs).numpy(), torch.cat(labels).numpy()
