"""Indexing class folders (walk, audit, manifest): nested archives, label order, empty and unknown classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mushroom.data.folder import find_class_root
from mushroom.data.prepare import index_folder
from mushroom.errors import MushroomError
from tests.conftest import make_image_folder
from tests.replicas import build_genus


def test_classes_are_sorted_folder_names(tmp_path: Path) -> None:
    make_image_folder(tmp_path, classes=("Lactarius", "Amanita", "Boletus"), per_class=2)
    index = index_folder(tmp_path)
    assert index.class_names == ["Amanita", "Boletus", "Lactarius"]
    assert index.class_counts().tolist() == [2, 2, 2]
    for path, label in zip(index.paths, index.labels, strict=True):
        assert path.parent.name == index.class_names[label]


def test_kaggle_archive_nesting_is_found(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "download" / "Mushrooms", per_class=2)
    (tmp_path / "download" / ".DS_Store").write_text("")
    assert find_class_root(tmp_path / "download") == tmp_path / "download" / "Mushrooms"
    assert index_folder(tmp_path / "download").class_names == ["Amanita", "Boletus", "Lactarius"]


def test_empty_class_folder_is_a_clear_error(tmp_path: Path) -> None:
    make_image_folder(tmp_path, per_class=2)
    (tmp_path / "Russula").mkdir()
    with pytest.raises(MushroomError, match=r"Russula.*hold no images"):
        index_folder(tmp_path)


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MushroomError, match="does not exist"):
        index_folder(tmp_path / "nowhere")


def test_given_class_names_fix_labels_and_allow_a_subset(tmp_path: Path) -> None:
    make_image_folder(tmp_path, classes=("Boletus",), per_class=3)
    index = index_folder(tmp_path, class_names=["Amanita", "Boletus", "Lactarius"])
    assert index.class_names == ["Amanita", "Boletus", "Lactarius"]
    assert set(index.labels.tolist()) == {1}


def test_classes_outside_the_given_ones_are_refused(tmp_path: Path) -> None:
    make_image_folder(tmp_path, classes=("Boletus", "Russula"), per_class=2)
    with pytest.raises(MushroomError, match="Russula"):
        index_folder(tmp_path, class_names=["Amanita", "Boletus"])


def test_a_set_held_twice_is_read_once(tmp_path: Path) -> None:
    """The genus archive's Mushrooms/ beside an older mushrooms/Mushrooms/ copy: the same 9 classes."""
    replica = build_genus(tmp_path / "archive", per_class=3, doubled=True)
    index = index_folder(replica.root)
    assert index.class_names == sorted(replica.usable)
    assert dict(zip(index.class_names, index.class_counts().tolist(), strict=True)) == replica.usable
    assert not any("mushrooms/Mushrooms" in str(path) for path in index.paths)


def test_parts_of_a_set_are_joined_and_nested_classes_are_not_taken_for_copies(tmp_path: Path) -> None:
    make_image_folder(
        tmp_path / "parts" / "train", classes=("Amanita", "Boletus"), per_class=4, size=(32, 32)
    )
    make_image_folder(
        tmp_path / "parts" / "test", classes=("Amanita", "Boletus"), per_class=2, size=(32, 32), seed=1
    )
    index = index_folder(tmp_path / "parts")
    assert index.class_names == ["Amanita", "Boletus"] and index.class_counts().tolist() == [6, 6]

    make_image_folder(
        tmp_path / "nested" / "edible", classes=("Boletus", "Lactarius"), per_class=2, size=(32, 32)
    )
    make_image_folder(tmp_path / "nested" / "deadly", classes=("Amanita",), per_class=2, size=(32, 32))
    assert index_folder(tmp_path / "nested").class_names == ["deadly", "edible"]
