"""What each recipe's folds give at every decision rule of a grid: the trade, not one point. No training.

    python benchmarks/rule_grid.py logs/cv/ship-source logs/cv/new-source
    python benchmarks/rule_grid.py logs/cv/ship-random --open-set-tpr 0.8 0.825 0.85 --deadly-risk 0.01 0.03

A recipe can lose at the shipped rules and still trade better once its thresholds are refitted: a better
calibrated model puts more than 1% on *Amanita* more often, so the deadly-risk rule says "not sure" more.
For each combination of the open-set TPR, the dangerous target (1.0: no confidence threshold) and the deadly
risk, every fold's thresholds are fitted again on its own validation rows, as training fits them
(:func:`mushroom.cv.refit`), and the pooled test rows give point estimates of the figures the bars bind.
Compare recipes at equal answered share and equal *Amanita* answered harmless; then confirm a chosen rule
with intervals and a paired comparison (``python -m mushroom.cv DIR --open-set-tpr ... --out OUT``, then
``--compare``).
"""

from __future__ import annotations

import argparse
import itertools
import logging
from pathlib import Path

#: Column heading -> the pooled figure (mushroom.cv.figures) it shows.
COLUMNS = {
    "answered": "answered",
    "refused by the open set": "said_open_set",
    "Amanita answered harmless": "dangerous_rate_answered",
    '"not a mushroom"': "said_not_a_mushroom",
    "other genera answered": "other_genus/answered_with_genus",
    "non-mushrooms answered": "not_mushroom/answered_with_genus",
}


def grid_rows(folder: Path, rules: list[tuple[float, float, float]], safety: str) -> list[list[str]]:
    """One markdown row per rule: the folder, the rule, then each figure of :data:`COLUMNS`."""
    from mushroom.cv import deadly_classes, figures, pool, refit

    table = pool(folder)
    deadly = deadly_classes(table.class_names, safety)
    rows = []
    for tpr, target, risk in rules:
        found = figures(refit(table, deadly, tpr, target, risk), deadly)
        values = [found.get(name) for name in COLUMNS.values()]
        cells = ["" if value is None else f"{value:.3f}" for value in values]
        rows.append([folder.name, f"{tpr:g}", f"{target:g}", f"{risk:g}", *cells])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", type=Path, nargs="+", help="cross-validations (invoke cv's --out)")
    parser.add_argument("--open-set-tpr", type=float, nargs="+", default=[0.8, 0.825, 0.85, 0.875])
    parser.add_argument("--dangerous-target", type=float, nargs="+", default=[0.01, 1.0])
    parser.add_argument("--deadly-risk", type=float, nargs="+", default=[0.01, 0.02, 0.03])
    parser.add_argument("--safety", default="genus")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")

    rules = list(itertools.product(args.open_set_tpr, args.dangerous_target, args.deadly_risk))
    header = ["recipe", "open-set TPR", "dangerous target", "deadly risk", *COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for folder in args.folders:
        lines += ["| " + " | ".join(row) + " |" for row in grid_rows(folder, rules, args.safety)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
