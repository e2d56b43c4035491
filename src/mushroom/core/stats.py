"""Simple statistics of an input photo, recorded by the service and compared by ``mushroom.drift``."""

from __future__ import annotations

import cv2
import numpy as np

# Every statistic the service records for a photo, and what the drift report calls it.
FEATURES = {
    "brightness": "mean brightness (0-1)",
    "contrast": "brightness standard deviation (0-1)",
    "saturation": "mean colour saturation (0-1)",
    "red": "mean red (0-1)",
    "green": "mean green (0-1)",
    "blue": "mean blue (0-1)",
    "width": "width of the upload (pixels)",
    "height": "height of the upload (pixels)",
    "confidence": "the model's top probability",
}


def image_stats(pixels: np.ndarray, size: tuple[int, int]) -> dict[str, float]:
    """Brightness, contrast and colour of ``pixels`` (the model's input crop, uint8 RGB, as
    :func:`mushroom.core.preprocessing.resize_and_crop` gives it); ``size``: (width, height) as sent."""
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    mean, std = cv2.meanStdDev(gray)
    red, green, blue = cv2.mean(pixels)[:3]
    saturation = cv2.mean(cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV))[1]
    return {
        "brightness": float(mean[0, 0]) / 255.0,
        "contrast": float(std[0, 0]) / 255.0,
        "saturation": saturation / 255.0,
        "red": red / 255.0,
        "green": green / 255.0,
        "blue": blue / 255.0,
        "width": float(size[0]),
        "height": float(size[1]),
    }
