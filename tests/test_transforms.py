"""The training augmentations do what their settings say, and nothing when a setting is 0."""

from __future__ import annotations

import numpy as np
import pytest

from mushroom.core.preprocessing import Preprocessing
from mushroom.data.transforms import train_transform
from mushroom.schemas import Augmentation

# Mean and std 0/1: the transform's output is the augmented photo itself, scaled to [0, 1].
PLAIN = Preprocessing(image_size=48, crop_pct=1.0, mean=(0.0,) * 3, std=(1.0,) * 3)
# Only the step under test: the whole photo, no flip, rotation or colour jitter.
STILL = {"scale": [1.0, 1.0], "ratio": [1.0, 1.0], "hflip": 0.0, "rotate": 0.0, "color_jitter_p": 0.0}


def _photo(seed: int = 0) -> np.ndarray:
    """A colourful checkerboard: channels that differ, and edges that blur visibly."""
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return np.kron(tiles, np.ones((6, 6, 1), dtype=np.uint8))


def _augmented(seed: int = 0, photo: np.ndarray | None = None, **settings: float) -> list[np.ndarray]:
    """40 draws of the augmentation of ``photo`` (default: :func:`_photo`)."""
    transform = train_transform(PLAIN, Augmentation(**{**STILL, **settings}), seed=seed)
    photo = _photo() if photo is None else photo
    return [transform(image=photo)["image"].numpy() for _ in range(40)]


def _is_grey(image: np.ndarray) -> bool:
    return bool(np.allclose(image[0], image[1], atol=1e-6) and np.allclose(image[1], image[2], atol=1e-6))


def _edges(image: np.ndarray) -> float:
    """High-frequency energy: the squared steps between neighbouring pixels (blurring spreads a step out)."""
    return float((np.diff(image, axis=2) ** 2).sum())


def test_all_steps_off_give_the_photo_back() -> None:
    expected = _photo().transpose(2, 0, 1) / 255.0
    for image in _augmented():
        np.testing.assert_allclose(image, expected, atol=1e-6)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_grayscale_shows_that_share_of_photos_in_grey(share: float) -> None:
    grey = np.mean([_is_grey(image) for image in _augmented(grayscale=share)])
    assert grey == pytest.approx(share, abs=0.2)
    if share in (0.0, 1.0):
        assert grey == share


def test_grey_keeps_the_brightness_of_the_photo() -> None:
    (image,) = _augmented(grayscale=1.0)[:1]
    colour = _photo().astype(np.float64) / 255.0
    luma = colour @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(image[0], luma, atol=2 / 255)


def test_blur_softens_edges_in_that_share_of_photos() -> None:
    sharp = _edges(_augmented()[0])
    blurred = [_edges(image) < 0.75 * sharp for image in _augmented(blur=1.0)]
    assert all(blurred)
    some = np.mean([_edges(image) < 0.75 * sharp for image in _augmented(blur=0.5)])
    assert 0.2 <= some <= 0.8


def _erased(image: np.ndarray) -> np.ndarray:
    """Which pixels differ from the photo."""
    return np.abs(image - _photo().transpose(2, 0, 1) / 255.0).max(0) > 1e-6


def test_erasing_replaces_one_rectangle_in_that_share_of_photos() -> None:
    for image in _augmented(erase=1.0):
        changed = _erased(image)
        rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        box = changed[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        # Random noise can match a pixel by chance; the changes still fill one box of 2-33% of the photo.
        assert box.mean() > 0.9
        assert 0.01 <= box.size / changed.size <= 0.34
    some = np.mean([_erased(image).any() for image in _augmented(erase=0.5)])
    assert 0.2 <= some <= 0.8


def _lit(share: float) -> list[np.ndarray]:
    """Grey tiles (40-120 of 255: no channel clips under a warm or cool light) under ``illuminant=share``."""
    grey = np.kron(np.arange(40, 121, 10, dtype=np.uint8).reshape(3, 3), np.ones((16, 16), dtype=np.uint8))
    return _augmented(photo=np.dstack([grey] * 3), illuminant=share)


def test_another_light_casts_one_colour_over_the_whole_photo() -> None:
    warm = cool = 0
    for image in _lit(1.0):
        red, green, blue = (image[k] / image[1] for k in range(3))
        np.testing.assert_allclose(green, 1.0)
        # One gain per channel, the same for every pixel: a light's colour, not a hue rotation or noise.
        assert np.ptp(red) < 0.05 and np.ptp(blue) < 0.05
        assert abs(red.mean() - blue.mean()) > 0.02
        warm, cool = warm + (red.mean() > blue.mean()), cool + (red.mean() < blue.mean())
    assert warm >= 5 and cool >= 5  # candle-warm and shade-blue light both


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_another_light_tints_that_share_of_photos(share: float) -> None:
    tinted = np.mean([not _is_grey(image) for image in _lit(share)])
    assert tinted == share if share == 0 else 0.2 <= tinted <= 0.8


def test_the_augmentation_stream_is_reproducible_from_its_seed() -> None:
    settings = {
        "grayscale": 0.5,
        "blur": 0.5,
        "erase": 0.5,
        "illuminant": 0.5,
        "color_jitter_p": 0.8,
        "hflip": 0.5,
    }
    first, again = _augmented(seed=3, **settings), _augmented(seed=3, **settings)
    other = _augmented(seed=4, **settings)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
