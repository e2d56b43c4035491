"""Decoding: odd colour modes become RGB; undecodable files are found and skipped with a warning."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mushroom.core.images import decode_error, decode_jpeg_strict, decode_opened, load_rgb, to_rgb
from mushroom.data.prepare import index_folder
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


def _photo_like_jpeg(mode: str = "RGB", orientation: int = 1, **save: object) -> bytes:
    """420 x 330 smooth random colours (JPEG-friendly, unlike noise), encoded with ``save`` options."""
    rng = np.random.default_rng(orientation)
    coarse = Image.fromarray(rng.integers(0, 256, (11, 14, 3), dtype=np.uint8))
    image = coarse.resize((420, 330), Image.Resampling.BICUBIC).convert(mode)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, exif=exif.tobytes(), **save)
    return buffer.getvalue()


def _both_decoders(data: bytes, min_side: int | None) -> tuple[np.ndarray | None, np.ndarray]:
    with Image.open(io.BytesIO(data)) as image:
        fast = decode_jpeg_strict(image, data, min_side)
    with Image.open(io.BytesIO(data)) as image:
        return fast, decode_opened(image, min_side, upright=True)


# min_side 160, 80 and 40 make the decoders shrink the 330-px side by 2, 4 and 8.
@pytest.mark.parametrize("min_side", [None, 160, 80, 40])
@pytest.mark.parametrize(
    "encoding",
    [{"subsampling": 2}, {"subsampling": 1}, {"subsampling": 0}, {"progressive": True}, {"mode": "L"}],
    ids=["4:2:0", "4:2:2", "4:4:4", "progressive", "grey"],
)
def test_the_strict_decoder_gives_the_same_pixels_as_pil(encoding: dict, min_side: int | None) -> None:
    fast, reference = _both_decoders(_photo_like_jpeg(**encoding), min_side)
    assert fast is not None
    np.testing.assert_array_equal(fast, reference)
    assert fast.shape[2] == 3 and min(fast.shape[:2]) >= (min_side or 330)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("min_side", [None, 160])
def test_the_strict_decoder_turns_jpegs_upright_as_pil_does(orientation: int, min_side: int | None) -> None:
    fast, reference = _both_decoders(_photo_like_jpeg(orientation=orientation), min_side)
    assert fast is not None
    np.testing.assert_array_equal(fast, reference)


def test_the_strict_decoder_refuses_a_truncated_jpeg_even_with_an_end_marker() -> None:
    """PIL and OpenCV fill the missing part with grey when an end marker follows the cut: such an upload was
    answered as if whole. The strict decoder raises, and the service says the file is corrupt."""
    photo = _photo_like_jpeg()
    cut = photo[: len(photo) // 2]
    with Image.open(io.BytesIO(cut + b"\xff\xd9")) as image:
        assert decode_opened(image).shape[:2] == (330, 420)  # PIL: no error, the missing half grey
    for data in (cut, cut + b"\xff\xd9"):
        with Image.open(io.BytesIO(data)) as image, pytest.raises(ValueError, match=r"(?i)premature end"):
            decode_jpeg_strict(image, data)


def test_the_strict_decoder_reads_trailing_bytes_and_leaves_cmyk_and_other_formats_to_pil() -> None:
    photo = _photo_like_jpeg()
    fast, reference = _both_decoders(photo + b"trailing bytes", None)  # as some phones append
    assert fast is not None
    np.testing.assert_array_equal(fast, reference)
    png = io.BytesIO()
    Image.new("RGB", (20, 20)).save(png, format="PNG")
    for data in (_photo_like_jpeg(mode="CMYK"), png.getvalue()):
        with Image.open(io.BytesIO(data)) as image:
            assert decode_jpeg_strict(image, data) is None


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


def test_indexing_a_folder_leaves_out_undecodable_files_and_names_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_image_folder(tmp_path / "data", per_class=4)
    write_truncated_jpeg(root / "Amanita" / "truncated.jpg")
    (root / "Boletus" / "text.jpg").write_text("not an image")
    Image.new("CMYK", (40, 40)).save(root / "Lactarius" / "cmyk.jpg")
    with caplog.at_level(logging.INFO):
        index = index_folder(root)
    log = caplog.text  # the audit's table names every file it left out, and why
    assert "truncated.jpg" in log and "text.jpg" in log
    names = {p.name for p in index.paths}
    assert "truncated.jpg" not in names and "text.jpg" not in names and "cmyk.jpg" in names
    assert len(index) == 13
