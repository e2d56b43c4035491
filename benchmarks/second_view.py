"""Would a frozen second network help? Judged on folds already trained, without training them again.

    python benchmarks/second_view.py logs/oof/base/source --data ../shared/data/mushrooms-real \
        --open-set ../shared/data/open-set --hf-cache ../shared/weights/hf-cache --out logs/oof/dinov2-source

For each fold of a cross-validation (``invoke cv`` or ``benchmarks/out_of_fold.py``), a logistic-regression
probe on the frozen features of ``--model`` (class token and mean patch token, mirror-averaged; the known
genera, other genera and not-mushroom photos as six outputs, as the network is trained) learns from the photos
that fold's model trained on, and predicts its validation and test photos. Written, as fold tables: the probe
alone and its geometric mean with the fold model (``--weight`` on the probe), each with its thresholds fitted
again on the fold's validation rows as training fits them; then each is compared, paired, with the fold
models' own answers (``python -m mushroom.cv``'s verdicts). Features (``mushroom.data.teacher``'s, as a
``data.teacher`` computes them) are cached in ``<out>/teacher-features.npz``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from mushroom.core.open_set import NEGATIVE_KINDS
from mushroom.cv import compare, deadly_classes, pool, pooled_report, refit, write_folds
from mushroom.data.teacher import fit_probe, frozen_features
from mushroom.predictions import Predictions

log = logging.getLogger("second_view")
NOT_MUSHROOM = NEGATIVE_KINDS.index("not_mushroom")


def six_outputs(table: Predictions) -> np.ndarray:
    """The fold model's probabilities over genera, other genus and not a mushroom, from its table's scores."""
    known, share = table.open_set[:, 0], table.open_set[:, 1]
    doubt = 1.0 - known
    negatives = {"other_genus": doubt * (1 - share), "not_mushroom": doubt * share}
    return np.column_stack([table.probs * known[:, None], *(negatives[kind] for kind in NEGATIVE_KINDS)])


def targets(table: Predictions) -> np.ndarray:
    offset = len(table.class_names)
    return np.array(
        [
            int(label) if kind == "known" else offset + NEGATIVE_KINDS.index(kind)
            for label, kind in zip(table.label, table.kind, strict=True)
        ]
    )


def probe_predictions(table: Predictions, feats: np.ndarray, strength: float) -> np.ndarray:
    """Per fold, a probe fitted on the photos that fold's model trained on, predicting the rest."""
    y = targets(table)
    out = np.zeros((len(table), len(table.class_names) + len(NEGATIVE_KINDS)))
    for fold in sorted(set(table.fold.tolist())):
        rows = table.fold == fold
        trained_on = table.trained_on(fold)
        counts = np.bincount(y[trained_on], minlength=out.shape[1])
        weights = counts[y[trained_on]] ** -0.5  # halfway to even classes, as the recipe samples them
        out[rows] = fit_probe(feats[trained_on], y[trained_on], weights, out.shape[1], strength)(feats[rows])
    return out


def as_table(table: Predictions, six: np.ndarray) -> Predictions:
    genera = six[:, : len(table.class_names)]
    known = genera.sum(1)
    negatives = six[:, len(table.class_names) :]
    share = negatives[:, NOT_MUSHROOM] / np.maximum(negatives.sum(1), 1e-12)
    return dataclasses.replace(table, probs=genera / known[:, None], open_set=np.column_stack([known, share]))


def folds_arguments(description: str, model: str, image_size: int) -> argparse.ArgumentParser:
    """The arguments of a benchmark that judges something on frozen features of folds already trained."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folds", type=Path, help="a cross-validation's multirun directory")
    parser.add_argument("--data", type=Path, required=True, help="root of the known genera's photos")
    parser.add_argument("--open-set", type=Path, help="root of the negatives (data.open_set.root)")
    parser.add_argument("--hf-cache", type=Path, help="a Hugging Face hub cache holding --model (offline)")
    parser.add_argument("--model", default=model)
    parser.add_argument("--image-size", type=int, default=image_size)
    parser.add_argument("--out", type=Path, required=True)
    return parser


def pooled_photos(
    folds: Path, data: Path, open_set: Path | None
) -> tuple[Predictions, list[Path], np.ndarray]:
    """The folds' pooled table, its distinct photos on disk (a validation row repeats a photo another fold
    tested), and each row's index among them."""
    table = pool(folds)
    roots = [data, *([open_set] if open_set else [])]
    paths = [next((root / p for root in roots if (root / p).is_file()), roots[0] / p) for p in table.photo]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"{len(missing)} photos of the folds are not under {roots} (e.g. {missing[0]}).")
    unique = sorted(set(paths))
    where = {path: i for i, path in enumerate(unique)}
    return table, unique, np.array([where[p] for p in paths])


def table_and_features(args: argparse.Namespace) -> tuple[Predictions, np.ndarray]:
    """The folds' pooled table and, row by row, the frozen features of its photos."""
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    if args.hf_cache:
        os.environ.update(HF_HUB_CACHE=str(args.hf_cache.resolve()), HF_HUB_OFFLINE="1")
    table, unique, row = pooled_photos(args.folds, args.data, args.open_set)
    cache = args.out / "teacher-features.npz"
    feats = frozen_features(args.model, unique, args.image_size, pretrained=True, cache=cache)
    return table, feats[row]


def main() -> None:
    parser = folds_arguments(__doc__ or "", "vit_small_patch14_dinov2.lvd142m", 224)
    parser.add_argument("--weight", type=float, default=0.5, help="the probe's share of the geometric mean")
    parser.add_argument("--strength", type=float, default=0.1, help="inverse L2 strength of the probe (C)")
    parser.add_argument("--open-set-tpr", type=float, default=0.95)
    parser.add_argument("--dangerous-target", type=float, default=0.02)
    args = parser.parse_args()
    table, feats = table_and_features(args)
    deadly = deadly_classes(table.class_names, "genus")
    probe = probe_predictions(table, feats, args.strength)
    fold_model = six_outputs(table)
    mixed = np.exp(args.weight * np.log(probe + 1e-9) + (1 - args.weight) * np.log(fold_model + 1e-9))
    candidates = {"fold-models": fold_model, "probe": probe, "mixed": mixed / mixed.sum(1, keepdims=True)}
    for name, six in candidates.items():
        answered = refit(as_table(table, six), deadly, args.open_set_tpr, args.dangerous_target)
        write_folds(answered, args.out / name)
        pooled_report(args.out / name)
    for name in ("probe", "mixed"):
        compare(args.out / "fold-models", args.out / name)


if __name__ == "__main__":
    main()
