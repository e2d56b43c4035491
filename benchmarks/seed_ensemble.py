"""Would averaging models trained with other seeds pay? Judged on cross-validations already trained.

    python benchmarks/seed_ensemble.py logs/cv/base logs/cv/seed7 --out logs/oof/seeds-42-7

Each argument is a cross-validation of the same folds (``data.num_folds`` and ``data.seed`` equal, the model's
``seed`` different: another initialisation, other draws and augmentations). Each photo's calibrated genus
probabilities and open-set scores are averaged over the runs, as the mirror image's are averaged at test time
(what an ensemble exported as one model would compute), and each fold's thresholds are fitted again on its
validation rows as training fits them, by the first run's rules (its ``calibration.open_set_tpr`` and
``dangerous_target``) unless given. Written, as fold tables: every run refitted the same way (which gives
its fold tables back) and the ensemble; then the ensemble is compared, paired, with each run
(``python -m mushroom.cv``'s verdicts). No training; a few seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np

from mushroom.cv import (
    aligned,
    compare,
    deadly_classes,
    pool,
    pooled_report,
    refit,
    refit_rules,
    write_folds,
)
from mushroom.predictions import Predictions

log = logging.getLogger("seed_ensemble")


def averaged(tables: list[Predictions], mean: str = "arithmetic") -> Predictions:
    """The first table with every run's probabilities and open-set scores averaged, row by row.

    ``mean="geometric"`` averages the log-probabilities instead (renormalised): a genus one member all but
    rules out stays ruled out, where the arithmetic mean keeps half of the other member's doubt.
    """
    first, rest = tables[0], [aligned(tables[0], t, same_folds=True) for t in tables[1:]]
    members = [first, *rest]
    if mean == "geometric":
        log_probs = np.mean([np.log(np.clip(t.probs, 1e-12, 1.0)) for t in members], axis=0)
        probs = np.exp(log_probs - log_probs.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
    else:
        probs = np.mean([t.probs for t in members], axis=0)
    return dataclasses.replace(first, probs=probs, open_set=np.mean([t.open_set for t in members], axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "runs", type=Path, nargs="+", help="cross-validations' multirun directories (two or more)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--open-set-tpr", type=float, help="default: the first run's own")
    parser.add_argument("--dangerous-target", type=float, help="default: the first run's own")
    parser.add_argument(
        "--mean",
        choices=("arithmetic", "geometric"),
        default="arithmetic",
        help="how the genus probabilities are averaged (the open-set scores: arithmetically)",
    )
    args = parser.parse_args()
    if len(args.runs) < 2:
        parser.error("an ensemble needs two runs or more")
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    rules = refit_rules(
        args.runs[0], {"open_set_tpr": args.open_set_tpr, "dangerous_target": args.dangerous_target}
    )
    if rules.get("open_set_tpr") is None or rules.get("dangerous_target") is None:
        parser.error("the first run records no thresholds' rules: give --open-set-tpr and --dangerous-target")
    tables = [pool(run) for run in args.runs]
    deadly = deadly_classes(tables[0].class_names, "genus")
    candidates = {f"run-{i}": table for i, table in enumerate(tables)}
    candidates["ensemble"] = averaged(tables, args.mean)
    for name, table in candidates.items():
        refitted = refit(table, deadly, rules["open_set_tpr"], rules["dangerous_target"])
        write_folds(refitted, args.out / name, rules)
        pooled_report(args.out / name)
    for i, run in enumerate(args.runs):
        log.info("the ensemble against run %d (%s):", i, run)
        compare(args.out / f"run-{i}", args.out / "ensemble")


if __name__ == "__main__":
    main()
