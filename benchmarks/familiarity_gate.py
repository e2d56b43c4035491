"""Could the rules be loose for photos like the training ones and strict for photos from unseen sources?

    python benchmarks/familiarity_gate.py logs/cv/ship-random logs/cv/ship-source \
        --data ../shared/data/mushrooms-real --open-set ../shared/data/open-set --out logs/oof/familiarity

The bars pull the deadly-risk rule two ways. Photos like the training ones (the random view) have calibrated
*Amanita* probabilities, and the rule at 1% makes the model say "not sure" to a tenth of them; photos from
unseen sources (the source view) put too little on *Amanita*, and the rule at 1% is what holds *Amanita*
answered harmless near 2% there. A model that knew which kind of photo it holds could use both rules. This
asks whether it can, with no training:

1. **Can a photo's familiarity be seen?** The same photo is a test photo of both views: from a source family
   its fold model trained on (random view), and from one it did not (source view). Familiarity is the
   cosine similarity of the fold model's pooled features (the tested centre crop and its mirror image) to
   the ``--k`` nearest known photos that fold trained on; printed is the AUROC of the random view's
   similarity against the source view's, over the photos both test (0.5: no sign of familiarity).
2. **What would a gate buy?** Each fold's photos more similar than a quantile ``q`` of its validation photos
   (validated from families it does not train on: the unseen kind) get the loose rule, the others the
   shipped one; the threshold comes from validation rows alone, like every other threshold. For each ``q``
   and loose rule, the figures the bars bind, point estimates on the pooled test rows of both views. ``q``
   1.0 is the shipped rule everywhere; ``q`` 0 the loose rule everywhere.

The features are cached per view and fold (``<out>/<view>/features_fold_<k>.npz``, as
``feature_known_score.py`` writes them: give its ``--out`` folder to reuse them).
"""

from __future__ import annotations

import argparse
import itertools
import logging
from pathlib import Path

import numpy as np
from feature_known_score import fold_features
from knn_known_score import nearest_similarity
from second_view import pooled_photos

from mushroom.core.open_set import auroc
from mushroom.cv import deadly_classes, figures, fold_runs, refit
from mushroom.predictions import Predictions

#: Column heading -> the pooled figure (mushroom.cv.figures) it shows, per view.
COLUMNS = {
    "answered": "answered",
    "Amanita answered harmless": "dangerous_rate_answered",
    "other genera answered": "other_genus/answered_with_genus",
}


def familiarity(
    folds: Path, data: Path, open_set: Path | None, cache: Path, k: int
) -> tuple[Predictions, np.ndarray]:
    """The folds' pooled table and, per row, its similarity to the known photos its fold model trained on."""
    table, unique, row = pooled_photos(folds, data, open_set)
    cache.mkdir(parents=True, exist_ok=True)
    similarity = np.full(len(table), np.nan)
    for fold, run in fold_runs(folds).items():
        checkpoint = run / "checkpoints" / "best.ckpt"
        feats = fold_features(checkpoint, unique, 256, cache / f"features_fold_{fold}.npz")[0][row]
        unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
        mine = table.fold == fold
        similarity[mine] = nearest_similarity(unit[mine], unit[table.trained_on(fold) & table.known], k)
    return table, similarity


def gated(
    table: Predictions,
    similarity: np.ndarray,
    quantile: float,
    strict: Predictions,
    loose: Predictions,
    deadly: np.ndarray,
) -> Predictions:
    """Rows more similar than ``quantile`` of their fold's validation photos answered by ``loose``'s
    thresholds and rule, the rest by ``strict``'s."""
    familiar = np.zeros(len(table), dtype=bool)
    for fold in sorted(set(table.fold.tolist())):
        mine = table.fold == fold
        if quantile <= 0:
            familiar[mine] = True
        elif quantile < 1:
            reference = similarity[mine & (table.part == "val") & table.known]
            familiar[mine] = similarity[mine] > np.quantile(reference, quantile)
    return table.answered_at(
        np.where(familiar, loose.abstain_threshold, strict.abstain_threshold),
        np.where(familiar, loose.open_set_threshold, strict.open_set_threshold),
        np.where(familiar, loose.deadly_risk, strict.deadly_risk),
        deadly,
    )


def paired_auroc(familiar: tuple[Predictions, np.ndarray], unseen: tuple[Predictions, np.ndarray]) -> float:
    """AUROC of the photos' similarity as familiar test photos against the same photos' as unseen ones."""
    (a, sim_a), (b, sim_b) = familiar, unseen
    tested_a, tested_b = (a.part == "test") & a.known, (b.part == "test") & b.known
    in_b = dict(zip(b.photo[tested_b], sim_b[tested_b], strict=True))
    pairs = [(s, in_b[p]) for p, s in zip(a.photo[tested_a], sim_a[tested_a], strict=True) if p in in_b]
    return auroc(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("random", type=Path, help="the random view's cross-validation")
    parser.add_argument("source", type=Path, help="the source view's, same recipe")
    parser.add_argument("--data", type=Path, required=True, help="root of the known genera's photos")
    parser.add_argument("--open-set", type=Path, help="root of the negatives (data.open_set.root)")
    parser.add_argument("--out", type=Path, required=True, help="where the features are cached")
    parser.add_argument("--k", type=int, default=5, help="neighbours averaged")
    parser.add_argument("--quantile", type=float, nargs="+", default=[0.0, 0.3, 0.4, 0.5, 0.6, 1.0])
    parser.add_argument("--open-set-tpr", type=float, default=0.825, help="both rules'")
    parser.add_argument("--dangerous-target", type=float, default=0.01, help="the strict rule's")
    parser.add_argument("--deadly-risk", type=float, default=0.01, help="the strict rule's")
    parser.add_argument("--loose-dangerous-target", type=float, nargs="+", default=[0.01, 1.0])
    parser.add_argument("--loose-deadly-risk", type=float, nargs="+", default=[0.02, 0.05, 0.2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")

    views = {
        name: familiarity(folds, args.data, args.open_set, args.out / name, args.k)
        for name, folds in (("random", args.random), ("source", args.source))
    }
    separation = paired_auroc(views["random"], views["source"])
    print(f"familiar against unseen, the same photos, AUROC: {separation:.3f}")
    header = ["q", "loose dangerous target", "loose deadly risk"]
    header += [f"{view}: {column}" for view in views for column in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    strict, deadly = {}, {}
    for name, (table, _) in views.items():
        deadly[name] = deadly_classes(table.class_names, "genus")
        strict[name] = refit(table, deadly[name], args.open_set_tpr, args.dangerous_target, args.deadly_risk)
    for target, risk in itertools.product(args.loose_dangerous_target, args.loose_deadly_risk):
        loose = {
            name: refit(table, deadly[name], args.open_set_tpr, target, risk)
            for name, (table, _) in views.items()
        }
        for quantile in args.quantile:
            cells = [f"{quantile:g}", f"{target:g}", f"{risk:g}"]
            for name, (table, similarity) in views.items():
                answered = gated(table, similarity, quantile, strict[name], loose[name], deadly[name])
                found = figures(answered, deadly[name])
                cells += [f"{found[column]:.3f}" for column in COLUMNS.values()]
            lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
