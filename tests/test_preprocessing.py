"""The torch-free evaluation preprocessing equals the Albumentations pipeline the model was tested with."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mushroom.core.preprocessing import Preprocessing, eval_preprocess, resize_shorter_side
from mushroom.data.transforms import eval_transform


@pytest.mark.parametrize(
    "pre",
    [Preprocessing(), Preprocessing(image_size=32, crop_pct=1.0, mean=(0.5,) * 3, std=(0.5,) * 3)],
    ids=["imagenet-224", "half-32"],
)
def test_numpy_preprocessing_matches_albumentations(pre: Preprocessing) -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        height, width = (int(v) for v in rng.integers(24, 700, size=2))
        rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        expected = eval_transform(pre)(image=rgb)["image"].numpy()
        got = eval_preprocess(rgb, pre)
        assert got.shape == expected.shape == (3, pre.image_size, pre.image_size)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-5)


def _resize_cases(rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(height, width, shorter side) for integer shrink factors, fractional ones and enlargements."""
    cases = []
    for factor in (2, 3, 4):
        for _ in range(10):
            size, longer = (int(v) for v in sorted(rng.integers(8, 200, size=2)))
            cases += [(size * factor, longer * factor, size), (longer * factor, size * factor, size)]
    for _ in range(90):
        height, width = (int(v) for v in rng.integers(24, 700, size=2))
        cases.append((height, width, int(rng.integers(8, 2 * min(height, width)))))
    return cases


def test_resize_gives_the_same_bytes_as_opencv_on_uint8() -> None:
    """The service shrinks in float32 for speed; the bytes must be those of the uint8 resize that the
    model was trained and tested with."""
    rng = np.random.default_rng(1)
    for index, (height, width, size) in enumerate(_resize_cases(rng)):
        rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        if index % 2:
            rgb = cv2.GaussianBlur(rgb, (0, 0), 2)  # smooth areas: more sums that fall near a half
        scale = size / min(height, width)
        new_size = (round(width * scale), round(height * scale))
        expected = rgb
        if new_size != (width, height):
            expected = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
        got = resize_shorter_side(rgb, size)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected, err_msg=f"{width} x {height} -> {new_size}")


def test_preprocessing_round_trips_through_a_dict() -> None:
    pre = Preprocessing(image_size=256, crop_pct=0.9, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    assert Preprocessing.from_dict(pre.as_dict()) == Preprocessing.from_dict(pre.as_dict() | {"extra": 1})
    assert Preprocessing.from_dict(pre.as_dict()).resize_size == round(256 / 0.9)
