"""Splits: disjoint, stratified, seeded; k folds partition the data."""

from __future__ import annotations

import numpy as np
import pytest

from mushroom.data.splits import stratified_split
from mushroom.errors import MushroomError

LABELS = np.repeat(np.arange(4), [50, 200, 30, 10])


def test_split_is_disjoint_complete_and_4_to_1() -> None:
    split = stratified_split(LABELS, num_folds=5, fold=0, val_fraction=0.1, seed=1)
    parts = [split.train, split.val, split.test]
    assert sum(len(p) for p in parts) == len(LABELS)
    assert len(np.unique(np.concatenate(parts))) == len(LABELS)
    assert abs(len(split.test) / len(LABELS) - 0.2) < 0.01
    assert abs(len(split.val) / (len(split.train) + len(split.val)) - 0.1) < 0.02


def test_every_class_is_spread_over_the_splits() -> None:
    split = stratified_split(LABELS, seed=3)
    for cls, count in enumerate(np.bincount(LABELS)):
        assert np.sum(LABELS[split.test] == cls) in (count // 5, count // 5 + 1)
        assert np.sum(LABELS[split.val] == cls) >= 1


def test_same_seed_same_split_other_seed_other_split() -> None:
    a, b = stratified_split(LABELS, seed=7), stratified_split(LABELS, seed=7)
    c = stratified_split(LABELS, seed=8)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val)
    assert not np.array_equal(a.test, c.test)


def test_k_folds_partition_the_data() -> None:
    tests = [stratified_split(LABELS, num_folds=4, fold=k, seed=0).test for k in range(4)]
    together = np.concatenate(tests)
    assert len(together) == len(LABELS) == len(np.unique(together))


@pytest.mark.parametrize(("folds", "fold"), [(1, 0), (5, 5), (5, -1)])
def test_bad_fold_settings_are_clear_errors(folds: int, fold: int) -> None:
    with pytest.raises(MushroomError, match="data\\."):
        stratified_split(LABELS, num_folds=folds, fold=fold)
