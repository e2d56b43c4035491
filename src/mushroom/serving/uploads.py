"""Checking and decoding an uploaded photo; every way it can be bad has its own 4xx and message."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from mushroom.data.images import decode_jpeg_opencv, decode_opened

ACCEPTED_TYPES = ("image/", "application/octet-stream")


class UploadError(Exception):
    """A rejected upload: HTTP status, a short machine-readable reason and a message for the person."""

    def __init__(self, status_code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = reason
        self.message = message


def check_content_type(content_type: str | None) -> None:
    """The file part must say it is an image (or say nothing specific, as some clients do)."""
    if content_type and not content_type.lower().startswith(ACCEPTED_TYPES):
        raise UploadError(
            415,
            "wrong_content_type",
            f"The file was sent as {content_type}, not as an image. Upload a JPEG, PNG or WebP photo.",
        )


def decode_upload(
    data: bytes, max_bytes: int, max_pixels: int, min_side: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """The upload as an upright ``H x W x 3`` uint8 array and its (width, height) as sent, or
    :class:`UploadError`.

    The pixel count is checked from the header before anything is decoded, so a decompression bomb
    (a small file that expands to gigabytes) costs nothing. JPEGs are decoded at reduced scale when
    they are much larger than the model needs (``min_side``).
    """
    if not data:
        raise UploadError(400, "empty", "The upload is empty (0 bytes). Choose a photo and send it again.")
    if len(data) > max_bytes:
        raise UploadError(
            413,
            "too_large",
            f"The file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
            "Send a smaller photo (most phones can share a reduced size).",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as error:
        raise UploadError(415, "not_an_image", _not_an_image(data)) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # PIL refuses, from the header alone, images far beyond any photo (its own limit, ~89 MP).
        raise _too_many_pixels("far more than", max_pixels) from error
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise _too_many_pixels(f"{width} x {height} pixels, {width * height / 1e6:.0f}", max_pixels)
        if min(width, height) < 1:
            raise UploadError(400, "no_pixels", "The image has no pixels.")
        try:
            rgb = decode_jpeg_opencv(image, data, min_side)
            return (rgb if rgb is not None else decode_opened(image, min_side, upright=True)), (width, height)
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... for broken data
            raise UploadError(
                400,
                "corrupt",
                f"The image could not be decoded: it is truncated or corrupt ({error}). "
                "Send the photo again; if it keeps failing, re-save it as JPEG.",
            ) from error


def _too_many_pixels(size: str, max_pixels: int) -> UploadError:
    return UploadError(
        413,
        "too_many_pixels",
        f"The image is {size} megapixels; the limit is {max_pixels / 1e6:.0f} megapixels "
        "(a small file can expand to gigabytes: a decompression bomb). Send a smaller photo.",
    )


def _not_an_image(data: bytes) -> str:
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        return (
            "HEIC photos are not supported. Set the camera to 'Most compatible' (JPEG), "
            "or share the photo as JPEG."
        )
    return "The file is not an image this service can read. Upload a JPEG, PNG or WebP photo."
