"""Training order and augmentation come from (seed, epoch) alone (what makes a resumed run the same run)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from mushroom.core.preprocessing import Preprocessing
from mushroom.data.dataset import ImageDataset
from mushroom.data.sampling import EpochSampler, stream_seed
from mushroom.data.transforms import train_transform
from mushroom.schemas import Augmentation
from tests.conftest import make_image_folder


def order(sampler: EpochSampler) -> list[int]:
    return [index for _, index in sampler]


def test_the_order_depends_on_the_seed_and_the_epoch_only() -> None:
    epoch = {"now": 0}
    sampler = EpochSampler(50, seed=3, epoch_of=lambda: epoch["now"])
    first = order(sampler)
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert order(sampler) == first  # the same epoch again (a resumed run): the same order
    assert order(EpochSampler(50, seed=3, epoch_of=lambda: 0)) == first  # a new process, too
    epoch["now"] = 1
    assert order(sampler) != first
    assert {e for e, _ in sampler} == {1}  # the epoch travels with every index
    assert order(EpochSampler(50, seed=4, epoch_of=lambda: 0)) != first


def test_balanced_drawing_follows_the_weights() -> None:
    weights = [1.0] * 90 + [9.0] * 10  # the last ten items are drawn as often as the ninety others
    sampler = EpochSampler(100, seed=0, epoch_of=lambda: 0, weights=weights)
    drawn = Counter(index >= 90 for index in order(sampler))
    assert len(order(sampler)) == 100 and 35 <= drawn[True] <= 65
    assert order(sampler) == order(EpochSampler(100, seed=0, epoch_of=lambda: 0, weights=weights))


def test_stream_seeds_differ_by_stream_and_epoch() -> None:
    seeds = {
        stream_seed(1, stream, epoch) for stream in ("order", "augment/0", "augment/1") for epoch in range(3)
    }
    assert len(seeds) == 9 and all(0 <= seed < 2**63 for seed in seeds)


def test_an_images_augmentation_is_fixed_by_seed_epoch_and_index(tmp_path: Path) -> None:
    folder = make_image_folder(tmp_path, classes=("Amanita",), per_class=2, size=(48, 48))
    paths = sorted(folder.rglob("*.jpg"))
    transform = train_transform(Preprocessing(image_size=32), Augmentation(), seed=0)
    dataset = ImageDataset(paths, [0, 0], transform, seed=5)
    image, _ = dataset[(2, 1)]
    dataset[(0, 0)]  # other draws in between (another worker, another batch) change nothing
    assert torch.equal(dataset[(2, 1)][0], image)
    assert not torch.equal(dataset[(3, 1)][0], image)  # another epoch: another augmentation
    other = ImageDataset(
        paths, [0, 0], train_transform(Preprocessing(image_size=32), Augmentation(), seed=9), seed=5
    )
    assert torch.equal(other[(2, 1)][0], image)  # the transform's own seed does not matter, the run's does
