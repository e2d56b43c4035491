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


def image_stats(rgb: np.ndarray, size: tuple[int, int]) -> dict[str, float]:
    """Brightness, contrast, colour of ``rgb``; ``size`` is (width, height) of the photo as sent."""
    small = rgb if max(rgb.shape[:2]) <= 256 else _shrink(rgb, 256)
    pixels = small.reshape(-1, 3).astype(np.float32) / 255.0
    luma = pixels @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    red, green, blue = pixels.mean(0)
    return {
        "brightness": float(luma.mean()),
        "contrast": float(luma.std()),
        "saturation": float(hsv[..., 1].mean() / 255.0),
        "red": float(red),
        "green": float(green),
        "blue": float(blue),
        "width": float(size[0]),
        "height": float(size[1]),
    }


def _shrink(rgb: np.ndarray, longest: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = longest / max(height, width)
    return cv2.resize(
        rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
