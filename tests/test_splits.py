"""Splits: disjoint, stratified, seeded; k folds partition the data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mushroom.data.splits import (
    Split,
    grouped_partitions,
    source_family,
    source_groups,
    split_from_partitions,
    training_share,
    validate_split_settings,
)
from mushroom.errors import MushroomError
from mushroom.schemas import DataConfig

LABELS = np.repeat(np.arange(4), [50, 200, 30, 10])
# The data config's split defaults (mushroom.schemas.DataConfig).
SPLIT = dataclasses.asdict(DataConfig(root="photos").split)


def split_of(labels: np.ndarray, groups: np.ndarray | None = None, **changes: float) -> Split:
    """The split the manifest makes (one group per photo unless ``groups``), with ``changes`` to SPLIT."""
    settings = SPLIT | changes
    groups = np.arange(len(labels)) if groups is None else groups
    folds, parts = grouped_partitions(
        labels, groups, settings["num_folds"], settings["val_fraction"], settings["seed"]
    )
    return split_from_partitions(folds, parts, settings["fold"])


def test_split_is_disjoint_complete_and_4_to_1() -> None:
    split = split_of(LABELS, seed=1)
    parts = [split.train, split.val, split.test]
    assert sum(len(p) for p in parts) == len(LABELS)
    assert len(np.unique(np.concatenate(parts))) == len(LABELS)
    assert abs(len(split.test) / len(LABELS) - 0.2) < 0.01
    assert abs(len(split.val) / (len(split.train) + len(split.val)) - 0.1) < 0.02


def test_every_class_is_spread_over_the_splits() -> None:
    split = split_of(LABELS, seed=3)
    for cls, count in enumerate(np.bincount(LABELS)):
        assert np.sum(LABELS[split.test] == cls) in (count // 5, count // 5 + 1)
        assert np.sum(LABELS[split.val] == cls) >= 1


def test_same_seed_same_split_other_seed_other_split() -> None:
    a, b, c = split_of(LABELS, seed=7), split_of(LABELS, seed=7), split_of(LABELS, seed=8)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val)
    assert not np.array_equal(a.test, c.test)


def test_k_folds_partition_the_data() -> None:
    tests = [split_of(LABELS, num_folds=4, fold=k, seed=0).test for k in range(4)]
    together = np.concatenate(tests)
    assert len(together) == len(LABELS) == len(np.unique(together))


def test_duplicate_groups_stay_on_one_side() -> None:
    groups = np.arange(len(LABELS)) // 3  # photos 0-2, 3-5, ... are copies of one another (one class each)
    for fold in range(5):
        split = split_of(LABELS, groups, fold=fold)
        sides = [set(groups[split.train]), set(groups[split.val]), set(groups[split.test])]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])


def test_a_set_too_small_for_k_folds_is_dealt_over_them() -> None:
    """Three photos per class, five folds: each class's photos go to three different folds (not refused,
    and not one fold with all), and every photo tests in exactly one fold."""
    labels = np.repeat(np.arange(4), 3)
    folds, _ = grouped_partitions(labels, np.arange(len(labels)), num_folds=5, val_fraction=0.1, seed=0)
    for cls in range(4):
        assert len(set(folds[labels == cls])) == 3
    # Groups stay whole there too: two copies share their fold.
    groups = np.asarray([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    folds, _ = grouped_partitions(labels, groups, num_folds=5, val_fraction=0.1, seed=0)
    assert folds[0] == folds[1] and len(set(folds[labels == 0])) == 2


@pytest.mark.parametrize(("folds", "fold", "val"), [(1, 0, 0.1), (5, 5, 0.1), (5, -1, 0.1), (5, 0, 1.0)])
def test_bad_split_settings_are_clear_errors(folds: int, fold: int, val: float) -> None:
    with pytest.raises(MushroomError, match="data\\."):
        validate_split_settings(folds, fold, val)


def test_source_family_is_the_stem_before_its_number() -> None:
    assert source_family("Amanita/amanita_vaginata_0042.jpg") == "amanita_vaginata"
    assert source_family("images (12).jpeg") == "images"
    assert source_family("images__7.jpg") == "images"
    assert source_family("0031.jpg") == "(number)"
    assert source_family("Z_3.JPG") == "Z"


def test_minority_sources_stay_whole_and_the_rest_is_split_as_before() -> None:
    """Class 0: 60 photos of source x, 25 of y, 15 of z; class 1: 100 of one source w."""
    paths = (
        [f"x_{i}.jpg" for i in range(60)]
        + [f"y_{i}.jpg" for i in range(25)]
        + [f"z_{i}.jpg" for i in range(15)]
    )
    paths += [f"w_{i}.jpg" for i in range(100)]
    labels = np.asarray([0] * 100 + [1] * 100)
    dup_groups = list(range(200))
    dup_groups[3] = dup_groups[70]  # x_3 is a near-duplicate of y_10: it must follow y
    groups = source_groups(labels, dup_groups, paths, max_share=0.5)
    folds, parts = grouped_partitions(labels, groups, num_folds=5, val_fraction=0.1, seed=0)
    y = np.arange(60, 85)
    z = np.arange(85, 100)
    for family in (y, z):
        assert len(set(folds[family])) == 1 and len(set(parts[family])) == 1
    assert folds[3] == folds[70]
    # x (60%) and w (100%) are their classes' main sources: spread over every fold, as without sources.
    assert set(folds[:60]) == set(range(5)) and set(folds[100:]) == set(range(5))
    # Without the option, y is spread too.
    plain, _ = grouped_partitions(labels, np.asarray(dup_groups), num_folds=5, val_fraction=0.1, seed=0)
    assert len(set(plain[y])) > 1


def _validation_counts(seed: int, val_by_fold: bool) -> np.ndarray:
    """Validation photos per class (columns) for each of 3 test folds (rows): class 0 in 9 sources of 5
    photos, each kept whole in test folds and validation; class 1 in 200 single photos."""
    labels = np.repeat([0, 1], [45, 200])
    groups = np.concatenate([np.repeat(np.arange(9), 5), 100 + np.arange(200)])
    folds, parts = grouped_partitions(labels, groups, 3, 0.2, seed, val_by_fold=val_by_fold)
    return np.asarray(
        [np.bincount(labels[split_from_partitions(folds, parts, k).val], minlength=2) for k in range(3)]
    )


def test_validation_by_fold_gives_every_fold_every_class() -> None:
    """Stratified by class alone, the part-0 sources of class 0 sometimes all lie in one test fold, which
    then validates on no class-0 photo; stratified by class and fold, never, and near val_fraction."""
    seeds = range(20)
    assert any((_validation_counts(seed, val_by_fold=False)[:, 0] == 0).any() for seed in seeds)
    for seed in seeds:
        counts = _validation_counts(seed, val_by_fold=True)
        assert (counts[:, 0] >= 5).all()  # at least one whole source of the 30 left beside each test fold
        assert (abs(counts[:, 1] - 0.2 * 200 * 2 / 3) <= 3).all()


def test_validation_by_fold_never_validates_on_a_group_larger_than_a_part() -> None:
    """With val_by_fold, a source of 20 of its class's 50 photos, more than a fifth (val_fraction 0.2),
    trains and is tested but never validates: it alone would be the class's validation."""
    labels = np.repeat([0, 1], [50, 100])
    groups = np.concatenate([np.zeros(20, dtype=int), 1 + np.arange(130)])
    folds, parts = grouped_partitions(labels, groups, 3, 0.2, seed=0, val_by_fold=True)
    assert (parts[:20] == -1).all() and len(set(folds[:20])) == 1
    assert set(parts[20:]) == set(range(5))
    assert (grouped_partitions(labels, groups, 3, 0.2, seed=0)[1][:20] >= 0).all()  # a part, without


def test_a_training_share_keeps_whole_groups_of_every_class_nested_across_shares() -> None:
    """data.train_fraction: about the share of each class (a group's size over), duplicate groups whole,
    and at one seed the half a subset of the three quarters: a learning curve's points grow, not
    reshuffle."""
    groups = (np.arange(len(LABELS)) + 1) // 2  # pairs of copies; three pairs straddle two classes
    train = split_of(LABELS, groups, seed=4).train
    shares = {f: training_share(train, LABELS, groups, f, seed=5) for f in (0.25, 0.5, 0.75, 1.0)}
    assert np.array_equal(shares[1.0], train)
    for fraction, kept in shares.items():
        assert set(kept) <= set(train) and np.all(np.diff(kept) > 0)  # in order, as the split's indices are
        assert set(groups[kept]).isdisjoint(groups[np.setdiff1d(train, kept)])  # no group cut in two
        for cls in range(4):
            available, taken = np.sum(LABELS[train] == cls), np.sum(LABELS[kept] == cls)
            assert fraction * available - 2 < taken < fraction * available + 3
    assert set(shares[0.25]) < set(shares[0.5]) < set(shares[0.75]) < set(shares[1.0])
    assert np.array_equal(training_share(train, LABELS, groups, 0.5, seed=5), shares[0.5])
    assert not np.array_equal(training_share(train, LABELS, groups, 0.5, seed=6), shares[0.5])
    tiny = training_share(train, LABELS, groups, 0.01, seed=5)
    assert set(LABELS[tiny]) == {0, 1, 2, 3}  # a class keeps one group at least
