"""Decoding: odd colour modes become RGB; undecodable files are found and skipped with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mushroom.data.folder import scan_image_folder
from mushroom.data.images import decode_error, load_rgb, to_rgb
from tests.conftest import make_image_folder


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "LA", "I;16", "1"])
def test_odd_modes_become_rgb(mode: str) -> None:
    image = Image.new("RGB", (12, 10), (200, 30, 30)).convert(mode)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert rgb.size == (12, 10)


def test_transparent_pixels_composite_on_white() -> None:
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert np.asarray(to_rgb(image))[0, 0].tolist() == [255, 255, 255]


def test_cmyk_and_grayscale_jpegs_load_as_rgb_arrays(tmp_path: Path) -> None:
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("L", (30, 20), 128).save(tmp_path / "gray.jpg")
    Image.new("P", (30, 20), 3).save(tmp_path / "palette.png")
    for name in ("cmyk.jpg", "gray.jpg", "palette.png"):
        array = load_rgb(tmp_path / name)
        assert array.shape == (20, 30, 3) and array.dtype == np.uint8
    red = load_rgb(tmp_path / "cmyk.jpg")[10, 15]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_load_rgb_downscales_large_jpegs_but_keeps_min_side(tmp_path: Path) -> None:
    Image.new("RGB", (1200, 800), (10, 120, 10)).save(tmp_path / "big.jpg")
    small = load_rgb(tmp_path / "big.jpg", min_side=256)
    assert min(small.shape[:2]) >= 256 and small.shape[0] < 800


def write_truncated_jpeg(path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        path, quality=95
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_decode_error_catches_truncated_and_non_images(tmp_path: Path) -> None:
    write_truncated_jpeg(tmp_path / "truncated.jpg")
    (tmp_path / "notes.jpg").write_text("this is not an image")
    Image.new("RGB", (8, 8)).save(tmp_path / "fine.jpg")
    assert decode_error(tmp_path / "truncated.jpg") is not None
    assert decode_error(tmp_path / "notes.jpg") is not None
    assert decode_error(tmp_path / "fine.jpg") is None


def test_scan_skips_undecodable_files_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_image_folder(tmp_path / "data", per_class=4)
    write_truncated_jpeg(root / "Amanita" / "truncated.jpg")
    (root / "Boletus" / "text.jpg").write_text("not an image")
    Image.new("CMYK", (40, 40)).save(root / "Lactarius" / "cmyk.jpg")
    with caplog.at_level(logging.WARNING):
        index = scan_image_folder(root)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "truncated.jpg" in warnings[0].getMessage() and "text.jpg" in warnings[0].getMessage()
    assert {p.name for p, _ in index.skipped} == {"truncated.jpg", "text.jpg"}
    names = {p.name for p in index.paths}
    assert "truncated.jpg" not in names and "text.jpg" not in names and "cmyk.jpg" in names
    assert len(index) == 13
