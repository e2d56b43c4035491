"""Out-of-fold evaluation: k fold models, every photo predicted once by the model that never trained on
it, one pooled report with 95% bootstrap confidence intervals; and the paired comparison of two recipes.

    python -m mushroom.train -m data.num_folds=5 data.fold=0,1,2,3,4 hydra.sweep.dir=logs/cv/lite0
    python -m mushroom.cv logs/cv/lite0                      # or both at once: invoke cv --folds 5
    python -m mushroom.cv logs/cv/lite0 --compare logs/cv/lite1   # is lite1 better, on the same photos?

Reads ``<dir>/*/test_predictions.csv`` (one per fold, as every training run writes it) and writes
``<dir>/oof_predictions.csv`` (every photo once), ``<dir>/oof_metrics.json`` (the figures of
``mushroom.evaluate`` on the pooled predictions, each with its interval, the pictures beside it) and
``<dir>/cv_summary.json`` (mean and spread of each fold's own test figures). ``--compare`` writes
``<dir>/comparison.json``: per figure the paired difference, its interval and a verdict. ``--slice FILE``
judges only the photos FILE lists (``benchmarks/slices/``: e.g. *Agaricus* photographed in the wild), into
``<dir>/slice_<name>.json`` or ``<dir>/comparison_<name>.json``.

Photos are resampled in whole duplicate groups (``--unit group``, the default), source families
(``--unit source``) or one by one (``--unit photo``), within each genus and each kind of negative.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mushroom.core import bootstrap
from mushroom.core.open_set import NOT_A_MUSHROOM, auroc
from mushroom.errors import MushroomError
from mushroom.predictions import KNOWN, Predictions

log = logging.getLogger(__name__)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "ece")
UNITS = ("group", "source", "photo")
#: The ``calibration`` settings each fold's thresholds are fitted by: two recipes judged at different ones
#: differ by their thresholds as much as by their models.
THRESHOLD_RULES = ("open_set_tpr", "dangerous_target", "deadly_risk")
#: Where a refit records the rules it fitted by (training records them in each fold's ``config.yaml``).
RULES_FILE = "threshold_rules.json"
#: Figures that improve as they fall; every other figure improves as it rises.
LOWER_IS_BETTER = ("ece", "dangerous_rate", "dangerous_rate_answered", "said_not_a_mushroom", "said_open_set")


def lower_is_better(name: str) -> bool:
    return name in LOWER_IS_BETTER or name.endswith("/answered_with_genus")


def fold_files(folder: Path, name: str) -> list[Path]:
    """``<folder>/<fold>/<name>`` of every fold, as a Hydra multirun writes them; refused if there is none."""
    paths = sorted(folder.glob(f"*/{name}"))
    if not paths:
        raise MushroomError(
            f"No <fold>/{name} under {folder}. Train the folds first: invoke cv --folds 5 --out {folder} "
            f"(or python -m mushroom.train -m data.fold=0,1,2,3,4 hydra.sweep.dir={folder})."
        )
    return paths


def fold_runs(folder: Path) -> dict[int, Path]:
    """Each fold's training directory under ``folder``, keyed by the fold it held out (its ``config.yaml``'s
    ``data.fold``, not its directory's name, which Hydra's ``hydra.sweep.subdir`` may set to anything)."""
    from omegaconf import OmegaConf

    runs: dict[int, Path] = {}
    for config in fold_files(folder, "config.yaml"):
        fold = OmegaConf.select(OmegaConf.load(config), "data.fold")
        if not isinstance(fold, int):
            raise MushroomError(
                f"{config} names no held-out fold (data.fold): it is not a cross-validation fold's run. "
                "Point at the directory invoke cv wrote."
            )
        if fold in runs:
            raise MushroomError(
                f"{runs[fold]} and {config.parent} both held out fold {fold}: two cross-validations are "
                "mixed in one directory. Give each its own --out."
            )
        runs[fold] = config.parent
    return dict(sorted(runs.items()))


# -- pooling ----------------------------------------------------------------------------------------------
def pool(folder: str | Path) -> Predictions:
    """The fold tables under ``folder`` as one table (test and validation rows); refused unless every
    photo is tested exactly once."""
    folder = Path(folder)
    paths = fold_files(folder, "test_predictions.csv")
    table = Predictions.concat([Predictions.read(path) for path in paths])
    tested = table.tested
    seen = Counter(f"{kind}:{photo}" for kind, photo in zip(tested.kind, tested.photo, strict=True))
    twice = [key for key, count in seen.items() if count > 1]
    if twice:
        raise MushroomError(
            f"{len(twice)} photos are predicted by more than one fold under {folder} (e.g. {twice[0]}): the "
            "folds overlap. Pool only the folds of one cross-validation (same data.num_folds, data.seed)."
        )
    folds = sorted(set(table.fold.tolist()))
    if len(folds) != len(paths):
        raise MushroomError(f"The {len(paths)} tables under {folder} hold folds {folds}: one fold per table.")
    return table


# -- the figures ------------------------------------------------------------------------------------------
def figures(table: Predictions, deadly: np.ndarray | None) -> dict[str, float | None]:
    """Every figure of the pooled report, from the table's test rows (each photo answered by its own fold
    model, at that model's thresholds)."""
    table = table.tested
    from mushroom.calibration import expected_calibration_error
    from mushroom.core.safety import dangerous_confusions
    from mushroom.report import metrics_from_confusion

    names = table.class_names
    known = table.subset(table.known)
    probs, labels = known.probs, known.label
    predicted = probs.argmax(axis=1) if len(probs) else np.empty(0, np.int64)
    confusion = np.zeros((len(names),) * 2, dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    metrics = metrics_from_confusion(confusion, names)
    out: dict[str, float | None] = {name: metrics[name] for name in HEADLINE if name in metrics}
    out["ece"] = expected_calibration_error(probs, labels) if len(labels) else None
    for name, row in metrics["per_class"].items():
        out[f"recall/{name}"] = row["recall"]
        out[f"precision/{name}"] = row["precision"]
    answered = known.answered_with_genus
    out["answered"] = float(answered.mean()) if len(answered) else None
    out["accuracy_answered"] = float((predicted == labels)[answered].mean()) if answered.any() else None
    out["said_not_a_mushroom"] = float((known.answer == NOT_A_MUSHROOM).mean()) if len(answered) else None
    rejected = ~np.isnan(known.open_set_threshold) & (known.open_set[:, 0] < known.open_set_threshold)
    out["said_open_set"] = float(rejected.mean()) if len(answered) else None
    if deadly is not None:
        out["dangerous_rate"] = dangerous_confusions(probs, labels, deadly)["dangerous_confusion_rate"]
        at_risk = deadly[labels]
        dangerous = at_risk & answered & ~deadly[predicted]
        out["dangerous_rate_answered"] = float(dangerous.sum() / at_risk.sum()) if at_risk.any() else None
    for kind in sorted(set(table.kind.tolist()) - {KNOWN}):
        negatives = table.subset(table.kind == kind)
        out[f"{kind}/answered_with_genus"] = float(negatives.answered_with_genus.mean())
        out[f"{kind}/auroc"] = auroc(known.open_set[:, 0], negatives.open_set[:, 0])
    return out


def _strata_and_units(table: Predictions, unit: str) -> tuple[list[str], list[str]]:
    if unit not in UNITS:
        raise MushroomError(f"--unit {unit}: resample by one of {', '.join(UNITS)}.")
    strata = [f"{kind}/{label}" for kind, label in zip(table.kind, table.label, strict=True)]
    column = {"group": table.group, "source": table.source, "photo": table.photo}[unit]
    return strata, [f"{s}/{u}" for s, u in zip(strata, column, strict=True)]


def intervals(
    table: Predictions,
    deadly: np.ndarray | None,
    unit: str = "group",
    n: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Every figure of :func:`figures` with its 95% percentile bootstrap interval."""
    table = table.tested
    samples = bootstrap.resamples(*_strata_and_units(table, unit), n, seed)
    return bootstrap.confidence_intervals(
        lambda rows: figures(table.subset(rows), deadly), len(table), samples
    )


def paired_comparison(
    before: Predictions,
    after: Predictions,
    deadly: np.ndarray | None,
    unit: str = "group",
    n: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Each figure of ``after`` against ``before`` on the same photos: the difference, its paired
    interval and a verdict."""
    before = before.tested
    after = aligned(before, after.tested)
    samples = bootstrap.resamples(*_strata_and_units(before, unit), n, seed)
    return bootstrap.paired_differences(
        lambda rows: figures(before.subset(rows), deadly),
        lambda rows: figures(after.subset(rows), deadly),
        len(before),
        samples,
        lower_is_better,
    )


def aligned(reference: Predictions, other: Predictions, *, same_folds: bool = False) -> Predictions:
    """``other``'s rows in ``reference``'s order; refused unless both hold the same photos and classes.

    Rows are matched by kind and photo, which suits tested rows (each photo once). ``same_folds`` matches
    by fold and part too, for whole tables (a photo one fold tests is another fold's validation photo),
    and refuses runs whose folds differ instead of warning."""
    if other.class_names != reference.class_names:
        raise MushroomError(
            f"The recipes were trained on different classes ({reference.class_names} and "
            f"{other.class_names}): a paired comparison needs the same photos and classes."
        )

    def keys_of(table: Predictions) -> list[tuple[Any, ...]]:
        where = (table.fold, table.part) if same_folds else ()
        return list(zip(*where, table.kind, table.photo, strict=True))

    position = {key: i for i, key in enumerate(keys_of(other))}
    keys = keys_of(reference)
    missing = [key for key in keys if key not in position]
    if missing or len(position) != len(keys):
        raise MushroomError(
            f"The two runs did not predict the same photos{' in the same folds' if same_folds else ''} "
            f"({len(keys)} and {len(position)} rows"
            f"{f'; e.g. {missing[0]} is in the first only' if missing else ''}). Compare runs of the "
            "same data, with the same data.num_folds and data.seed (and the same negatives)."
        )
    order = np.asarray([position[key] for key in keys])
    moved = int((other.fold[order] != reference.fold).sum())
    if moved:
        log.warning("%d photos lie in another fold in the second run: the folds differ.", moved)
    return other.subset(order)


# -- decision rules fitted again, without training -----------------------------------------------------
def refit(
    table: Predictions,
    deadly: np.ndarray | None,
    open_set_tpr: float | None = None,
    dangerous_target: float | None = None,
    deadly_risk: float | None = None,
) -> Predictions:
    """Each fold's thresholds fitted again on that fold's validation rows, as training fits them
    (:class:`mushroom.calibration.CalibrateBestCheckpoint`), and every row answered again: a decision
    rule judged on the same predictions, with no model trained again. ``None`` keeps a threshold;
    ``deadly_risk`` sets the deadly-risk rule (:func:`mushroom.core.safety.confident`), which the "not sure"
    threshold is then fitted with when ``dangerous_target`` is given."""
    from mushroom.calibration import fit_thresholds

    abstain, open_threshold = table.abstain_threshold.copy(), table.open_set_threshold.copy()
    risk = table.deadly_risk.copy() if deadly_risk is None else np.full(len(table), deadly_risk)
    if deadly is None and not np.isnan(risk).all():
        raise MushroomError("The deadly-risk rule needs a safety table that covers the classes (--safety).")
    for fold in sorted(set(table.fold.tolist())):
        rows = table.fold == fold
        val = table.subset(rows & (table.part == "val") & table.known)
        if not len(val):
            raise MushroomError(
                f"Fold {fold} has no validation rows in its test_predictions.csv: it was written before "
                "they were recorded, or trained with data.val_fraction=0. Train the folds again to refit."
            )
        fold_risk = float(risk[rows][0])
        fitted = fit_thresholds(
            val.probs,
            val.open_set,
            val.label,
            deadly,
            dangerous_target,
            open_set_tpr,
            None if math.isnan(fold_risk) else fold_risk,
        )
        open_threshold[rows] = fitted.get("open_set_threshold", open_threshold[rows])
        abstain[rows] = fitted.get("abstain_threshold", abstain[rows])
    return table.answered_at(abstain, open_threshold, risk, deadly)


def write_folds(
    table: Predictions, folder: str | Path, rules: Mapping[str, float | None] | None = None
) -> Path:
    """``table`` as one ``fold_<k>/test_predictions.csv`` per fold, as a cross-validation writes it, with
    the threshold ``rules`` it was answered by (``threshold_rules.json``) when they are given."""
    folder = Path(folder)
    for fold in sorted(set(table.fold.tolist())):
        table.subset(table.fold == fold).write(folder / f"fold_{fold}" / "test_predictions.csv")
    if rules is not None:
        (folder / RULES_FILE).write_text(json.dumps(dict(rules), indent=1) + "\n")
    return folder


def threshold_rules(folder: str | Path) -> dict[str, float | None] | None:
    """The rules the folds under ``folder`` fitted their thresholds by: a refit's ``threshold_rules.json``,
    else the ``calibration`` of each fold's training ``config.yaml``; ``None`` where they are not recorded
    or the folds disagree."""
    from omegaconf import OmegaConf

    folder = Path(folder)
    if (folder / RULES_FILE).is_file():
        return dict(json.loads((folder / RULES_FILE).read_text()))
    found = []
    for config in sorted(folder.glob("*/config.yaml")):
        calibration = OmegaConf.select(OmegaConf.load(config), "calibration") or {}
        found.append({rule: calibration.get(rule) for rule in THRESHOLD_RULES})
    if not found or any(rules != found[0] for rules in found[1:]):
        return None
    return found[0]


def refit_rules(folder: str | Path, given: Mapping[str, float | None]) -> dict[str, float | None]:
    """The rules a refit of the folds under ``folder`` answers by: those ``given`` (``None``: unchanged),
    the folds' own for the rest (as far as they are recorded)."""
    return (threshold_rules(folder) or {}) | {
        rule: value for rule, value in given.items() if value is not None
    }


def _warn_if_rules_differ(
    before_dir: Path, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> None:
    """Say so when two cross-validations were answered by different threshold rules, and how to judge
    their models at one rule instead."""
    if before is None or after is None:
        return
    differ = [
        rule for rule in THRESHOLD_RULES if rule in before and rule in after and before[rule] != after[rule]
    ]
    if not differ:
        return
    changes = ", ".join(f"{rule} {before[rule]} -> {after[rule]}" for rule in differ)
    flags = " ".join(
        f"--{rule.replace('_', '-')} {after[rule]}" for rule in differ if after[rule] is not None
    )
    log.warning(
        "The two cross-validations fitted their thresholds by different rules (%s): the figures at the "
        "thresholds (answered, answered_with_genus, dangerous_rate_answered, said_*) mix the models with the "
        "rules. To judge the models at one rule, refit the first (python -m mushroom.cv %s %s --out "
        "%s-refit) and compare that folder.",
        changes,
        before_dir,
        flags,
        before_dir,
    )


# -- slices -----------------------------------------------------------------------------------------------
def read_slice(path: str | Path) -> list[str]:
    """The photos a slice file lists: one per line, as the ``photo`` column of ``oof_predictions.csv``
    writes them (``Agaricus/x.jpg``); blank lines and ``#`` comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise MushroomError(f"--slice {path}: no such file. List one photo per line, e.g. Agaricus/x.jpg.")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    photos = [line for line in lines if line]
    if not photos:
        raise MushroomError(f"--slice {path} lists no photo: one per line, e.g. Agaricus/x.jpg.")
    return photos


def sliced(table: Predictions, photos: Sequence[str]) -> Predictions:
    """The tested rows of the listed photos: the figures of one kind of photo (Agaricus in the wild, say),
    with intervals and paired comparisons like the whole. Refused if a listed photo was not tested, which
    is a typo or a slice of other data."""
    tested = table.tested
    missing = sorted(set(photos) - set(tested.photo.tolist()))
    if missing:
        raise MushroomError(
            f"{len(missing)} photo(s) of the slice were not tested in this cross-validation (e.g. "
            f"{missing[0]!r}): list photos as the photo column of oof_predictions.csv writes them."
        )
    return tested.subset(np.isin(tested.photo, list(photos)))


def _slice_figures(ci: dict[str, Any], table: Predictions) -> dict[str, Any]:
    """A slice's figures less those its photos cannot give: recall of genera it holds no photo of (0 by
    construction), precision and macro F1 (they need the photos of every genus a photo may be called)."""
    present = {table.class_names[i] for i in set(table.label[table.known].tolist())}
    return {
        name: row
        for name, row in ci.items()
        if name != "macro_f1"
        and not name.startswith("precision/")
        and not (name.startswith("recall/") and name.split("/", 1)[1] not in present)
    }


def slice_report(
    folder: str | Path,
    slice_file: str | Path,
    safety: str | None = "genus",
    unit: str = "group",
    n: int = 1000,
) -> dict[str, Any]:
    """The pooled figures of the photos ``slice_file`` lists, with their intervals; written to
    ``<folder>/slice_<name>.json``."""
    folder, slice_file = Path(folder), Path(slice_file)
    table = sliced(pool(folder), read_slice(slice_file))
    ci = _slice_figures(intervals(table, deadly_classes(table.class_names, safety), unit, n), table)
    out = folder / f"slice_{slice_file.stem}.json"
    payload = {"slice": str(slice_file), "photos": len(table), "unit": unit, "resamples": n, "figures": ci}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    log.info("%d photos of the slice %s", len(table), slice_file)
    log_figures(ci)
    log.info("Wrote %s", out)
    return payload


# -- the reports --------------------------------------------------------------------------------------------
def deadly_classes(class_names: Sequence[str], safety: str | None) -> np.ndarray | None:
    from mushroom.core.safety import deadly_mask, load_table

    return deadly_mask(class_names, load_table(safety)) if safety else None


def pooled_report(
    folder: str | Path, safety: str | None = "genus", unit: str = "group", n: int = 1000
) -> dict[str, Any]:
    """Pool the folds under ``folder``; write the out-of-fold table and the report with its intervals."""
    from mushroom.core.safety import load_table
    from mushroom.report import write_evaluation_report

    folder = Path(folder)
    table = pool(folder)
    table.write(folder / "oof_predictions.csv")
    tested = table.tested
    known = tested.subset(tested.known)
    deadly = deadly_classes(table.class_names, safety)
    ci = intervals(tested, deadly, unit, n)
    report = write_evaluation_report(
        known.probs,
        known.label,
        table.class_names,
        folder / "oof_metrics.json",
        safety_table=load_table(safety) if safety else None,
        extra={
            "folds": sorted(set(table.fold.tolist())),
            "bootstrap": {"unit": unit, "resamples": n, "confidence": 0.95},
            "photos": {kind: int((tested.kind == kind).sum()) for kind in sorted(set(tested.kind.tolist()))},
            "figures": ci,
        },
    )
    log_figures(ci)
    if list(folder.glob("*/test_metrics.json")):
        summarize(folder)
    return report


def log_figures(ci: Mapping[str, Mapping[str, Any]]) -> None:
    for name, row in ci.items():
        if row["estimate"] is not None:
            log.info("%-34s %.3f  [%s, %s]", name, row["estimate"], _fmt(row["low"]), _fmt(row["high"]))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def compare(
    before_dir: str | Path,
    after_dir: str | Path,
    safety: str | None = "genus",
    unit: str = "group",
    n: int = 1000,
    slice_file: str | Path | None = None,
    warn_rules: bool = True,
) -> dict[str, Any]:
    """The paired comparison of the cross-validations in two folders, on every photo or on the photos
    ``slice_file`` lists; written to ``after_dir`` (``comparison.json``, ``comparison_<slice>.json``).
    ``warn_rules``: warn when the two fitted their thresholds by different rules (not when comparing a
    refit with its original, where the rules are what is judged)."""
    before, after = pool(before_dir), pool(after_dir)
    out, scope = Path(after_dir) / "comparison.json", dict[str, Any]()
    if slice_file is not None:
        photos = read_slice(slice_file)
        before, after = sliced(before, photos), sliced(after, photos)
        out = out.with_name(f"comparison_{Path(slice_file).stem}.json")
        scope = {"slice": str(slice_file), "photos": len(before)}
    rules = {"before": threshold_rules(before_dir), "after": threshold_rules(after_dir)}
    if warn_rules:
        _warn_if_rules_differ(Path(before_dir), rules["before"], rules["after"])
    result = paired_comparison(before, after, deadly_classes(before.class_names, safety), unit, n)
    if scope:
        result = _slice_figures(result, before)
    payload = {
        "before": str(before_dir),
        "after": str(after_dir),
        "unit": unit,
        "threshold_rules": rules,
        "figures": result,
        **scope,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    for name, row in result.items():
        if row["difference"] is not None:
            log.info(
                "%-34s %.3f -> %.3f  %+.3f [%s, %s]  %s",
                name,
                row["before"],
                row["after"],
                row["difference"],
                _fmt(row["low"]),
                _fmt(row["high"]),
                row["verdict"],
            )
    log.info("Wrote %s", out)
    return payload


# -- the folds' own figures ---------------------------------------------------------------------------------
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
    """Mean and standard deviation over the folds of each fold's own test figures (``cv_summary.json``):
    how much one split's figure moves, not how sure the pooled figure is."""
    folder = Path(folder)
    reports = fold_files(folder, "test_metrics.json")
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
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mushroom.cv",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, help="the multirun directory holding one sub-folder per fold")
    parser.add_argument("--compare", type=Path, metavar="OTHER", help="a second recipe's multirun directory")
    parser.add_argument("--unit", choices=UNITS, default="group", help="what the bootstrap draws whole")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--safety", default="genus", help="safety table (configs/safety/NAME.yaml), or none")
    parser.add_argument(
        "--slice",
        type=Path,
        metavar="FILE",
        help="report (or compare) only the photos FILE lists, one per line as oof_predictions.csv names them",
    )
    refits = parser.add_argument_group(
        "refit", "fit the folds' thresholds again on their validation rows and answer again (needs --out)"
    )
    refits.add_argument("--open-set-tpr", type=float, help="share of known validation photos let through")
    refits.add_argument(
        "--dangerous-target", type=float, help="dangerous rate the 'not sure' threshold keeps"
    )
    refits.add_argument(
        "--deadly-risk",
        type=float,
        help="name a genus without deadly species only below this mass on deadly genera (with "
        "--dangerous-target, the 'not sure' threshold is fitted with this rule in place)",
    )
    refits.add_argument("--out", type=Path, help="where the refitted folds and their report go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    safety = None if args.safety == "none" else args.safety
    try:
        if any(v is not None for v in (args.open_set_tpr, args.dangerous_target, args.deadly_risk)):
            if args.out is None:
                raise MushroomError("A refit writes new folds: say where with --out DIR.")
            if args.slice is not None:
                raise MushroomError(
                    "--slice judges folds already written: refit first, then compare with --out's folds "
                    "and --slice."
                )
            table = pool(args.folder)
            deadly = deadly_classes(table.class_names, safety)
            refitted = refit(table, deadly, args.open_set_tpr, args.dangerous_target, args.deadly_risk)
            given = {rule: getattr(args, rule) for rule in THRESHOLD_RULES}
            write_folds(refitted, args.out, refit_rules(args.folder, given))
            pooled_report(args.out, safety, args.unit, args.resamples)
            compare(args.folder, args.out, safety, args.unit, args.resamples, warn_rules=False)
        elif args.compare:
            compare(args.folder, args.compare, safety, args.unit, args.resamples, args.slice)
        elif args.slice is not None:
            slice_report(args.folder, args.slice, safety, args.unit, args.resamples)
        else:
            pooled_report(args.folder, safety, args.unit, args.resamples)
    except MushroomError as error:
        raise SystemExit(str(error)) from error


if __name__ == "__main__":
    main()
