"""k-fold cross-validation summary: mean ± standard deviation of every test figure over the folds.

    python -m mushroom.train -m data.num_folds=5 data.fold=0,1,2,3,4 hydra.sweep.dir=logs/cv/lite0
    python -m mushroom.cv logs/cv/lite0            # or both at once: invoke cv --folds 5

Reads ``<dir>/*/test_metrics.json`` (one per fold, as a Hydra multirun writes them) and writes
``<dir>/cv_summary.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from mushroom.errors import MushroomError

log = logging.getLogger(__name__)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "ece")


def fold_figures(report: dict) -> dict[str, float]:
    """The numbers of one fold's report worth averaging: headline metrics, per-class recall/F1, safety."""
    figures = {name: float(report[name]) for name in HEADLINE if report.get(name) is not None}
    for name, row in report.get("per_class", {}).items():
        figures[f"recall/{name}"] = float(row["recall"])
        figures[f"f1/{name}"] = float(row["f1"])
    plain = (report.get("safety") or {}).get("without_abstaining") or {}
    if plain.get("dangerous_confusion_rate") is not None:
        figures["dangerous_confusion_rate"] = float(plain["dangerous_confusion_rate"])
    return figures


def summarize(folder: str | Path) -> dict:
    folder = Path(folder)
    reports = sorted(folder.glob("*/test_metrics.json"))
    if not reports:
        raise MushroomError(
            f"No <fold>/test_metrics.json under {folder}. Run the folds first: python -m mushroom.train -m "
            f"data.fold=0,1,2,3,4 hydra.sweep.dir={folder}"
        )
    per_fold = [fold_figures(json.loads(path.read_text())) for path in reports]
    names = sorted(set().union(*per_fold))
    metrics = {
        name: {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values),
            "values": values,
        }
        for name in names
        for values in [[fold[name] for fold in per_fold if name in fold]]
    }
    summary = {"folds": [str(path.parent.name) for path in reports], "metrics": metrics}
    (folder / "cv_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for name in (*HEADLINE, "dangerous_confusion_rate"):
        if name in metrics:
            m = metrics[name]
            log.info("%-26s %.4f ± %.4f  (%d folds)", name, m["mean"], m["std"], m["n"])
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="the multirun directory holding one sub-folder per fold")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        summarize(args.folder)
    except MushroomError as error:
        raise SystemExit(str(error)) from error


if __name__ == "__main__":
    main()
