"""A resized copy of the dataset: every image re-encoded once with its shorter side at ``size``.

Phone photos are 3-12 megapixels and training looks at 224-256 px crops: decoding the full photo
every epoch is wasted work. The cache keeps each image's aspect ratio, so random-resized crops
and centre crops see the same picture they would see from the original.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mushroom.core.images import decoding_threads, load_rgb

log = logging.getLogger(__name__)

JPEG_QUALITY = 95


def cached_path(cache_dir: str | Path, relative_path: str) -> Path:
    """Where the cached copy of ``relative_path`` lives (always a ``.jpg``)."""
    return (Path(cache_dir) / relative_path).with_suffix(".jpg")


def shrink(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize so that the shorter side is ``size``; smaller images are left as they are."""
    height, width = rgb.shape[:2]
    short = min(height, width)
    if short <= size:
        return rgb
    scale = size / short
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    return cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)


def cache_one(source: Path, target: Path, size: int) -> bool:
    """Write ``target`` unless it is newer than ``source``; return whether it was (re)written."""
    if target.is_file() and target.stat().st_mtime_ns >= source.stat().st_mtime_ns:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    Image.fromarray(shrink(load_rgb(source, min_side=size), size)).save(
        partial, format="JPEG", quality=JPEG_QUALITY
    )
    os.replace(partial, target)  # an interrupted run never leaves a half-written image behind
    return True


def build_cache(
    data_root: str | Path,
    relative_paths: Sequence[str],
    cache_dir: str | Path,
    size: int,
    workers: int | None = None,
) -> int:
    """Cache every image of ``relative_paths``; returns how many had to be (re)encoded."""
    data_root, cache_dir = Path(data_root), Path(cache_dir)
    workers = decoding_threads(workers)

    def one(relative: str) -> bool:
        return cache_one(data_root / relative, cached_path(cache_dir, relative), size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        written = sum(pool.map(one, relative_paths))
    if written:
        log.info("Cached %d of %d images at %d px in %s", written, len(relative_paths), size, cache_dir)
    return written
