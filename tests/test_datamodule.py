"""DataModule: batches of the right shape and normalisation, balanced sampling, Kaggle download path."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mushroom.configs import CONFIG_DIR
from mushroom.data import MushroomDataModule
from mushroom.data.splits import source_balance_weights
from mushroom.errors import MushroomError
from tests.conftest import make_image_folder, make_negatives

#: The genus set's handle, as data=genus names it.
GENUS_HANDLE = OmegaConf.load(CONFIG_DIR / "data" / "genus.yaml").kaggle_handle


def test_batches_are_normalised_tensors_with_labels(toy_folder: Path) -> None:
    dm = MushroomDataModule(
        toy_folder, image_size=48, batch_size=8, num_workers=0, mean=(0.5,) * 3, std=(0.5,) * 3
    )
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 48, 48) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and set(labels.tolist()) <= {0, 1, 2}
    assert images.min() >= -1.0 and images.max() <= 1.0  # (x/255 - 0.5) / 0.5
    val_images, _ = next(iter(dm.val_dataloader()))
    assert val_images.shape[1:] == (3, 48, 48)


def test_splits_do_not_overlap_and_cover_all_images(toy_folder: Path) -> None:
    dm = MushroomDataModule(toy_folder, num_workers=0)
    dm.setup()
    s = dm.split
    assert len(set(s.train) | set(s.val) | set(s.test)) == len(dm.index) == 72
    assert not (set(s.train) & set(s.test)) and not (set(s.val) & set(s.test))


def test_without_a_test_fold_every_photo_but_validation_trains(toy_folder: Path, tmp_path: Path) -> None:
    """data.fold=null (the model to ship): fold 0's test photos and negatives train or validate, and
    validation keeps fold 0's validation photos (part 0 of one partition)."""
    negatives = make_negatives(tmp_path / "open-set")
    runs = {
        fold: MushroomDataModule(toy_folder, num_workers=0, fold=fold, open_set={"root": str(negatives)})
        for fold in (0, None)
    }
    for dm in runs.values():
        dm.setup()
    held_out, final = runs[0], runs[None]
    assert len(final.split.test) == 0 and len(final.negatives.select("test")[0]) == 0
    assert len(held_out.split.test) > 0 and len(held_out.negatives.select("test")[0]) > 0
    assert set(final.split.train) | set(final.split.val) == set(range(len(final.index)))
    assert set(held_out.split.train) <= set(final.split.train)
    assert set(held_out.split.val) <= set(final.split.val)
    assert set(held_out.negatives.select("train")[0]) <= set(final.negatives.select("train")[0])
    assert len(final.negatives.select("train")[0]) > len(held_out.negatives.select("train")[0])


def test_a_training_share_trains_on_fewer_photos_and_judges_on_the_same(toy_folder: Path) -> None:
    """data.train_fraction=0.5: half of each class's training photos train; validation and test keep every
    photo they had, so the points of a learning curve are judged on the same photos."""
    runs = {f: MushroomDataModule(toy_folder, num_workers=0, train_fraction=f) for f in (1.0, 0.5)}
    for dm in runs.values():
        dm.setup()
    whole, half = runs[1.0].split, runs[0.5].split
    assert np.array_equal(half.val, whole.val) and np.array_equal(half.test, whole.test)
    assert set(half.train) < set(whole.train)
    labels = runs[1.0].index.labels
    assert np.bincount(labels[half.train]).tolist() == [-(-n // 2) for n in np.bincount(labels[whole.train])]
    assert len(runs[0.5].train_dataloader().dataset) == len(half.train)


def test_with_or_without_prepare_training_sees_the_same_photos_and_split(tmp_path: Path) -> None:
    """One pipeline: without data.prepare.enabled the audit and the manifest are made in memory, and give
    what prepare writes: the same photos left out, the same copies kept together, the same split."""
    import shutil

    root = make_image_folder(tmp_path / "raw", per_class=12, size=(40, 40))
    amanita, boletus = sorted((root / "Amanita").glob("*.jpg")), sorted((root / "Boletus").glob("*.jpg"))
    shutil.copyfile(amanita[0], root / "Amanita" / "copy.jpg")  # a copy, same label: kept, with its original
    shutil.copyfile(boletus[0], root / "Amanita" / "filed_twice.jpg")  # another label: both left out
    (root / "Lactarius" / "truncated.jpg").write_bytes(amanita[1].read_bytes()[:300])
    make_image_folder(tmp_path / "tiny", classes=("Lactarius",), per_class=1, size=(20, 20), seed=4)
    shutil.copyfile(tmp_path / "tiny" / "Lactarius" / "lactarius_000.jpg", root / "Lactarius" / "tiny.jpg")

    kept = tmp_path / "processed"
    settings = {"num_workers": 0, "processed_root": str(kept), "num_folds": 4, "val_fraction": 0.2}
    in_memory = MushroomDataModule(root, **settings)
    index, split = in_memory.index_and_split()
    assert not kept.exists()  # nothing written
    persisted = MushroomDataModule(root, **settings, prepare={"enabled": True, "cache_size": None})
    persisted.prepare_data()
    stored_index, stored_split = persisted.index_and_split()

    assert index.paths == stored_index.paths and np.array_equal(index.labels, stored_index.labels)
    for name in ("train", "val", "test"):
        assert np.array_equal(getattr(split, name), getattr(stored_split, name)), name
    names = {path.name for path in index.paths}
    assert len(index) == 36 - 1 + 1  # 36 photos, the copy in; boletus_000 (filed twice) out
    assert {"copy.jpg", "amanita_000.jpg"} <= names
    assert not {"filed_twice.jpg", "boletus_000.jpg", "truncated.jpg", "tiny.jpg"} & names
    side = {
        path.name: part
        for part in ("train", "val", "test")
        for path in np.asarray(index.paths)[getattr(split, part)]
    }
    assert side["copy.jpg"] == side["amanita_000.jpg"]


def test_a_set_too_small_for_its_folds_is_not_taken_for_a_stale_manifest(tmp_path: Path) -> None:
    """Three photos per class over 5 folds are dealt over them; with seed 19 the last fold stays empty,
    which is not a manifest made with other settings."""
    root = make_image_folder(tmp_path / "tiny", per_class=3, size=(32, 32))
    index, split = MushroomDataModule(root, num_workers=0, seed=19).index_and_split()
    assert len(split.train) + len(split.val) + len(split.test) == len(index) == 9


def test_balanced_sampling_evens_out_classes(tmp_path: Path) -> None:
    counts = {"Amanita": 60, "Boletus": 8}
    root = make_image_folder(tmp_path / "a", classes=tuple(counts), per_class=counts, size=(32, 32))
    dm = MushroomDataModule(root, image_size=32, batch_size=16, num_workers=0, balanced_sampling=True, seed=1)
    dm.setup()
    labels = torch.cat([y for _, y in dm.train_dataloader()])
    share = labels.float().mean().item()  # share of the rare class (label 1)
    assert 0.3 < share < 0.7, share
    unbalanced = MushroomDataModule(root, image_size=32, batch_size=16, num_workers=0)
    unbalanced.setup()
    assert torch.cat([y for _, y in unbalanced.train_dataloader()]).float().mean().item() < 0.2
    halfway = MushroomDataModule(
        root, image_size=32, batch_size=16, num_workers=0, balanced_sampling=True, balance_power=0.5, seed=1
    )
    halfway.setup()
    # sqrt(8) / (sqrt(8) + sqrt(60)) = 0.27 of draws from the rare class
    assert 0.15 < torch.cat([y for _, y in halfway.train_dataloader()]).float().mean().item() < 0.4


def test_source_balance_weights_even_out_families_within_each_class() -> None:
    labels = np.array([0] * 50 + [0] * 10 + [1] * 8)
    paths = [f"Amanita/amanita_muscaria_{i}.jpg" for i in range(50)]
    paths += [f"Amanita/images ({i}).jpg" for i in range(10)] + [f"Boletus/{i}.jpg" for i in range(8)]
    small = np.arange(len(labels)) >= 50
    small &= labels == 0
    for power, small_share in ((0.0, 10 / 60), (0.5, 10**0.5 / (10**0.5 + 50**0.5)), (1.0, 0.5)):
        factor = source_balance_weights(labels, paths, power)
        assert [factor[labels == c].sum() for c in (0, 1)] == pytest.approx([60, 8])  # class totals kept
        assert factor[small].sum() / 60 == pytest.approx(small_share)
    assert np.allclose(source_balance_weights(labels, paths, 1.0)[labels == 1], 1.0)  # one family: as it was


def test_source_balance_power_reaches_the_training_draws(tmp_path: Path) -> None:
    """Amanita as one large scrape and a few photos from elsewhere: with the power at 1 both are drawn
    about equally often, and the two classes keep the balance balanced_sampling gives them."""
    counts = {"Amanita": 48, "Boletus": 16}
    root = make_image_folder(tmp_path / "a", classes=tuple(counts), per_class=counts, size=(32, 32))
    for i in range(8):
        (root / "Amanita" / f"amanita_{i:03d}.jpg").rename(root / "Amanita" / f"images ({i}).jpg")
    settings = dict(image_size=32, batch_size=16, num_workers=0, balanced_sampling=True, balance_power=0.5)

    def draws(power: float) -> tuple[float, float]:
        dm = MushroomDataModule(root, source_balance_power=power, seed=1, **settings)
        dm.setup()
        paths = [dm.index.paths[i] for i in dm.split.train]
        drawn = [paths[i] for epoch in range(20) for i in epoch_draws(dm, epoch)]
        amanita = [p for p in drawn if p.parent.name == "Amanita"]
        return sum(p.stem.startswith("images") for p in amanita) / len(amanita), len(amanita) / len(drawn)

    small_share, amanita_share = draws(0.0)
    balanced_small_share, balanced_amanita_share = draws(1.0)
    assert small_share < 0.3 < 0.4 < balanced_small_share < 0.6
    assert balanced_amanita_share == pytest.approx(amanita_share, abs=0.05)


def epoch_draws(dm: MushroomDataModule, epoch: int) -> list[int]:
    """The training set's indices one epoch draws."""
    sampler = dm.train_dataloader().sampler
    sampler.epoch_of = lambda: epoch
    return [index for _, index in sampler]


def test_test_on_all_uses_every_image(toy_folder: Path) -> None:
    dm = MushroomDataModule(toy_folder, num_workers=0, test_on_all=True)
    dm.setup("test")
    assert len(dm.split.test) == len(dm.index) and len(dm.split.train) == 0


def fake_kaggle_download(handle: str, output_dir: str, **_: object) -> str:
    """What kagglehub leaves on disk: the archive's own Mushrooms/<Genus>/ folders."""
    make_image_folder(Path(output_dir) / "Mushrooms", per_class=3, size=(32, 32))
    return output_dir


def test_genus_data_downloads_with_kagglehub_when_missing(tmp_path: Path) -> None:
    root = tmp_path / "raw" / "genus"
    dm = MushroomDataModule(root, num_workers=0, kaggle_handle=GENUS_HANDLE)
    with mock.patch("kagglehub.dataset_download", side_effect=fake_kaggle_download) as download:
        dm.prepare_data()
        dm.prepare_data()  # second time: files are there, no download
    assert download.call_count == 1
    assert download.call_args.args[0] == GENUS_HANDLE
    dm.setup()
    assert dm.class_names == ["Amanita", "Boletus", "Lactarius"]
    assert np.all(dm.index.class_counts() == 3)


def test_failed_download_says_how_to_place_files_by_hand(tmp_path: Path) -> None:
    dm = MushroomDataModule(tmp_path / "raw" / "genus", num_workers=0, kaggle_handle=GENUS_HANDLE)
    error = ConnectionError("Name or service not known")
    with mock.patch("kagglehub.dataset_download", side_effect=error), pytest.raises(MushroomError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "Name or service not known" in message
    assert "need no account" in message and "by hand" in message
    assert str(tmp_path / "raw" / "genus") in message


def first_batch(root: Path, num_workers: int, seed: int = 3) -> torch.Tensor:
    torch.manual_seed(seed)
    dm = MushroomDataModule(root, image_size=32, batch_size=8, num_workers=num_workers, seed=seed)
    dm.setup()
    return next(iter(dm.train_dataloader()))[0]


def test_augmentations_are_reproducible_for_a_seed(toy_folder: Path) -> None:
    for workers in (0, 1):
        assert torch.equal(first_batch(toy_folder, workers), first_batch(toy_folder, workers))
    assert not torch.equal(first_batch(toy_folder, 0, seed=3), first_batch(toy_folder, 0, seed=4))


def test_each_worker_draws_its_own_augmentations(toy_folder: Path) -> None:
    """Every image the same photo: two workers with the same random state would yield identical batches."""
    dm = MushroomDataModule(toy_folder, image_size=32, batch_size=4, num_workers=2, persistent_workers=False)
    dm.setup()
    assert dm.index is not None
    dm.index.paths = [dm.index.paths[0]] * len(dm.index.paths)
    batches = iter(dm.train_dataloader())
    from_worker_0, from_worker_1 = next(batches)[0], next(batches)[0]
    assert not torch.equal(from_worker_0, from_worker_1)


@pytest.mark.parametrize("name", ["0.png", "photo.JPG", "photo.jpeg", "photo.webp"])
def test_images_already_on_disk_are_found_whatever_their_format(tmp_path: Path, name: str) -> None:
    """The 215-species archive is all PNG: a check for ``*.jp*g`` alone downloaded it again from Kaggle."""
    from mushroom.data.kaggle import has_images

    root = tmp_path / "data" / "data" / "horn_of_plenty"
    root.mkdir(parents=True)
    assert not has_images(tmp_path)
    (root / "notes.txt").write_text("not an image")
    assert not has_images(tmp_path)
    (root / name).write_bytes(b"")
    assert has_images(tmp_path)
    with mock.patch("kagglehub.dataset_download") as download:
        MushroomDataModule(tmp_path, num_workers=0, kaggle_handle="someone/some-set").prepare_data()
    download.assert_not_called()
