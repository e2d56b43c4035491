"""Running a trained classifier over a DataLoader, outside the Trainer, for calibration and reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader

from mushroom.data.splits import source_family
from mushroom.models import MushroomClassifier
from mushroom.predictions import Predictions, TestScores, predictions_of

if TYPE_CHECKING:
    from mushroom.data import MushroomDataModule


@torch.no_grad()
def _run(
    model: MushroomClassifier, loader: DataLoader, outputs: Callable[[torch.Tensor], tuple[torch.Tensor, ...]]
) -> list[np.ndarray]:
    """``outputs(images)`` for every batch, and the labels, each concatenated in the loader's order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    columns: list[list[torch.Tensor]] = []
    for images, targets in loader:
        row = [out.float().cpu() for out in outputs(images.to(device))] + [targets]
        columns = columns or [[] for _ in row]
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    model.train(was_training)
    return [torch.cat(column).numpy() for column in columns]


def collect_logits(model: MushroomClassifier, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """Per-image raw genus logits of the image alone (what temperature scaling is fitted on) and labels,
    in the loader's order."""
    logits, labels = _run(model, loader, lambda images: (model(images),))
    return logits, labels


def collect_scores(
    model: MushroomClassifier, loader: DataLoader
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image calibrated probabilities, open-set scores (:meth:`MushroomClassifier.predict_scores`)
    and labels, in the loader's order."""
    probs, open_set, labels = _run(model, loader, model.predict_scores)
    return probs, open_set, labels


def score_test_set(
    model: MushroomClassifier, known: DataLoader, negatives: Mapping[str, DataLoader]
) -> TestScores:
    """:func:`collect_scores` of the photos of known classes and of each set of negatives."""
    probs, open_set, labels = collect_scores(model, known)
    scored = {name: collect_scores(model, loader)[:2] for name, loader in negatives.items()}
    return TestScores(probs, open_set, labels, scored)


def fold_predictions(
    model: MushroomClassifier,
    datamodule: MushroomDataModule,
    fold: int,
    test: TestScores,
) -> Predictions:
    """The per-photo table of one fold (:mod:`mushroom.predictions`): the test photos of the known genera
    and the held-out negatives (``test``: the scores already collected for the report), then the
    validation photos and negatives, scored here. Each row is
    answered as a user would have been, at the model's fitted thresholds. The validation rows let a
    decision rule be fitted again per fold without training (``python -m mushroom.cv --refit``)."""
    names = datamodule.class_names
    thresholds = model.thresholds()
    deadly = None if model.hparams.get("deadly") is None else np.asarray(model.hparams["deadly"], dtype=bool)
    tables = []
    for part in ("test", "val"):
        photos, groups = datamodule.photo_keys(part)
        scored = (
            (test.probs, test.open_set, test.labels)
            if part == "test"
            else collect_scores(model, datamodule.val_dataloader())
        )
        probs, open_set, labels = scored
        sources = [source_family(p) for p in photos]
        tables.append(
            predictions_of(
                names,
                photos,
                "known",
                labels,
                groups,
                sources,
                fold,
                probs,
                open_set,
                thresholds,
                part,
                deadly,
            )
        )
        loaders = datamodule.negatives_by_kind(part) if part == "val" else {}
        for kind, paths in datamodule.negative_paths_by_kind(part).items():
            scores = test.negatives[kind] if part == "test" else collect_scores(model, loaders[kind])
            assert datamodule.negatives is not None
            neg_keys, neg_groups = zip(*map(datamodule.negatives.key_and_group, paths), strict=True)
            tables.append(
                predictions_of(
                    names,
                    list(neg_keys),
                    kind,
                    np.full(len(paths), -1),
                    list(neg_groups),
                    [source_family(p) for p in paths],
                    fold,
                    scores[0],
                    scores[1],
                    thresholds,
                    part,
                    deadly,
                )
            )
    return Predictions.concat(tables)
