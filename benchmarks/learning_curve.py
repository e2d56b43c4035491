"""What would more photos buy? A learning curve from cross-validations already trained.

    invoke cv --folds 3 --out logs/cv/half --overrides \
        "experiment=real_photos_cpu data.root=../shared/data/mushrooms-real data.train_fraction=0.5"
    python benchmarks/learning_curve.py logs/cv/half logs/cv/ship-random logs/cv/ship5-random --target 0.95

Each argument is a cross-validation of the same photos: any number of folds, any ``data.train_fraction``
(a share of each class's training photos, validation and test unchanged; at the same folds the points
are judged on the same photos, fold by fold). For each, smallest first: the known photos each fold model
trained on (per class: those outside its test and validation rows, times its ``data.train_fraction``), and
the pooled figures with their 95% bootstrap intervals. For each pair of neighbours, the paired difference
of the headline figures (``python -m mushroom.cv --compare``'s verdicts). From the first and last points,
the gain per doubling of the training photos, log-linear, with its interval, and the doublings a
``--target`` balanced accuracy would take at that rate: an extrapolation past the measured range, only as
good as the straight line it assumes. No training; a few seconds a point.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from mushroom.cv import aligned, deadly_classes, fold_runs, intervals, paired_comparison, pool
from mushroom.predictions import Predictions

log = logging.getLogger("learning_curve")

#: The figures the curve follows (``mushroom.cv.figures`` names); per-class recall is added for each class.
FOLLOWED = ("balanced_accuracy", "accuracy", "answered", "other_genus/answered_with_genus")


def training_photos(folder: Path, table: Predictions) -> dict[str, float]:
    """Known photos a fold model trained on, averaged over the folds, in all and per class."""
    fractions = {
        fold: float(OmegaConf.select(OmegaConf.load(run / "config.yaml"), "data.train_fraction") or 1.0)
        for fold, run in fold_runs(folder).items()
    }
    known = table.subset(table.known)
    classes = len(table.class_names)
    totals = np.bincount(known.label[known.part == "test"], minlength=classes)  # each photo tests once
    per_fold = []
    for fold, fraction in fractions.items():
        held = (known.fold == fold) & np.isin(known.part, ["test", "val"])
        per_fold.append(fraction * (totals - np.bincount(known.label[held], minlength=classes)))
    mean = np.mean(per_fold, axis=0)
    return {"all": float(mean.sum())} | {
        name: float(n) for name, n in zip(table.class_names, mean, strict=True)
    }


def per_doubling(row: dict[str, Any], doublings: float) -> dict[str, float]:
    """A paired difference's estimate and interval over ``doublings`` of the training photos."""
    return {key: row[key] / doublings for key in ("difference", "low", "high")}


def followed(names: list[str]) -> list[str]:
    return [*FOLLOWED, *(f"recall/{name}" for name in names)]


def learning_curve(
    folders: list[Path], target: float, unit: str = "group", n: int = 1000
) -> dict[str, object]:
    """The curve's points (smallest training set first), neighbours' paired differences and the
    extrapolation to ``target`` balanced accuracy."""
    tables = {folder: pool(folder) for folder in folders}
    photos = {folder: training_photos(folder, table) for folder, table in tables.items()}
    folders = sorted(folders, key=lambda folder: photos[folder]["all"])
    names = tables[folders[0]].class_names
    deadly = deadly_classes(names, "genus")
    points: list[dict[str, Any]] = []
    for folder in folders:
        ci = intervals(tables[folder], deadly, unit, n)
        points.append(
            {"run": str(folder), "training_photos": photos[folder]} | {k: ci[k] for k in followed(names)}
        )
    steps: list[dict[str, Any]] = []
    for before, after in itertools.pairwise(folders):
        paired = paired_comparison(tables[before], tables[after], deadly, unit, n)
        doublings = math.log2(photos[after]["all"] / photos[before]["all"])
        same_folds = bool(
            np.array_equal(
                tables[before].tested.fold, aligned(tables[before].tested, tables[after].tested).fold
            )
        )
        steps.append(
            {"before": str(before), "after": str(after), "doublings": doublings, "same_folds": same_folds}
            | {"balanced_accuracy_per_doubling": per_doubling(paired["balanced_accuracy"], doublings)}
            | {k: paired[k] for k in followed(names)}
        )
    first, last = folders[0], folders[-1]
    doublings = math.log2(photos[last]["all"] / photos[first]["all"])
    if doublings < 0.1:
        raise SystemExit(
            f"{first} and {last} trained on about as many photos ({photos[first]['all']:.0f} and "
            f"{photos[last]['all']:.0f} a fold): a curve needs points apart, e.g. data.train_fraction=0.5 "
            "and 1."
        )
    if len(steps) == 1:  # the span is the one step, already compared
        gain = steps[0]["balanced_accuracy_per_doubling"]
    else:
        gain = per_doubling(
            paired_comparison(tables[first], tables[last], deadly, unit, n)["balanced_accuracy"], doublings
        )
    reached = points[-1]["balanced_accuracy"]["estimate"]
    needed = (target - reached) / gain["difference"] if gain["difference"] > 0 else math.inf
    extrapolation = {
        "doublings_measured": doublings,
        "balanced_accuracy_gain_per_doubling": gain,
        "target": target,
        "doublings_to_target": needed,
        "photos_multiple_to_target": 2**needed if math.isfinite(needed) else math.inf,
    }
    return {"points": points, "steps": steps, "extrapolation": extrapolation}


def log_curve(curve: dict) -> None:
    for point in curve["points"]:
        photos = point["training_photos"]
        log.info(
            "%s: %.0f training photos a fold (%s)",
            point["run"],
            photos["all"],
            ", ".join(f"{name} {count:.0f}" for name, count in photos.items() if name != "all"),
        )
        for name, row in point.items():
            if isinstance(row, dict) and "estimate" in row and row["estimate"] is not None:
                log.info("  %-34s %.3f [%.3f, %.3f]", name, row["estimate"], row["low"], row["high"])
    for step in curve["steps"]:
        log.info(
            "%s -> %s: %.2f doublings of the training photos, %s folds",
            step["before"],
            step["after"],
            step["doublings"],
            "the same" if step["same_folds"] else "other",
        )
        rate = step["balanced_accuracy_per_doubling"]
        log.info(
            "  balanced accuracy per doubling       %+.3f [%.3f, %.3f]",
            rate["difference"],
            rate["low"],
            rate["high"],
        )
        for name, row in step.items():
            if isinstance(row, dict) and "verdict" in row and row["difference"] is not None:
                log.info(
                    "  %-34s %+.3f [%.3f, %.3f] %s",
                    name,
                    row["difference"],
                    row["low"],
                    row["high"],
                    row["verdict"],
                )
    ex = curve["extrapolation"]
    gain = ex["balanced_accuracy_gain_per_doubling"]
    log.info(
        "balanced accuracy per doubling of the training photos: %+.3f [%.3f, %.3f] over %.2f doublings "
        "measured; %.3f would take %.1f more doublings (%.1fx the photos) at that rate",
        gain["difference"],
        gain["low"],
        gain["high"],
        ex["doublings_measured"],
        ex["target"],
        ex["doublings_to_target"],
        ex["photos_multiple_to_target"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "folders", nargs="+", type=Path, help="cross-validations of the same photos (2 or more)"
    )
    parser.add_argument("--target", type=float, default=0.95, help="balanced accuracy to extrapolate to")
    parser.add_argument(
        "--unit", default="group", help="what the bootstrap resamples: group, source or photo"
    )
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="write the curve here as JSON")
    args = parser.parse_args(argv)
    if len(args.folders) < 2:
        parser.error("a curve needs two cross-validations at least")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    curve = learning_curve(args.folders, args.target, args.unit, args.resamples)
    log_curve(curve)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(curve, indent=1) + "\n")


if __name__ == "__main__":
    main()
