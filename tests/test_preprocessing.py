"""The torch-free evaluation preprocessing equals the Albumentations pipeline the model was tested with."""

from __future__ import annotations

import numpy as np
import pytest

from mushroom.data.preprocessing import Preprocessing, eval_preprocess
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


def test_preprocessing_round_trips_through_a_dict() -> None:
    pre = Preprocessing(image_size=256, crop_pct=0.9, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    assert Preprocessing.from_dict(pre.as_dict()) == Preprocessing.from_dict(pre.as_dict() | {"extra": 1})
    assert Preprocessing.from_dict(pre.as_dict()).resize_size == round(256 / 0.9)
