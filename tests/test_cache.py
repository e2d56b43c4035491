"""The resized cache (``mushroom.data.cache``): shorter side shrunk to the cache size, never enlarged, written
atomically, and rewritten only when the original is newer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from mushroom.data.cache import build_cache, cached_path, shrink


def write_photo(path: Path, size: tuple[int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_the_shorter_side_becomes_the_cache_size_and_small_images_stay_as_they_are() -> None:
    assert shrink(np.zeros((600, 900, 3), np.uint8), 256).shape == (256, 384, 3)
    assert shrink(np.zeros((900, 600, 3), np.uint8), 256).shape == (384, 256, 3)
    assert shrink(np.zeros((100, 300, 3), np.uint8), 256).shape == (100, 300, 3)  # never enlarged


def test_a_cache_is_built_once_and_rebuilt_only_for_changed_originals(tmp_path: Path) -> None:
    root, cache = tmp_path / "photos", tmp_path / "cache"
    write_photo(root / "Amanita" / "a.png", (640, 480))
    write_photo(root / "Boletus" / "b.jpg", (300, 500))
    relative = ["Amanita/a.png", "Boletus/b.jpg"]
    assert build_cache(root, relative, cache, 128, workers=2) == 2
    cached = cached_path(cache, "Amanita/a.png")
    assert cached == cache / "Amanita" / "a.jpg"  # always JPEG
    assert Image.open(cached).size == (171, 128) and Image.open(cached).format == "JPEG"
    assert not list(cache.rglob("*.partial"))  # written whole or not at all

    assert build_cache(root, relative, cache, 128) == 0  # up to date: nothing re-encoded
    later = cached.stat().st_mtime_ns + 10**9
    os.utime(root / "Amanita" / "a.png", ns=(later, later))
    assert build_cache(root, relative, cache, 128) == 1  # the changed original only
