"""Splits: disjoint, stratified, seeded; k folds partition the data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mushroom.data.splits import grouped_partitions, source_family, source_groups, stratified_split
from mushroom.errors import MushroomError
from mushroom.schemas import DataConfig

LABELS = np.repeat(np.arange(4), [50, 200, 30, 10])
# The data config's split defaults (mushroom.schemas.DataConfig).
SPLIT = dataclasses.asdict(DataConfig(root="photos").split)


def test_split_is_disjoint_complete_and_4_to_1() -> None:
    split = stratified_split(LABELS, **SPLIT | {"seed": 1})
    parts = [split.train, split.val, split.test]
    assert sum(len(p) for p in parts) == len(LABELS)
    assert len(np.unique(np.concatenate(parts))) == len(LABELS)
    assert abs(len(split.test) / len(LABELS) - 0.2) < 0.01
    assert abs(len(split.val) / (len(split.train) + len(split.val)) - 0.1) < 0.02


def test_every_class_is_spread_over_the_splits() -> None:
    split = stratified_split(LABELS, **SPLIT | {"seed": 3})
    for cls, count in enumerate(np.bincount(LABELS)):
        assert np.sum(LABELS[split.test] == cls) in (count // 5, count // 5 + 1)
        assert np.sum(LABELS[split.val] == cls) >= 1


def test_same_seed_same_split_other_seed_other_split() -> None:
    a, b = stratified_split(LABELS, **SPLIT | {"seed": 7}), stratified_split(LABELS, **SPLIT | {"seed": 7})
    c = stratified_split(LABELS, **SPLIT | {"seed": 8})
    assert np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val)
    assert not np.array_equal(a.test, c.test)


def test_k_folds_partition_the_data() -> None:
    tests = [
        stratified_split(LABELS, **SPLIT | {"num_folds": 4, "fold": k, "seed": 0}).test for k in range(4)
    ]
    together = np.concatenate(tests)
    assert len(together) == len(LABELS) == len(np.unique(together))


@pytest.mark.parametrize(("folds", "fold"), [(1, 0), (5, 5), (5, -1)])
def test_bad_fold_settings_are_clear_errors(folds: int, fold: int) -> None:
    with pytest.raises(MushroomError, match="data\\."):
        stratified_split(LABELS, **SPLIT | {"num_folds": folds, "fold": fold})


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
