"""Seeded, stratified, grouped train/val/test splits and k-fold cross-validation folds: the one split
algorithm, applied by the manifest (:func:`mushroom.data.manifest.build_manifest`).

The test split is fold ``fold`` of a stratified ``num_folds``-fold partition, so the default
(5 folds, fold 0) is the usual 4:1 train+val vs test split, and cross-validation is the same code
with ``fold`` varied. The validation split is a stratified share of what remains.

:func:`grouped_partitions` keeps every duplicate group (from the audit) inside one fold and one
validation part, so a photo and its copy never land on both sides of a split.
:func:`source_groups` widens the groups to whole *source families* (photos named alike, e.g. every
``amanita_vaginata_NNN.jpg``), to measure how the model does on a source it never saw.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from mushroom.errors import MushroomError


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def validate_split_settings(num_folds: int, fold: int | None, val_fraction: float) -> None:
    if num_folds < 2:
        raise MushroomError(f"data.num_folds must be at least 2 (got {num_folds}); 5 gives a 4:1 split.")
    if fold is not None and not 0 <= fold < num_folds:
        raise MushroomError(f"data.fold must be in 0..{num_folds - 1} for data.num_folds={num_folds}.")
    if not 0.0 <= val_fraction < 1.0:
        raise MushroomError(f"data.val_fraction must be in [0, 1) (got {val_fraction}).")


def dealt_fold_ids(labels: np.ndarray, groups: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
    """Fold ids dealing each class's groups over the folds in turn, from a random fold per class (seeded).

    For sets too small for :class:`StratifiedGroupKFold` (no class with ``num_folds`` photos): a few photos
    per class still land in different folds, and a group stays whole. A group takes its first photo's class.
    """
    rng = np.random.default_rng(seed)
    first = dict(zip(groups.tolist()[::-1], labels.tolist()[::-1], strict=True))  # group -> its first label
    fold_of: dict[int, int] = {}
    for cls in np.unique(labels):
        members = rng.permutation(sorted(group for group, label in first.items() if label == cls))
        offset = int(rng.integers(num_folds))  # which folds get the remainder differs per class
        fold_of |= {int(group): (k + offset) % num_folds for k, group in enumerate(members)}
    return np.asarray([fold_of[int(group)] for group in groups], dtype=np.int64)


def _grouped_fold_ids(labels: np.ndarray, groups: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
    largest = int(np.unique(labels, return_counts=True)[1].max())
    if largest < num_folds:
        return dealt_fold_ids(labels, groups, num_folds, seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # "The least populated class has only n members": folds are then uneven, which is fine.
        warnings.simplefilter("ignore", UserWarning)
        for k, (_, members) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
            folds[members] = k
    return folds


def grouped_partitions(
    labels: np.ndarray,
    groups: np.ndarray,
    num_folds: int,
    val_fraction: float,
    seed: int,
    val_groups: np.ndarray | None = None,
    val_by_fold: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold ids (test fold per sample) and validation parts, both stratified by label and grouped.

    Validation for test fold ``k`` is every sample outside fold ``k`` whose part is 0; parts come
    from an independent grouped partition into ``round(1 / val_fraction)`` pieces, so the share
    is about ``val_fraction`` of what is left, whatever the fold. Part -1 means "never validation".
    ``val_groups`` (default ``groups``) are the groups the parts keep whole: e.g. whole source families
    for validation while the test folds keep only duplicate groups whole.
    ``val_by_fold``: stratify the parts by class *and test fold*, so that what is left of part 0 beside
    each test fold holds about ``val_fraction`` of every class. Stratified by class alone, a large group
    in part 0 can fall in one test fold and leave that fold's validation without the class. A group larger
    than a part's share of its class then never validates (part -1): alone it would be the class's validation.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    val_groups = groups if val_groups is None else np.asarray(val_groups)
    validate_split_settings(num_folds, 0, val_fraction)
    folds = _grouped_fold_ids(labels, groups, num_folds, seed)
    if val_fraction <= 0:
        return folds, np.full(len(labels), -1, dtype=np.int64)
    largest = int(np.unique(labels, return_counts=True)[1].max())
    num_parts = max(2, min(round(1 / val_fraction), largest))
    if not val_by_fold:
        return folds, _grouped_fold_ids(labels, val_groups, num_parts, seed + 1)
    _, group_of, group_sizes = np.unique(val_groups, return_inverse=True, return_counts=True)
    fits = group_sizes[group_of] * num_parts <= np.bincount(labels)[labels]
    parts = np.full(len(labels), -1, dtype=np.int64)
    if fits.any():
        strata = labels[fits] * num_folds + folds[fits]
        parts[fits] = _grouped_fold_ids(strata, val_groups[fits], num_parts, seed + 1)
    return folds, parts


def split_from_partitions(folds: np.ndarray, val_parts: np.ndarray, fold: int | None) -> Split:
    """Train/val/test indices for test fold ``fold`` (see :func:`grouped_partitions`); ``None``: no test
    split, every photo but the validation ones (part 0) trains."""
    folds, val_parts = np.asarray(folds), np.asarray(val_parts)
    test = folds == fold if fold is not None else np.zeros(len(folds), dtype=bool)
    val = ~test & (val_parts == 0)
    train = ~test & ~val
    return Split(train=np.flatnonzero(train), val=np.flatnonzero(val), test=np.flatnonzero(test))


def training_share(
    train: np.ndarray, labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> np.ndarray:
    """About ``fraction`` of each class's training photos ``train``, whole duplicate groups, for a learning
    curve (``data.train_fraction``): how the figures grow with the photos says what more photos would buy.

    Each class's groups (a group counts for its first photo's class, should the audit have kept one with
    conflicting labels) are taken in a seeded order until the share is reached (at least one group), so at
    one seed a smaller share keeps a subset of a larger one's photos. Validation and test photos are not
    touched: the curve's points are judged on the same photos."""
    train, labels, groups = np.asarray(train), np.asarray(labels), np.asarray(groups)
    if fraction >= 1.0:
        return train
    _, first, group_of, sizes = np.unique(
        groups[train], return_index=True, return_inverse=True, return_counts=True
    )
    group_class = labels[train][first]
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for cls in np.unique(group_class):
        order = rng.permutation(np.flatnonzero(group_class == cls))
        taken_before = np.cumsum(sizes[order]) - sizes[order]
        chosen.append(order[taken_before < fraction * sizes[order].sum()])
    return np.sort(train[np.isin(group_of, np.concatenate(chosen))])


def source_family(path: str | PurePath) -> str:
    """The file-name stem before its number: ``amanita_muscaria_0123.jpg`` -> ``amanita_muscaria``,
    ``images (12).jpg`` -> ``images``, ``123.jpg`` -> ``(number)``. Photos from one scrape or one
    photographer tend to share it."""
    return re.sub(r"[_\-\s(]*\d.*$", "", PurePath(path).stem) or "(number)"


def class_families(labels: np.ndarray, paths: Sequence[str | PurePath]) -> list[str]:
    """Each photo's source family within its class, ``<label>/<family>``: one family name in two classes
    (``images`` of *Amanita* and of *Boletus*) is two scrapes."""
    return [f"{label}/{source_family(path)}" for label, path in zip(labels, paths, strict=True)]


def source_balance_weights(labels: np.ndarray, paths: Sequence[str | PurePath], power: float) -> np.ndarray:
    """Per photo, a sampling factor that draws each class's source families closer to equally often.

    A family of ``n`` photos of a class is drawn in proportion to ``n ** (1 - power)`` (0: as they come,
    1: every family of the class equally often); each class keeps its total, so class balance is
    untouched. A few large scrapes (one species, one photographer) then no longer teach most of what a
    genus looks like: the cues they share, background and light, are the ones photos from new sources lack.
    """
    labels = np.asarray(labels)
    keys = class_families(labels, paths)
    sizes = Counter(keys)
    factor = np.array([sizes[key] ** -float(power) for key in keys])
    for label in np.unique(labels):
        rows = labels == label
        factor[rows] *= rows.sum() / factor[rows].sum()
    return factor


def source_groups(
    labels: np.ndarray, groups: Sequence[object], paths: Sequence[str], max_share: float
) -> np.ndarray:
    """Group ids that keep each source family of a class whole, where the class can spare it.

    A family is kept whole (one fold, one validation part) when it holds at most ``max_share`` of its
    class's photos: the class then has other photos to train on when the family is in the test fold.
    Larger families keep their duplicate groups. A duplicate group that spans families joins them.
    """
    labels = np.asarray(labels)
    keys = class_families(labels, paths)
    class_sizes = np.bincount(labels)
    family_sizes = Counter(keys)
    parent: dict[object, object] = {}

    def root(node: object) -> object:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for label, key, group in zip(labels, keys, groups, strict=True):
        if family_sizes[key] <= max_share * class_sizes[label]:
            parent[root(("group", group))] = root(("family", key))
    roots = [root(("group", group)) for group in groups]
    ids = {node: i for i, node in enumerate(dict.fromkeys(roots))}
    return np.asarray([ids[node] for node in roots], dtype=np.int64)
