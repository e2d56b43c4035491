"""Finding a Kaggle dataset without network: data.root, then kagglehub's versioned cache, then download."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest

from mushroom.data.kaggle import KaggleHandle, locate_dataset, obtain_dataset
from mushroom.data.prepare import prepare_dataset
from mushroom.errors import MushroomError
from mushroom.schemas import DataConfig, PrepareSettings
from tests.replicas import build_genus, fill_cache

SLUG = "maysee/mushrooms-classification-common-genuss-images"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    return tmp_path / "kagglehub"


def test_handles_parse_with_and_without_a_version() -> None:
    assert KaggleHandle.parse(SLUG) == KaggleHandle("maysee", "mushrooms-classification-common-genuss-images")
    assert KaggleHandle.parse(f"{SLUG}/versions/12").version == 12
    with pytest.raises(MushroomError, match="owner/dataset/versions/<n>"):
        KaggleHandle.parse("just-a-name")


def test_a_pinned_version_is_found_in_the_cache_and_no_other(cache: Path, tmp_path: Path) -> None:
    one, two = fill_cache(cache, 1), fill_cache(cache, 2)
    fill_cache(cache, 3, complete=False)  # kagglehub was interrupted: no marker, not used
    empty_root = tmp_path / "raw" / "genus"
    assert locate_dataset(f"{SLUG}/versions/1", empty_root).dir == one
    newest = locate_dataset(SLUG, empty_root)
    assert (newest.dir, newest.version) == (two, 2)
    assert locate_dataset(f"{SLUG}/versions/3", empty_root) is None
    assert locate_dataset(f"{SLUG}/versions/4", empty_root) is None


def test_images_in_data_root_come_before_the_cache(cache: Path, tmp_path: Path) -> None:
    fill_cache(cache, 1)
    root = build_genus(tmp_path / "mine", per_class=2).root
    found = locate_dataset(f"{SLUG}/versions/1", root)
    assert found.dir == root and found.version is None  # put there by hand: its version is unknown


def test_prepare_reads_the_cache_offline_and_records_the_version(cache: Path, tmp_path: Path) -> None:
    cached = fill_cache(cache, 1)
    settings = PrepareSettings(enabled=True, cache_size=None)
    offline = ConnectionError("no network")
    with mock.patch("kagglehub.dataset_download", side_effect=offline) as download:
        prepared = prepare_dataset(
            DataConfig(
                root=str(tmp_path / "raw" / "genus"),
                prepare=settings,
                processed_root=str(tmp_path / "processed"),
                kaggle_handle=f"{SLUG}/versions/1",
                num_folds=2,
            )
        )
    download.assert_not_called()
    meta = json.loads((prepared.dir / "manifest.meta.json").read_text())
    assert meta["source"] == {"dir": str(cached), "kaggle_handle": f"{SLUG}/versions/1", "version": 1}
    assert prepared.source.dir == cached
    assert not (tmp_path / "raw" / "genus").exists()  # read in place, not copied


def test_a_download_records_the_version_kagglehub_resolved(cache: Path, tmp_path: Path) -> None:
    def download(handle: str, output_dir: str, **_: object) -> str:
        build_genus(Path(output_dir), per_class=2)
        marker = Path(output_dir) / ".complete" / "datasets" / "maysee" / SLUG.split("/")[1] / "7"
        marker.mkdir(parents=True)
        (marker / "bundle.complete").touch()
        return output_dir

    root = tmp_path / "raw" / "genus"
    with mock.patch("kagglehub.dataset_download", side_effect=download) as called:
        source = obtain_dataset(SLUG, root)
        again = obtain_dataset(SLUG, root)
    assert called.call_count == 1
    assert (source.dir, source.version) == (root, 7) and again.version == 7
