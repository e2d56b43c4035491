"""Would dividing out the class frequencies lift balanced accuracy? Judged on folds already trained.

    python benchmarks/logit_adjustment.py logs/oof/base/random --out logs/oof/adjusted-random

Balanced accuracy rewards the rule ``argmax p(y | x) / p(y)`` (post-hoc logit adjustment, Menon et al. 2021),
while the network's calibrated probabilities carry the frequencies it was trained on (n^-0.5 sampling leaves
*Amanita* ten times as likely as *Agaricus*). For each fold of a cross-validation, the genus probabilities of
its validation and test rows are divided by ``p(y) ** tau``, ``p(y)`` the genus shares among the photos that
fold's model trained on, and renormalised; ``tau`` is the grid value with the best balanced accuracy on that
fold's validation rows (or ``--tau``). The thresholds are fitted again on the adjusted validation rows as
training fits them, and the adjusted folds are compared, paired, with the fold models refitted the same way
(``python -m mushroom.cv``'s verdicts). No training, a few seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np

from mushroom.cv import compare, deadly_classes, pool, pooled_report, refit, write_folds
from mushroom.predictions import Predictions

log = logging.getLogger("logit_adjustment")
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def training_shares(table: Predictions, fold: int) -> np.ndarray:
    """Each genus's share of the known photos that fold ``fold``'s model trained on: every other fold's test
    rows."""
    trained_on = table.trained_on(fold) & table.known
    counts = np.bincount(table.label[trained_on], minlength=len(table.class_names)).astype(float)
    return np.maximum(counts, 1.0) / max(counts.sum(), 1.0)


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the genera present, as the reports compute it."""
    return float(np.mean([(predicted[labels == c] == c).mean() for c in np.unique(labels)]))


def adjusted(probs: np.ndarray, shares: np.ndarray, tau: float) -> np.ndarray:
    scaled = probs / shares**tau
    return scaled / scaled.sum(1, keepdims=True)


def best_tau(labels: np.ndarray, probs: np.ndarray, shares: np.ndarray) -> float:
    """The grid's exponent with the best balanced accuracy on these (validation) photos."""
    scores = [balanced_accuracy(labels, adjusted(probs, shares, tau).argmax(1)) for tau in GRID]
    return GRID[int(np.argmax(scores))]


def adjust(table: Predictions, tau: float | None) -> tuple[Predictions, dict[int, float]]:
    """The table with each fold's genus probabilities adjusted at its ``tau``, fitted on that fold's
    validation rows when ``tau`` is None."""
    probs = table.probs.copy()
    chosen: dict[int, float] = {}
    for fold in sorted(set(table.fold.tolist())):
        rows = table.fold == fold
        shares = training_shares(table, fold)
        val = rows & (table.part == "val") & table.known
        chosen[fold] = best_tau(table.label[val], table.probs[val], shares) if tau is None else tau
        probs[rows] = adjusted(table.probs[rows], shares, chosen[fold])
    return dataclasses.replace(table, probs=probs), chosen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folds", type=Path, help="a cross-validation's multirun directory")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tau", type=float, help="one exponent for every fold (default: fitted per fold)")
    parser.add_argument("--open-set-tpr", type=float, default=0.9)
    parser.add_argument("--dangerous-target", type=float, default=0.01)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    table = pool(args.folds)
    deadly = deadly_classes(table.class_names, "genus")
    shifted, chosen = adjust(table, args.tau)
    log.info("tau per fold: %s", chosen)
    for name, candidate in (("fold-models", table), ("adjusted", shifted)):
        answered = refit(candidate, deadly, args.open_set_tpr, args.dangerous_target)
        write_folds(answered, args.out / name)
        pooled_report(args.out / name)
    compare(args.out / "fold-models", args.out / "adjusted")


if __name__ == "__main__":
    main()
