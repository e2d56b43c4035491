"""What an image goes through before the model sees it, in plain NumPy + OpenCV.

:class:`Preprocessing` is stored in every checkpoint and in every exported ONNX file.
:func:`eval_preprocess` is the evaluation pipeline of :func:`mushroom.data.transforms.eval_transform`
(shorter side to ``image_size / crop_pct`` with area interpolation, centre crop, normalise) without
Albumentations or PyTorch, so that the ONNX service runs it in a slim image; a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Preprocessing:
    """Input size and normalisation of a model."""

    image_size: int = 224
    crop_pct: float = 0.875
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD

    @property
    def resize_size(self) -> int:
        return round(self.image_size / self.crop_pct)

    def as_dict(self) -> dict:
        return {
            "image_size": int(self.image_size),
            "crop_pct": float(self.crop_pct),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Preprocessing:
        """From a checkpoint's or model file's metadata; ``ValueError`` if a value has the wrong type."""
        pre = cls(**{key: values[key] for key in ("image_size", "crop_pct", "mean", "std") if key in values})
        pre.image_size, pre.crop_pct = int(pre.image_size), float(pre.crop_pct)
        pre.mean, pre.std = tuple(float(v) for v in pre.mean), tuple(float(v) for v in pre.std)
        if pre.image_size < 1 or not 0 < pre.crop_pct <= 1 or len(pre.mean) != 3 or len(pre.std) != 3:
            raise ValueError(f"preprocessing out of range: {pre.as_dict()}")
        return pre


def resize_shorter_side(rgb: np.ndarray, size: int) -> np.ndarray:
    """Scale so that the shorter side is ``size`` (area interpolation, as Albumentations' SmallestMaxSize)."""
    height, width = rgb.shape[:2]
    scale = size / min(height, width)
    new_height, new_width = round(height * scale), round(width * scale)
    if (new_height, new_width) == (height, width):
        return rgb
    if _fractional_shrink(rgb, new_width, new_height):
        return _area_shrink_in_float(rgb, new_width, new_height)
    return cv2.resize(rgb, (new_width, new_height), interpolation=cv2.INTER_AREA)


# Above this many values the float32 copy (four bytes per value) costs more memory than its speed is
# worth: a 64-megapixel upload would take 768 MB for it. Such images take OpenCV's uint8 path (same bytes).
FLOAT_SHRINK_MAX_VALUES = 3 * 4_000_000


def _fractional_shrink(rgb: np.ndarray, new_width: int, new_height: int) -> bool:
    height, width = rgb.shape[:2]
    shrinks = new_width < width and new_height < height
    integer_factors = width % new_width == 0 and height % new_height == 0
    small = rgb.size <= FLOAT_SHRINK_MAX_VALUES
    return rgb.dtype == np.uint8 and shrinks and not integer_factors and small


def _area_shrink_in_float(rgb: np.ndarray, new_width: int, new_height: int) -> np.ndarray:
    """OpenCV's area shrink by a fractional factor: a quarter faster in float32 than on uint8, and equal.

    On uint8, OpenCV sums the weighted pixels in float32 and rounds; its float32 path computes the same
    sums (vectorised), so rounding them here gives the same bytes (``tests/test_preprocessing.py``).
    Integer factors take another uint8 path (2 x 2 rounds halves up), so they stay on uint8.
    """
    shrunk = cv2.resize(rgb.astype(np.float32), (new_width, new_height), interpolation=cv2.INTER_AREA)
    return np.rint(shrunk, out=shrunk).astype(np.uint8)


def center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return rgb[top : top + size, left : left + size]


def normalize_chw(rgb: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """uint8 ``H x W x 3`` → float32 ``3 x H x W``, scaled to [0, 1] then standardised per channel.

    In place on one float copy: half the time of the textbook expression, which matters in the service.
    """
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(np.float32)
    chw -= (np.asarray(pre.mean, dtype=np.float32) * 255.0)[:, None, None]
    chw *= (1.0 / (np.asarray(pre.std, dtype=np.float32) * 255.0))[:, None, None]
    return chw


def resize_and_crop(rgb: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """The uint8 pixels the model sees: shorter side to ``resize_size``, centre ``image_size`` square."""
    return center_crop(resize_shorter_side(rgb, pre.resize_size), pre.image_size)


def eval_preprocess(rgb: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """One decoded RGB image → the ``3 x S x S`` float32 array the model takes."""
    return normalize_chw(resize_and_crop(rgb, pre), pre)
