"""The evaluation report: metrics JSON, per-class Markdown table, and pictures.

Class figures are computed from the confusion matrix, so the JSON can be checked by hand. Classes with
no images in the evaluated set are left out of the macro averages (a folder may hold only some of the
model's classes) but stay in the matrix, since the model may still predict them. With per-image
probabilities the report adds calibration (ECE, reliability diagram), the most confident mistakes,
and the safety view (dangerous-confusion rate, answering "not sure" below a confidence threshold).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mushroom.calibration import expected_calibration_error, reliability_bins
from mushroom.core.answer import Thresholds
from mushroom.core.open_set import open_set_view
from mushroom.core.safety import abstain_curve, dangerous_confusions, deadly_mask
from mushroom.predictions import TestScores

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


#: Up to this many classes the confusion matrix shows its counts; the figure is at most this wide.
ANNOTATED_CLASSES = 30
MAX_FIGURE_INCHES = 24.0


def plot_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """Save the confusion matrix as a PNG: colour by share of the true class, counts in the cells.

    Past :data:`ANNOTATED_CLASSES` classes (the 215-species set) the cells hold no numbers and the
    figure stops growing: tens of thousands of text labels took over a minute to draw and were
    unreadable anyway; the counts are in the metrics JSON.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion)
    rows = confusion.sum(axis=1, keepdims=True).clip(min=1)
    n = len(class_names)
    size = min(max(4.0, 0.6 * n + 2), MAX_FIGURE_INCHES)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(confusion / rows, cmap="Blues", vmin=0, vmax=1)
    annotated = n <= ANNOTATED_CLASSES
    fontsize = None if annotated else max(2.0, 8.0 * ANNOTATED_CLASSES / n)
    ax.set_xticks(range(n), class_names, rotation=45 if annotated else 90, ha="right", fontsize=fontsize)
    ax.set_yticks(range(n), class_names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(confusion.shape[0] if annotated else 0):
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


def write_report(
    confusion: np.ndarray,
    class_names: Sequence[str],
    metrics_path: str | Path,
    additions: Mapping[str, Any] | None = None,
) -> dict:
    """Write ``metrics_path`` (JSON) and the confusion matrix PNG beside it; log the headline figures."""
    metrics = metrics_from_confusion(confusion, class_names) | dict(additions or {})
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


def per_class_markdown(metrics: dict) -> str:
    lines = ["| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for name, row in metrics["per_class"].items():
        lines.append(
            f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
        )
    lines.append(
        f"| **all** | accuracy {metrics['accuracy']:.3f} | balanced {metrics['balanced_accuracy']:.3f} | "
        f"macro {metrics['macro_f1']:.3f} | {metrics['n_images']} |"
    )
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reliability(bins: list[dict], ece: float, path: Path) -> Path:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    filled = [b for b in bins if b["count"]]
    centres = [(b["low"] + b["high"]) / 2 for b in filled]
    width = bins[0]["high"] - bins[0]["low"]
    ax.bar(centres, [b["accuracy"] for b in filled], width=width * 0.9, color="tab:blue", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability, ECE = {ece:.3f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_confident_mistakes(
    paths: Sequence[str | Path],
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    count: int = 12,
) -> Path | None:
    """A gallery of the wrong answers given with the highest confidence."""
    from PIL import Image

    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    if not len(wrong):
        return None
    worst = wrong[np.argsort(-probs[wrong].max(axis=1))][:count]
    plt = _pyplot()
    cols = min(4, len(worst))
    rows = int(np.ceil(len(worst) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, worst, strict=False):
        with Image.open(paths[i]) as image:
            image.thumbnail((256, 256))
            ax.imshow(image.convert("RGB"))
        ax.set_title(
            f"true {class_names[labels[i]]}\npredicted {class_names[predicted[i]]} ({probs[i].max():.0%})",
            fontsize=9,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_evaluation_report(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    metrics_path: str | Path,
    paths: Sequence[str | Path] | None = None,
    safety_table: Mapping[str, Any] | None = None,
    abstain_threshold: float | None = None,
    extra: Mapping[str, Any] | None = None,
    deadly_risk: float | None = None,
) -> dict:
    """The whole report from per-image probabilities.

    Everything :func:`write_report` writes, plus the per-class Markdown table, the reliability diagram
    and ECE, the most confident mistakes, and the safety view.
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    metrics_path = Path(metrics_path)
    stem = metrics_path.with_name(metrics_path.stem)
    confusion = np.zeros((len(class_names),) * 2, dtype=np.int64)
    np.add.at(confusion, (labels, probs.argmax(axis=1)), 1)
    additions: dict[str, Any] = dict(extra or {})

    bins = reliability_bins(probs, labels)
    additions["ece"] = expected_calibration_error(probs, labels)
    additions["reliability_bins"] = bins
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    additions["reliability_png"] = plot_reliability(
        bins, additions["ece"], Path(f"{stem}_reliability.png")
    ).name
    if paths is not None:
        gallery = plot_confident_mistakes(paths, probs, labels, class_names, Path(f"{stem}_mistakes.png"))
        additions["mistakes_png"] = gallery.name if gallery else None

    deadly = deadly_mask(class_names, safety_table)
    if deadly is not None:
        additions["safety"] = {
            "deadly_genera": [name for name, d in zip(class_names, deadly, strict=True) if d],
            "without_abstaining": dangerous_confusions(probs, labels, deadly),
            "abstain_curve": abstain_curve(probs, labels, deadly),
        }
        if abstain_threshold is not None or deadly_risk is not None:
            additions["safety"]["abstaining"] = {
                **dangerous_confusions(probs, labels, deadly, abstain_threshold or 0.0, deadly_risk),
                "deadly_risk": deadly_risk,
            }

    metrics = write_report(confusion, class_names, metrics_path, additions=additions)
    Path(f"{stem}_per_class.md").write_text(per_class_markdown(metrics))
    log.info("Calibration: ECE %.4f", metrics["ece"])
    if "safety" in metrics:
        plain = metrics["safety"]["without_abstaining"]
        log.info(
            "Safety: %s of %s images of deadly genera called a genus without deadly species (rate %s)",
            plain["dangerous_confusions"],
            plain["deadly_genus_images"],
            plain["dangerous_confusion_rate"],
        )
        if "abstaining" in metrics["safety"]:
            cut = metrics["safety"]["abstaining"]
            log.info(
                "Answering at confidence >= %.3f: coverage %.3f, accuracy %s, dangerous-confusion rate %s",
                cut["threshold"],
                cut["coverage"],
                cut["accuracy_answered"],
                cut["dangerous_confusion_rate"],
            )
    log_open_set(metrics.get("open_set"))
    return metrics


def write_test_report(
    scores: TestScores,
    class_names: Sequence[str],
    metrics_path: str | Path,
    paths: Sequence[str | Path],
    safety_table: Mapping[str, Any] | None,
    thresholds: Thresholds,
    extra: Mapping[str, Any],
) -> dict:
    """The report that ``mushroom.train`` writes on its test split and ``mushroom.evaluate`` on a folder:
    :func:`write_evaluation_report` with the open-set view at the model's ``thresholds``."""
    abstain, open_set, deadly_risk = thresholds
    deadly = deadly_mask(class_names, safety_table)
    view = open_set_view(
        (scores.probs, scores.open_set), scores.negatives, abstain, open_set, deadly, deadly_risk
    )
    return write_evaluation_report(
        scores.probs,
        scores.labels,
        class_names,
        metrics_path,
        paths=paths,
        safety_table=safety_table,
        abstain_threshold=abstain,
        extra={**extra, "open_set": view},
        deadly_risk=deadly_risk,
    )


def log_open_set(view: Mapping[str, Any] | None) -> None:
    """One line for the known photos, one per folder of negatives."""
    if not view:
        return
    log.info(
        "Open set (threshold %s): known photos answered with a genus %s",
        view["threshold"],
        view["known_answered_with_genus"],
    )
    for name, row in view["folders"].items():
        log.info(
            "Open set, %s (%d photos): AUROC %.3f, FPR@95%%TPR %.3f, answered with a genus %.3f",
            name,
            row["images"],
            row["auroc"],
            row["fpr_at_95_tpr"],
            row["answered_with_genus"],
        )
