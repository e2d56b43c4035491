"""Would the fold model's nearest training photos make its genus answer better?

    python benchmarks/knn_blend.py logs/cv/ship-random --data ../shared/data/mushrooms-real \
        --open-set ../shared/data/open-set --out logs/oof/knn-blend-random

Photos like the training ones (the random view, and most photos a user of a known source sends) often have a
near-twin among the training photos: the same photographer, the same stand of mushrooms, the same light. A
head reads such a photo as it reads any other; a nearest-neighbour vote in the model's own feature space
(weighted by ``exp(similarity / T)`` over the ``--k`` most similar known photos the fold trained on, as
Wu et al. 2018 and DINO evaluate features) reads the twin's label. The two are mixed, ``(1 - w) p_model +
w p_knn``, for each ``--weight``: for every photo, and for near-twins only (``-twins``: a photo whose nearest
training photo is more similar than ``--gate-quantile`` of the fold's validation photos' nearest are, the
validation photos being of source families the fold never trained on). The open-set score stays the
model's. Each fold's "not sure" threshold is fitted again on its validation rows with the shipped rules,
every row answered again, and each mixture compared, paired, with the fold models refitted the same way
(which give the fold tables back).

The whole-sources-held-out view says what the vote costs where no twin exists: a photo from an unseen source
has only strangers for neighbours, and their vote can call an *Amanita* a harmless genus. Features are the
fold's best checkpoint's pooled features (centre crop and mirror image, as ``feature_known_score.py``
computes them), cached per fold in ``<out>/features_fold_<k>.npz``.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from feature_known_score import each_fold_embedding, fold_model_arguments
from second_view import pooled_photos

from mushroom.cv import compare, deadly_classes, pooled_report, refit, write_folds
from mushroom.predictions import Predictions

log = logging.getLogger("knn_blend")


def knn_vote(
    queries: np.ndarray, bank: np.ndarray, bank_labels: np.ndarray, classes: int, k: int, temperature: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the class shares of its ``k`` most similar bank rows (cosine), each weighted by
    ``exp(similarity / temperature)`` (rows sum to 1), and its similarity to the most similar one."""
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    unit_b = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    similarity = unit_q @ unit_b.T
    k = min(k, len(bank))
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    top = np.take_along_axis(similarity, nearest, axis=1)
    weights = np.exp((top - top[:, :1]) / temperature)  # shifted by the best: no overflow, same shares
    votes = np.zeros((len(queries), classes))
    np.add.at(votes, (np.repeat(np.arange(len(queries)), k), bank_labels[nearest].ravel()), weights.ravel())
    return votes / votes.sum(axis=1, keepdims=True), top[:, 0]


def fold_votes(
    table: Predictions, feats: np.ndarray, k: int, temperature: float, gate_quantile: float
) -> tuple[np.ndarray, np.ndarray]:
    """Every row's vote among the known photos its own fold's model trained on (negatives' rows too), and
    whether it has a near-twin there: a nearest photo more similar than ``gate_quantile`` of the fold's
    validation photos' nearest (photos of source families the model never trained on)."""
    votes = np.full(table.probs.shape, np.nan)
    twin = np.zeros(len(table), dtype=bool)
    for fold in sorted(set(table.fold.tolist())):
        rows = table.fold == fold
        bank = table.trained_on(fold) & table.known
        votes[rows], nearest = knn_vote(
            feats[rows], feats[bank], table.label[bank], len(table.class_names), k, temperature
        )
        val = (table.part[rows] == "val") & table.known[rows]
        twin[rows] = nearest > np.quantile(nearest[val], gate_quantile)
    return votes, twin


def main() -> None:
    parser = fold_model_arguments(__doc__ or "")
    parser.add_argument("--k", type=int, default=10, help="neighbours voting")
    parser.add_argument("--temperature", type=float, default=0.05, help="of the vote's weights")
    parser.add_argument("--weight", type=float, nargs="+", default=[0.25, 0.5], help="the vote's share")
    parser.add_argument(
        "--gate-quantile", type=float, default=0.9, help="near-twin: past this share of validation photos"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")

    table, unique, row = pooled_photos(args.folds, args.data, args.open_set)
    args.out.mkdir(parents=True, exist_ok=True)
    feats = np.full((len(table), 0), np.nan)
    for fold, fold_feats, _ in each_fold_embedding(args, unique, row):
        if not feats.shape[1]:
            feats = np.full((len(table), fold_feats.shape[1]), np.nan)
        mine = table.fold == fold
        feats[mine] = fold_feats[mine]  # a fold's rows in its own model's embedding
    votes, twin = fold_votes(table, feats, args.k, args.temperature, args.gate_quantile)
    tested_known = (table.part == "test") & table.known
    vote_right = votes[tested_known].argmax(1) == table.label[tested_known]
    log.info("the vote alone is right on %.3f of the tested known photos", vote_right.mean())
    for part in ("test", "val"):
        rows = (table.part == part) & table.known
        log.info("%s known photos with a near-twin: %.3f", part, twin[rows].mean())
    twins = tested_known & twin
    log.info(
        "on the %d tested known photos with a near-twin: the vote right on %.3f, the model on %.3f",
        twins.sum(),
        (votes[twins].argmax(1) == table.label[twins]).mean(),
        (table.probs[twins].argmax(1) == table.label[twins]).mean(),
    )

    deadly = deadly_classes(table.class_names, "genus")
    rules = (args.open_set_tpr, args.dangerous_target, args.deadly_risk)
    write_folds(refit(table, deadly, *rules), args.out / "fold-models")
    pooled_report(args.out / "fold-models")
    for weight in args.weight:
        for gated in (False, True):
            share = weight * (twin if gated else np.ones(len(table)))[:, None]
            mixed = dataclasses.replace(table, probs=(1 - share) * table.probs + share * votes)
            name = f"vote-{weight:g}" + ("-twins" if gated else "")
            write_folds(refit(mixed, deadly, *rules), args.out / name)
            pooled_report(args.out / name)
            compare(args.out / "fold-models", args.out / name, warn_rules=False)


if __name__ == "__main__":
    main()
