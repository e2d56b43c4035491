"""Classification figures from a confusion matrix: the metrics JSON and the confusion-matrix picture.

Everything is computed from the confusion matrix, so the JSON can be checked by hand. Classes with no
images in the evaluated set are left out of the macro averages (a folder may hold only some of the
model's classes) but stay in the matrix, since the model may still predict them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def metrics_from_confusion(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, macro F1 and per-class precision/recall/F1/support.

    ``confusion[i, j]`` counts images of true class ``i`` predicted as class ``j``.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    true_positives = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, true_positives / support, 0.0)
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    total = int(support.sum())
    return {
        "n_images": total,
        "accuracy": float(true_positives.sum() / total) if total else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
            if present[i]
        },
        "class_names": list(class_names),
        "confusion_matrix": confusion.tolist(),
    }


def plot_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """Save the confusion matrix as a PNG: counts in the cells, colour by share of the true class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion)
    rows = confusion.sum(axis=1, keepdims=True).clip(min=1)
    size = max(4.0, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(confusion / rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(confusion.shape[0]):
        for j in range(confusion.shape[1]):
            dark = confusion[i, j] / rows[i, 0] > 0.5
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", color="white" if dark else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(confusion: np.ndarray, class_names: Sequence[str], metrics_path: str | Path) -> dict:
    """Write ``metrics_path`` (JSON) and the confusion matrix PNG beside it; log the headline figures."""
    metrics = metrics_from_confusion(confusion, class_names)
    metrics_path = Path(metrics_path)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    png = plot_confusion_matrix(
        confusion, class_names, metrics_path.with_name(metrics_path.stem + "_confusion.png")
    )
    metrics["confusion_matrix_png"] = png.name
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    log.info(
        "%d images: accuracy %.4f, balanced accuracy %.4f, macro F1 %.4f",
        metrics["n_images"],
        metrics["accuracy"],
        metrics["balanced_accuracy"],
        metrics["macro_f1"],
    )
    for name, row in metrics["per_class"].items():
        log.info(
            "  %-14s precision %.3f recall %.3f f1 %.3f support %d",
            name,
            row["precision"],
            row["recall"],
            row["f1"],
            row["support"],
        )
    log.info("Wrote %s and %s", metrics_path, png)
    return metrics
