"""Seeded, stratified train/val/test splits and k-fold cross-validation folds.

The test split is fold ``fold`` of a stratified ``num_folds``-fold partition, so the default
(5 folds, fold 0) is the usual 4:1 train+val vs test split, and cross-validation is the same code
with ``fold`` varied. The validation split is a stratified share of what remains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mushroom.errors import MushroomError


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def assign_folds(labels: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
    """Give every sample a fold id so that each class is spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        offset = rng.integers(num_folds)  # which folds get the remainder differs per class
        folds[members] = (np.arange(len(members)) + offset) % num_folds
    return folds


def stratified_split(
    labels: np.ndarray,
    num_folds: int = 5,
    fold: int = 0,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> Split:
    """Split indices into train/val/test: test is fold ``fold``; val is ``val_fraction`` of the rest."""
    labels = np.asarray(labels)
    if num_folds < 2:
        raise MushroomError(f"data.num_folds must be at least 2 (got {num_folds}); 5 gives a 4:1 split.")
    if not 0 <= fold < num_folds:
        raise MushroomError(f"data.fold must be in 0..{num_folds - 1} for data.num_folds={num_folds}.")
    if not 0.0 <= val_fraction < 1.0:
        raise MushroomError(f"data.val_fraction must be in [0, 1) (got {val_fraction}).")

    folds = assign_folds(labels, num_folds, seed)
    test = np.flatnonzero(folds == fold)
    rest = np.flatnonzero(folds != fold)

    rng = np.random.default_rng(seed + 1)
    val_parts = []
    for cls in np.unique(labels[rest]):
        members = rng.permutation(rest[labels[rest] == cls])
        n_val = round(val_fraction * len(members))
        if val_fraction > 0 and len(members) >= 2:
            n_val = max(1, n_val)
        val_parts.append(members[:n_val])
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.empty(0, dtype=np.int64)
    train = np.setdiff1d(rest, val)
    return Split(train=train, val=val, test=np.sort(test))
