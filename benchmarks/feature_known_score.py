"""Would the fold model's own features tell other genera from known ones better than its outputs do?

    python benchmarks/feature_known_score.py logs/cv/base-source --data ../shared/data/mushrooms-real \
        --open-set ../shared/data/open-set --out logs/oof/features-source

The open set refuses a photo when the fold model's known score (the softmax mass on the genera, next to
its two negative outputs) falls under a threshold fitted on validation photos. Out of fold, a better genus
answer has so far come with a higher known score for other genera too: the outputs that tell genera apart
are the ones the known score reads. The network's pooled features (what its head reads) can be read another
way, with no training: how far a photo lies from the known photos that fold's model trained on. For each
fold, its best checkpoint embeds every photo of the pooled table (the centre crop the model is tested on and
its mirror image, averaged; photos shrunk to the cache's side first, as training reads them), and each
candidate is written as fold tables with the open-set threshold fitted again on the fold's validation rows
at ``--open-set-tpr``:

- **fold-models**: the fold models' own known score, refitted the same way (the baseline);
- **knn**: cosine similarity to the ``--k`` nearest known photos the fold trained on (Sun et al., "Out-of-
  distribution detection with deep nearest neighbors", 2022);
- **mahalanobis**: minus the smallest Mahalanobis distance to a genus (one Gaussian per genus, a shared
  covariance shrunk by Ledoit-Wolf; Lee et al., 2018), fitted on the known photos the fold trained on;
- **relative-mahalanobis**: that less the distance to one Gaussian over all of them (Ren et al., 2021: what
  every photo shares, framing and background, no longer counts as "known");
- **mixed-***: the fold model's known score (as a logit) and one of the above, each standardised on the
  fold's validation photos of known genera, summed.

Printed: each score's AUROC, known photos against other genera and against non-mushrooms (tested rows); then
each candidate compared, paired, with the fold models. The genus answers are the fold models'; only who is
refused changes. Features are cached per fold in ``<out>/features_fold_<k>.npz``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from knn_known_score import nearest_similarity, standardised_on_validation, with_known_score
from second_view import pooled_photos

from mushroom.core.open_set import NEGATIVE_KINDS, auroc
from mushroom.cv import compare, deadly_classes, fold_runs, pooled_report, refit, write_folds
from mushroom.models.scoring import open_set_scores
from mushroom.predictions import Predictions

log = logging.getLogger("feature_known_score")


def fold_features(
    checkpoint: Path, paths: list[Path], cache_side: int | None, cache: Path
) -> tuple[np.ndarray, np.ndarray]:
    """One fold model's pooled features and all its outputs for each photo, mirror-averaged."""
    if cache.exists():
        stored = np.load(cache)
        if [str(p) for p in paths] == stored["paths"].tolist():
            return stored["features"], stored["logits"]
    from mushroom.checkpoints import load_classifier
    from mushroom.core.images import load_rgb
    from mushroom.core.preprocessing import Preprocessing, eval_preprocess, resize_shorter_side

    model = load_classifier(checkpoint)
    pre = Preprocessing.from_dict(model.hparams["preprocessing"])
    net = model.net
    pooled_out, logits_out = [], []
    with torch.inference_mode():
        for start in range(0, len(paths), 32):
            images = []
            for path in paths[start : start + 32]:
                rgb = load_rgb(path)
                if cache_side and min(rgb.shape[:2]) > cache_side:
                    rgb = resize_shorter_side(rgb, cache_side)
                images.append(eval_preprocess(rgb, pre))
            batch = torch.from_numpy(np.stack(images))
            mirrored = torch.cat([batch, batch.flip(3)])  # both views in one pass, view-major
            pooled = net.forward_head(net.forward_features(mirrored), pre_logits=True)
            logits = net.get_classifier()(pooled)
            pooled_out.append(pooled.unflatten(0, (2, -1)).mean(0).numpy())
            logits_out.append(logits.unflatten(0, (2, -1)).mean(0).numpy())
            log.info("%s: %d of %d photos", checkpoint.parent.parent.name, start + len(images), len(paths))
    feats, logits = np.concatenate(pooled_out), np.concatenate(logits_out)
    np.savez(cache, features=feats, logits=logits, paths=np.array([str(p) for p in paths]))
    return feats, logits


def gaussian_distances(queries: np.ndarray, bank: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per query: the smallest Mahalanobis distance to a class mean, and the distance to the bank's mean;
    one covariance shared by the classes (Ledoit-Wolf), another for the bank as a whole."""
    from sklearn.covariance import LedoitWolf

    centred = np.concatenate([bank[labels == c] - bank[labels == c].mean(0) for c in np.unique(labels)])
    precision = LedoitWolf().fit(centred).precision_
    per_class = []
    for c in np.unique(labels):
        diff = queries - bank[labels == c].mean(0)
        per_class.append(np.einsum("nd,de,ne->n", diff, precision, diff))
    background = LedoitWolf().fit(bank)
    diff = queries - background.location_
    return np.min(per_class, axis=0), np.einsum("nd,de,ne->n", diff, background.precision_, diff)


def feature_scores(table: Predictions, feats: np.ndarray, k: int, fold: int) -> dict[str, np.ndarray]:
    """The candidate known scores of fold ``fold``'s rows, against the known photos that fold trained on."""
    rows = table.fold == fold
    bank = table.trained_on(fold) & table.known
    nearest, background = gaussian_distances(feats[rows], feats[bank], table.label[bank])
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    return {
        "knn": nearest_similarity(unit[rows], unit[bank], k),
        "mahalanobis": -nearest,
        "relative-mahalanobis": background - nearest,
    }


def fold_model_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments of a benchmark that reads the fold models' own features and refits the shipped rules."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folds", type=Path, help="a cross-validation's folder (fold_<k>/ with checkpoints/)")
    parser.add_argument("--data", type=Path, required=True, help="root of the known genera's photos")
    parser.add_argument("--open-set", type=Path, help="root of the negatives (data.open_set.root)")
    parser.add_argument("--cache-side", type=int, default=256, help="data.prepare.cache_size (0: none)")
    parser.add_argument("--open-set-tpr", type=float, default=0.825)
    parser.add_argument("--dangerous-target", type=float, default=0.01)
    parser.add_argument("--deadly-risk", type=float, default=0.01)
    parser.add_argument("--out", type=Path, required=True)
    return parser


def each_fold_embedding(
    args: argparse.Namespace, unique: list[Path], row: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Each fold, with every row's pooled features and outputs by that fold's best checkpoint (cached in
    ``args.out``); ``unique`` and ``row`` as :func:`second_view.pooled_photos` gives them."""
    for fold, run in fold_runs(args.folds).items():
        feats, logits = fold_features(
            run / "checkpoints" / "best.ckpt",
            unique,
            args.cache_side or None,
            args.out / f"features_fold_{fold}.npz",
        )
        yield fold, feats[row], logits[row]


def main() -> None:
    parser = fold_model_arguments(__doc__ or "")
    parser.add_argument("--k", type=int, default=5, help="neighbours averaged")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")

    table, unique, row = pooled_photos(args.folds, args.data, args.open_set)
    args.out.mkdir(parents=True, exist_ok=True)
    scores: dict[str, np.ndarray] = {}
    for fold, feats, logits in each_fold_embedding(args, unique, row):
        # A fold's rows are scored against its own training photos, all in its own embedding.
        fold_scores = feature_scores(table, feats, args.k, fold)
        mine = table.fold == fold
        known = open_set_scores(torch.from_numpy(logits[mine]), len(table.class_names))[:, 0]
        fold_scores["recomputed"] = known.numpy()
        for name, score in fold_scores.items():
            scores.setdefault(name, np.full(len(table), np.nan))[mine] = score
    model_score = np.clip(table.open_set[:, 0], 1e-6, 1 - 1e-6)
    log.info(
        "recomputed known score against the tables': correlation %.4f",
        np.corrcoef(scores.pop("recomputed"), model_score)[0, 1],
    )
    model_logit = standardised_on_validation(table, np.log(model_score / (1 - model_score)))
    candidates = {"fold-models": model_score, **scores}
    for name in list(scores):
        candidates[f"mixed-{name}"] = model_logit + standardised_on_validation(table, scores[name])
    deadly = deadly_classes(table.class_names, "genus")
    tested = table.part == "test"
    for name, score in candidates.items():
        known = score[tested & table.known]
        figures = {kind: auroc(known, score[tested & (table.kind == kind)]) for kind in NEGATIVE_KINDS}
        log.info("%s: AUROC, known photos against each kind of negative: %s", name, figures)
        answered = refit(
            with_known_score(table, score), deadly, args.open_set_tpr, args.dangerous_target, args.deadly_risk
        )
        write_folds(answered, args.out / name)
        pooled_report(args.out / name)
    for name in candidates:
        if name != "fold-models":
            compare(args.out / "fold-models", args.out / name, warn_rules=False)


if __name__ == "__main__":
    main()
