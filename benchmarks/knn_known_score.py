"""Would a nearest-neighbour known score tell other genera from known ones better? Judged on trained folds.

    python benchmarks/knn_known_score.py logs/cv/new-source --data ../shared/data/mushrooms-real \
        --open-set ../shared/data/open-set --hf-cache ../shared/weights/hf-cache --out logs/oof/knn-source

The open set answers "not a genus I know" when the fold model's known score (one minus the probability of its
two negative outputs) falls under a threshold fitted on validation photos. A second opinion that needs no
training: how close a photo lies, in a frozen network's feature space (``--model``; DINOv2 ViT-S/14 by
default), to the photos of known genera that fold's model trained on (cosine similarity, the mean over the
``--k`` nearest), against how close it lies to the negatives it trained on. For each fold, scored against that
fold's training photos only; each candidate written as fold tables with the open-set threshold fitted again on
the fold's validation rows at ``--open-set-tpr`` and every photo answered again:

- **fold-models**: the fold models' own known score, refitted the same way (the baseline);
- **knn**: the similarity to the nearest known photos alone;
- **knn-margin**: that similarity less the similarity to the nearest negatives;
- **mixed**: the fold model's known score (as a logit) and the margin, each standardised on the fold's
  validation photos of known genera, summed.

Printed: each score's AUROC, known photos against other genera and against non-mushrooms (tested rows); then
each candidate compared, paired, with the fold models (``python -m mushroom.cv``'s verdicts). The genus
answers are the fold models'; only who is refused changes. Features are cached in
``<out>/teacher-features.npz`` (about 8 minutes for 1,600 photos on 2 cores).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from second_view import folds_arguments, table_and_features

from mushroom.core.open_set import auroc
from mushroom.cv import compare, deadly_classes, pooled_report, refit, write_folds
from mushroom.predictions import Predictions

log = logging.getLogger("knn_known_score")


def nearest_similarity(queries: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """Mean cosine similarity of each query to its ``k`` nearest rows of ``bank``."""
    if not len(bank):
        return np.full(len(queries), np.nan)
    similarity = queries @ bank.T
    k = min(k, len(bank))
    return np.sort(similarity, axis=1)[:, -k:].mean(1)


def knn_scores(table: Predictions, feats: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: similarity to the known photos its fold's model trained on, and to the negatives it did."""
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    to_known = np.full(len(table), np.nan)
    to_negatives = np.full(len(table), np.nan)
    for fold in sorted(set(table.fold.tolist())):
        rows = table.fold == fold
        trained_on = table.trained_on(fold)
        to_known[rows] = nearest_similarity(unit[rows], unit[trained_on & table.known], k)
        to_negatives[rows] = nearest_similarity(unit[rows], unit[trained_on & ~table.known], k)
    return to_known, to_negatives


def standardised_on_validation(table: Predictions, score: np.ndarray) -> np.ndarray:
    """``score`` centred and scaled per fold by the fold's validation photos of known genera."""
    out = np.empty_like(score)
    for fold in sorted(set(table.fold.tolist())):
        rows = table.fold == fold
        reference = score[rows & (table.part == "val") & table.known]
        out[rows] = (score[rows] - reference.mean()) / max(float(reference.std()), 1e-9)
    return out


def with_known_score(table: Predictions, known_score: np.ndarray) -> Predictions:
    """The table with its open-set known score replaced (the not-mushroom share kept)."""
    open_set = table.open_set.copy()
    open_set[:, 0] = known_score
    return dataclasses.replace(table, open_set=open_set)


def main() -> None:
    parser = folds_arguments(__doc__ or "", "vit_small_patch14_dinov2.lvd142m", 224)
    parser.add_argument("--k", type=int, default=5, help="neighbours averaged")
    parser.add_argument("--open-set-tpr", type=float, default=0.85)
    args = parser.parse_args()
    table, feats = table_and_features(args)
    deadly = deadly_classes(table.class_names, "genus")
    to_known, to_negatives = knn_scores(table, feats, args.k)
    model_score = np.clip(table.open_set[:, 0], 1e-6, 1 - 1e-6)
    margin = to_known - to_negatives
    scores = {
        "fold-models": model_score,
        "knn": to_known,
        "knn-margin": margin,
        "mixed": standardised_on_validation(table, np.log(model_score / (1 - model_score)))
        + standardised_on_validation(table, margin),
    }
    tested = table.part == "test"
    for name, score in scores.items():
        known = score[tested & table.known]
        figures = {
            kind: auroc(known, score[tested & (table.kind == kind)])
            for kind in ("other_genus", "not_mushroom")
        }
        log.info("%s: AUROC known vs other genera %.3f, vs non-mushrooms %.3f", name, *figures.values())
        answered = refit(with_known_score(table, score), deadly, args.open_set_tpr)
        write_folds(answered, args.out / name)
        pooled_report(args.out / name)
    for name in ("knn", "knn-margin", "mixed"):
        compare(args.out / "fold-models", args.out / name, warn_rules=False)


if __name__ == "__main__":
    main()
