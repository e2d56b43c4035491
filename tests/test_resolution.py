"""Negatives shrunk to the known photos' resolution (data.open_set.match_resolution)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mushroom.data.resolution import ResolutionMatch
from tests.conftest import make_image_folder, stripes


def test_matched_items_are_shrunk_to_a_side_drawn_from_the_known_ones() -> None:
    match = ResolutionMatch.of([50, 70], [False, True])
    photo = np.zeros((200, 300, 3), np.uint8)
    assert match(photo, seed=1, index=0, epoch=0) is photo  # not matched: a known photo
    drawn = {min(match(photo, seed=1, index=1, epoch=epoch).shape[:2]) for epoch in range(20)}
    assert drawn == {50, 70}  # each epoch draws again, from the known sides only
    assert match(photo, 1, 1, 3).shape == match(photo, 1, 1, 3).shape  # the same in any worker
    small = np.zeros((40, 60, 3), np.uint8)
    assert match(small, seed=1, index=1, epoch=0) is small  # never enlarged
    with pytest.raises(ValueError, match="at least one"):
        ResolutionMatch.of([], [True])


@pytest.mark.parametrize(("match", "cache_size"), [(True, None), (False, None), (True, 32)])
def test_training_negatives_take_the_known_photos_resolution(
    tmp_path: Path, match: bool, cache_size: int | None
) -> None:
    from mushroom.data import MushroomDataModule

    data = make_image_folder(tmp_path / "genera", per_class=12, size=(48, 40), seed=3)
    for i in range(10):
        stripes(tmp_path / "open-set" / "not_mushroom" / f"thing_{i}.jpg", seed=i, size=120)
    # With a cache, training reads the known photos shrunk to it: the negatives follow them there.
    prepare = {"enabled": cache_size is not None, "cache_size": cache_size}
    module = MushroomDataModule(
        data,
        image_size=64,  # decoded whole: 120 px is under twice 64 / 0.875
        num_workers=0,
        processed_root=str(tmp_path / "processed"),
        prepare=prepare,
        open_set={"root": str(tmp_path / "open-set"), "match_resolution": match, "val_fraction": 0.1},
    )
    module.prepare_data()
    module.setup("fit")
    dataset = module.train_dataloader().dataset
    known = len(module.index_and_split()[1].train)
    side = cache_size or 40
    negatives = [min(dataset.decoded(i, epoch=2).shape[:2]) for i in range(known, len(dataset))]
    assert negatives and set(negatives) == ({side} if match else {120})
    assert {min(dataset.decoded(i).shape[:2]) for i in range(known)} == {side}  # known photos as read
    image, _ = dataset[(2, known)]
    assert tuple(image.shape) == (3, 64, 64)  # then augmented and cropped like any photo
